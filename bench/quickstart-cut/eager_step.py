#!/usr/bin/env python3
"""The quickstart's training step in PyTorch eager, as a yardstick for the harness's step on the same
machine: the `views` run's MLP (Linear-BN-ReLU 64 -> 256 -> 256), the Linear head to 64 and L2
normalisation, Softmax_norm over 100 classes (la 20, margin 0.01), Adam (eps 0.01, weight decay
1e-4), batch 64, one thread, 2,000 steps on random inputs. Prints seconds per step.

    .venv/bin/python3 bench/quickstart-cut/eager_step.py [--steps 2000]
"""
import argparse
import sys
import time

try:
    import torch
except ImportError as e:  # `make setup` installs libtorch for the harness alone, not torch's CUDA libraries
    sys.exit(f"error: cannot import torch ({e}): run `make setup-full` first")
import torch.nn as nn
import torch.nn.functional as F

ap = argparse.ArgumentParser()
ap.add_argument("--steps", type=int, default=2000)
a = ap.parse_args()
torch.set_num_threads(1)
torch.manual_seed(0)
net = nn.Sequential(nn.Linear(64, 256), nn.BatchNorm1d(256), nn.ReLU(), nn.Linear(256, 256), nn.BatchNorm1d(256),
                    nn.ReLU(), nn.Linear(256, 64))
centres = nn.Parameter(torch.randn(64, 100))
opt = torch.optim.Adam([{"params": net.parameters(), "lr": 1e-3}, {"params": [centres], "lr": 1e-2}], eps=0.01,
                       weight_decay=1e-4)
x, y = torch.randn(3200, 64), torch.arange(100).repeat_interleave(32)
start = time.perf_counter()
for step in range(a.steps):
    idx = torch.randint(0, 3200, (64,))
    e = F.normalize(net(x[idx]), dim=1)
    sim = e @ F.normalize(centres, dim=0)
    m = torch.zeros_like(sim).scatter_(1, y[idx][:, None], 0.01)
    loss = F.cross_entropy(20 * (sim - m), y[idx])
    loss.item()
    opt.zero_grad()
    loss.backward()
    opt.step()
print(f"{(time.perf_counter() - start) / a.steps * 1e3:.2f} ms a step (PyTorch {torch.__version__}, 1 thread)")
