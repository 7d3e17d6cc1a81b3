"""Multi-Similarity loss (Wang et al., CVPR 2019) as a harness loss plug-in, the form of
pytorch-metric-learning's `MultiSimilarityLoss` (no pair miner): for each anchor i with cosine
similarities S_ij,

    (1/alpha) log(1 + sum_{j in P_i} exp(-alpha (S_ij - base)))
  + (1/beta)  log(1 + sum_{j in N_i} exp( beta (S_ij - base)))

averaged over the batch, P_i the other embeddings of i's class and N_i those of other classes.
It has no centres: use it with centers_per_class: 0 (the default).

params: alpha, beta, base.
"""
from typing import Dict, Optional

import torch
import torch.nn.functional as F


def log1p_sum_exp(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log(1 + sum over the masked entries of exp(logits)) per row, stable (0 for an empty row)."""
    masked = logits.masked_fill(~mask, float("-inf"))
    zeros = torch.zeros(logits.shape[0], 1, dtype=logits.dtype, device=logits.device)
    return torch.logsumexp(torch.cat([zeros, masked], dim=1), dim=1)


class MultiSimilarity(torch.nn.Module):
    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        centers: Optional[torch.Tensor],
        params: Dict[str, float],
    ) -> torch.Tensor:
        alpha, beta, base = params["alpha"], params["beta"], params["base"]
        x = F.normalize(embeddings, dim=1)
        s = torch.matmul(x, x.t())
        same = labels.unsqueeze(0) == labels.unsqueeze(1)
        eye = torch.eye(labels.shape[0], dtype=torch.bool, device=labels.device)
        positive = log1p_sum_exp(-alpha * (s - base), same & ~eye) / alpha
        negative = log1p_sum_exp(beta * (s - base), ~same) / beta
        return (positive + negative).mean()
