#!/usr/bin/env python3
"""Tells machines of our kind apart: a 4096² float32 matmul in the venv's torch, in GFLOP/s, with
2 threads and with 1 (the median of 5 after a warm-up). Timings in the README and the notes name it.

    .venv/bin/python3 bench/sgemm.py"""
import sys
import time

try:
    import torch
except ImportError as e:  # `make setup` installs libtorch for the harness alone, not torch's CUDA libraries
    sys.exit(f"error: cannot import torch ({e}): run `make setup-full` first")

n = 4096
a, b = torch.randn(n, n), torch.randn(n, n)
for threads in (2, 1):
    torch.set_num_threads(threads)
    a @ b
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    rate = sorted(2 * n**3 / t / 1e9 for t in times)
    print(f"4096² SGEMM, {threads} thread(s): {rate[2]:.0f} GFLOP/s (median of 5; {rate[0]:.0f} to {rate[-1]:.0f})")
