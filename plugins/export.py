#!/usr/bin/env python3
"""Exports harness loss plug-ins to TorchScript.

    .venv/bin/python3 plugins/export.py                       # every plug-in listed in PLUGINS below
    .venv/bin/python3 plugins/export.py my_loss.py MyLoss my_loss.pt

The loss is an nn.Module whose forward is
    forward(embeddings, labels, centers: Optional[Tensor], params: Dict[str, float])
and returns a scalar tensor or a Dict[str, Tensor] with "loss" (and optional "classification",
"regularizer"). libtorch's C interface hands dicts of numbers over as Dict[str, Tensor], so the
exported module is a thin adapter that turns params into floats and calls the loss. See README.md.
"""
import importlib.util
import os
import sys
from typing import Dict, Optional

try:
    import torch
except ImportError as e:  # `make setup` installs libtorch for the harness alone, not torch's CUDA libraries
    sys.exit(f"error: cannot import torch ({e}): run `make setup-full` first")

HERE = os.path.dirname(os.path.abspath(__file__))
# (source, class, output): the plug-ins committed in this folder.
PLUGINS = [
    ("soft_triple.py", "SoftTriple", "soft_triple.pt"),
    ("ms_loss.py", "MultiSimilarity", "ms_loss.pt"),
]


class Adapter(torch.nn.Module):
    """The calling convention of the harness around a loss that takes Dict[str, float]."""

    def __init__(self, loss: torch.nn.Module):
        super().__init__()
        self.loss = loss

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        centers: Optional[torch.Tensor],
        params: Dict[str, torch.Tensor],
    ):
        numbers: Dict[str, float] = {}
        for key, value in params.items():
            numbers[key] = float(value.item())
        return self.loss(embeddings, labels, centers, numbers)


def load_class(source: str, name: str):
    spec = importlib.util.spec_from_file_location(os.path.splitext(os.path.basename(source))[0], source)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def export(source: str, name: str, output: str) -> None:
    scripted = torch.jit.script(Adapter(load_class(source, name)()))
    scripted.save(output)
    print(f"wrote {output} ({name} from {source}, torch {torch.__version__})")


if __name__ == "__main__":
    if len(sys.argv) == 4:
        export(*sys.argv[1:])
    elif len(sys.argv) == 1:
        for source, name, output in PLUGINS:
            export(os.path.join(HERE, source), name, os.path.join(HERE, output))
    else:
        sys.exit(__doc__)
