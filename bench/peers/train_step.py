#!/usr/bin/env python3
"""Training steps per second: the harness's small CNN + SoftTriple + Adam step (Rust, tch) against
the same model, loss and optimiser written in PyTorch, on one fixed 32 × 3 × 32 × 32 batch, same
thread count, interleaved in one run. Model: three conv3×3(no bias)-BN-ReLU blocks (16, 32, 64
channels) with 2×2 max-pooling between them, global average pooling, Linear 64 → 64, L2 normalise;
SoftTriple K = 4 over 32 classes (λ 20, γ 0.1, τ 0.2, δ 0.01); Adam (eps 0.01, weight decay 1e-4).

Usage: make bench-peers-train   or   .venv/bin/python3 bench/peers/train_step.py [--threads 2]
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from losses import torch_loss  # noqa: E402  (the same SoftTriple formulas as the loss comparison)


def model():
    layers, c_in = [], 3
    for i, c in enumerate([16, 32, 64]):
        layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
        if i < 2:
            layers.append(nn.MaxPool2d(2))
        c_in = c
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 64)]
    return nn.Sequential(*layers)


def torch_rate(threads, min_seconds):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = model()
    cfg = dict(kind="soft_triple", la=20.0, gamma=0.1, tau=0.2, margin=0.01, centers_per_class=4)
    loss_fn, centres = torch_loss(cfg, 32, 64)
    opt = torch.optim.Adam([{"params": net.parameters(), "lr": 3e-3}, {"params": centres, "lr": 1e-2}],
                           eps=0.01, weight_decay=1e-4)
    x = torch.rand(32, 3, 32, 32)
    y = torch.arange(32) % 32

    def step():
        loss = loss_fn(F.normalize(net(x), dim=1), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(5):
        step()
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < min_seconds:
        step()
        n += 1
    return n / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    env = dict(os.environ, LIBTORCH=glob.glob(os.path.join(ROOT, ".venv", "lib", "python3*", "site-packages", "torch"))[0])
    env["PATH"] = os.path.join(ROOT, ".venv", "bin") + os.pathsep + env["PATH"]
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "harness", "--example", "train_step_timing"],
                   cwd=ROOT, env=env, check=True)
    exe = os.path.join(ROOT, "target", "release", "examples", "train_step_timing")
    ours, theirs = 0.0, 0.0
    for _ in range(args.rounds):
        out = subprocess.run([exe, "--threads", str(args.threads), "--min-seconds", str(args.min_seconds)],
                             capture_output=True, text=True, check=True).stdout
        ours = max(ours, json.loads(out)["steps_per_s"])
        theirs = max(theirs, torch_rate(args.threads, args.min_seconds))
    print(f"small CNN + SoftTriple K=4 + Adam, batch 32 × 3 × 32 × 32, {args.threads} threads, torch "
          f"{torch.__version__}; best of {args.rounds} interleaved rounds\n")
    print("| | steps/s | ratio harness/PyTorch |")
    print("|---|---:|---:|")
    print(f"| harness (Rust, tch) | {ours:.1f} | {ours / theirs:.2f} |")
    print(f"| PyTorch | {theirs:.1f} | 1.00 |")


if __name__ == "__main__":
    sys.exit(main())
