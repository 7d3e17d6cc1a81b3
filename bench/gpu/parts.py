#!/usr/bin/env python3
"""The Python halves of bench/gpu/run.sh: test embeddings, the PyTorch references it compares the
harness with (chunked torch.mm + topk retrieval, SoftTriple from the paper's formulas) and the CPU/GPU
comparison of `harness eval` outputs.

Usage: parts.py embeddings OUT N DIM CLASSES | eval-compare CPU.json DEV.json |
       torch-eval EMB LABELS DEVICE KS | torch-softtriple CLASSES K BATCH DIM DEVICE ITERS
"""
import json
import os
import sys
import time

import numpy as np


def embeddings(out, n, dim, classes):
    """n float32 embeddings of `classes` classes (each at least 2 items), clustered with noise."""
    rng = np.random.default_rng(0)
    labels = np.concatenate([np.arange(classes), np.arange(classes), rng.integers(0, classes, n - 2 * classes)])
    labels = np.sort(labels).astype(np.int64)
    centres = rng.standard_normal((classes, dim)).astype(np.float32)
    emb = centres[labels] + 1.2 * rng.standard_normal((n, dim)).astype(np.float32)
    os.makedirs(out, exist_ok=True)
    np.save(os.path.join(out, "emb.npy"), emb.astype(np.float32))
    np.save(os.path.join(out, "labels.npy"), labels)
    print(f"wrote {n} x {dim} embeddings of {classes} classes to {out}")


def eval_compare(cpu_path, dev_path, nmi_tol=0.005):
    """R@K must be equal; NMI within nmi_tol (k-means on two devices takes other float paths)."""
    c, g = (json.load(open(p)) for p in (cpu_path, dev_path))
    rc, rg = c["retrieval"]["recall_at_k"], g["retrieval"]["recall_at_k"]
    nmi = abs(c["nmi"]["nmi"] - g["nmi"]["nmi"])
    ok = rc == rg and nmi <= nmi_tol
    print(json.dumps({"recall_cpu": rc, "recall_device": rg, "recall_equal": rc == rg,
                      "map_at_r_cpu": c["retrieval"]["map_at_r"], "map_at_r_device": g["retrieval"]["map_at_r"],
                      "nmi_cpu": c["nmi"]["nmi"], "nmi_device": g["nmi"]["nmi"], "nmi_abs_diff": nmi,
                      "nmi_tolerance": nmi_tol, "pass": ok}))
    return 0 if ok else 1


def torch_eval(emb_path, labels_path, device, ks):
    """Recall@K by chunked cosine torch.mm + topk on `device`, a query's own index excluded."""
    import torch
    ks = [int(k) for k in ks.split(",")]
    dev = torch.device(device)
    start = time.perf_counter()
    x = torch.nn.functional.normalize(torch.from_numpy(np.load(emb_path)).to(dev), dim=1)
    y = torch.from_numpy(np.load(labels_path)).to(dev)
    hits = torch.zeros(len(ks), dtype=torch.int64, device=dev)
    kmax, chunk = max(ks), 4096
    for i in range(0, len(x), chunk):
        s = x[i:i + chunk] @ x.T
        s[torch.arange(len(s), device=dev), torch.arange(i, i + len(s), device=dev)] = -float("inf")
        top = s.topk(kmax, dim=1).indices
        match = y[top] == y[i:i + chunk, None]
        for j, k in enumerate(ks):
            hits[j] += match[:, :k].any(dim=1).sum()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else 0
    print(json.dumps({"recall_at_k": [[k, float(h) / len(x)] for k, h in zip(ks, hits.tolist())],
                      "seconds": seconds, "peak_allocated_bytes": peak}))


def torch_softtriple(classes, k, batch, dim, device, iters):
    """Median forward + backward seconds of SoftTriple (bench/peers/losses.py's formula)."""
    import torch
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "peers"))
    from losses import torch_loss
    dev = torch.device(device)
    torch.manual_seed(0)
    cfg = {"kind": "soft_triple", "centers_per_class": k, "la": 20.0, "gamma": 0.1, "tau": 0.2, "margin": 0.01}
    fwd, params = torch_loss(cfg, classes, dim)
    for p in params:
        p.data = p.data.to(dev)
    x = torch.randn(batch, dim, device=dev, requires_grad=True)
    y = torch.randint(classes, (batch,), device=dev)
    times = []
    for i in range(iters + 1):
        t = time.perf_counter()
        fwd(x, y).backward()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i:
            times.append(time.perf_counter() - t)
    times.sort()
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else 0
    print(json.dumps({"classes": classes, "k": k, "batch": batch, "dim": dim, "median_s": times[len(times) // 2],
                      "peak_allocated_bytes": peak}))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "embeddings":
        embeddings(args[0], int(args[1]), int(args[2]), int(args[3]))
    elif cmd == "eval-compare":
        sys.exit(eval_compare(*args))
    elif cmd == "torch-eval":
        torch_eval(*args)
    elif cmd == "torch-softtriple":
        torch_softtriple(int(args[0]), int(args[1]), int(args[2]), int(args[3]), args[4], int(args[5]))
    else:
        sys.exit(f"unknown part {cmd}: see the usage at the top of {__file__}")
