"""SoftTriple (Qian et al., ICCV 2019), written from the paper's formulas (../../shared/paper.md §2)
as a harness loss plug-in. It is the check that a plug-in runs under the same protocol as the
built-in `soft_triple`: both must give the same loss and gradients (losses/tests/plugins.rs).

params: la (λ), gamma (γ), tau (τ), margin (δ); the harness adds num_classes, centers_per_class, dim.
"""
from typing import Dict, Optional

import torch
import torch.nn.functional as F


class SoftTriple(torch.nn.Module):
    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        centers: Optional[torch.Tensor],
        params: Dict[str, float],
    ) -> Dict[str, torch.Tensor]:
        assert centers is not None, "SoftTriple needs centres: set centers_per_class >= 1"
        la, gamma, tau, delta = params["la"], params["gamma"], params["tau"], params["margin"]
        C, K = int(params["num_classes"]), int(params["centers_per_class"])
        x = F.normalize(embeddings, dim=1)  # x_i on the unit sphere
        w = F.normalize(centers, dim=0)  # every centre w_c^k on the unit sphere (dim x C*K, class-major)
        s = torch.matmul(x, w).reshape(-1, C, K)  # x_i . w_c^k
        # S'_{i,c} = sum_k softmax_k(x_i . w_c^k / gamma) x_i . w_c^k
        s_class = (F.softmax(s / gamma, dim=2) * s).sum(dim=2)
        # cross-entropy on lambda (S'_{i,c} - delta [c = y_i])
        margins = torch.zeros_like(s_class).scatter(1, labels.unsqueeze(1), delta)
        classification = F.cross_entropy(la * (s_class - margins), labels)
        if tau > 0.0 and K > 1:
            # R = sum_c sum_{t<s} sqrt(2 + eps - 2 w_c^t . w_c^s), divided by C K (K - 1)
            blocks = w.t().reshape(C, K, -1)
            cos = torch.bmm(blocks, blocks.transpose(1, 2))
            upper = torch.triu(torch.ones(K, K, dtype=torch.bool, device=cos.device), diagonal=1)
            r = torch.sqrt(2.0 + 1e-5 - 2.0 * cos[:, upper]).sum() / (C * K * (K - 1))
            return {"loss": classification + tau * r, "classification": classification, "regularizer": r}
        return {"loss": classification, "classification": classification}
