#!/usr/bin/env python3
"""Forward + backward time of every loss case: the harness's Rust losses against the same formulas in
PyTorch (vectorised as a PyTorch user would write them) and pytorch-metric-learning where it has the
same loss, on the same machine, in one run, at the same thread count.

The case grid comes from the Rust side (losses::bench_cases), printed by the `loss_timing` example.
Prints a Markdown table with the time ratio (Rust / peer; < 1 means the harness is faster).

Usage: make bench-peers   or   .venv/bin/python3 bench/peers/losses.py [--threads 2] [--filter S]
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def margin_ce(sim, y, la, margin):
    m = torch.zeros_like(sim).scatter_(1, y[:, None], margin)
    return F.cross_entropy(la * (sim - m), y)


def torch_loss(cfg, num_classes, dim):
    """The loss as a PyTorch user writes it from the paper's formulas (per-class regularizer blocks)."""
    kind = cfg["kind"]
    k = cfg.get("centers_per_class", 1)
    w = torch.nn.Parameter(torch.empty(dim, num_classes * k).uniform_(-1, 1)) if kind != "triplet" else None

    def fwd(x, y):
        x = F.normalize(x, dim=1)
        if kind == "triplet":
            d = torch.cdist(x, x)
            same = y[:, None] == y[None, :]
            pos = same & ~torch.eye(len(y), dtype=torch.bool)
            valid = pos[:, :, None] & ~same[:, None, :]
            loss = F.relu(d[:, :, None] - d[:, None, :] + cfg["margin"]) * valid
            nz = (loss > 0).sum()
            return loss.sum() / nz.clamp(min=1)
        c = F.normalize(w, dim=0)
        if kind == "proxy_nca":
            s2 = cfg["scale"] ** 2
            logits = -s2 * torch.cdist(x, c.t()).pow(2)
            return F.cross_entropy(logits, y)
        sim = x @ c
        if kind == "softmax_norm":
            return margin_ce(sim, y, cfg["la"], cfg["margin"])
        s = sim.view(-1, num_classes, k)
        if kind == "hard_triple":
            cls = s.max(dim=2).values
            return margin_ce(cls, y, cfg["la"], cfg["margin"])
        p = F.softmax(s / cfg["gamma"], dim=2)
        loss = margin_ce((p * s).sum(2), y, cfg["la"], cfg["margin"])
        if cfg["tau"] > 0 and k > 1:
            blocks = c.view(dim, num_classes, k).permute(1, 2, 0)
            cos = blocks @ blocks.transpose(1, 2)
            iu = torch.triu_indices(k, k, 1)
            reg = torch.sqrt(2.0 + 1e-5 - 2.0 * cos[:, iu[0], iu[1]]).sum() / (num_classes * k * (k - 1))
            loss = loss + cfg["tau"] * reg
        return loss

    return fwd, [w] if w is not None else []


def pml_loss(cfg, num_classes, dim):
    """pytorch-metric-learning's loss where it follows the same convention, else None."""
    try:
        from pytorch_metric_learning import losses as pml
    except ImportError:
        return None
    kind = cfg["kind"]
    if kind == "triplet" and cfg.get("mining") == "all":
        return pml.TripletMarginLoss(margin=cfg["margin"])
    if kind == "proxy_nca" and cfg["include_positive"]:
        return pml.ProxyNCALoss(num_classes=num_classes, embedding_size=dim, softmax_scale=cfg["scale"] ** 2)
    k = cfg.get("centers_per_class", 1)
    # PML's SoftTripleLoss has no centre regularizer (it is a separate, opt-in weight regularizer),
    # so it matches our convention only at tau = 0.
    if kind == "soft_triple" and cfg["tau"] == 0:
        return pml.SoftTripleLoss(num_classes=num_classes, embedding_size=dim, centers_per_class=k,
                                  la=cfg["la"], gamma=cfg["gamma"], margin=cfg["margin"])
    return None


def time_step(step, min_seconds):
    step()
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < min_seconds or len(times) < 5:
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2]


def peer_time(case, min_seconds, which):
    torch.manual_seed(0)
    cfg, n, dim, c = case["config"], case["batch"], case["dim"], case["num_classes"]
    x = torch.randn(n, dim, requires_grad=True)
    y = (torch.arange(n) // 4) % c
    if which == "torch":
        fwd, params = torch_loss(cfg, c, dim)
    else:
        mod = pml_loss(cfg, c, dim)
        if mod is None:
            return None
        fwd, params = mod, list(mod.parameters())

    inputs = params + [x]

    def step():  # gradients returned, not accumulated into .grad (the Rust side does the same)
        grads = torch.autograd.grad(fwd(x, y), inputs)
        assert len(grads) == len(inputs)

    return time_step(step, min_seconds)


# glibc's defaults return large buffers to the OS and fault them in again on every step, and how
# often that happens depends on each process's allocation history: a ±30% swing unrelated to the
# losses. Both sides run with the same fixed settings (this process re-executes itself with them and
# the Rust subprocess inherits them).
ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 40), "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}


def main():
    if any(os.environ.get(k) != v for k, v in ALLOCATOR_ENV.items()):
        os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, **ALLOCATOR_ENV))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--filter", default="")
    ap.add_argument("--min-seconds", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds per case (best is kept)")
    ap.add_argument("--json", help="also write the rows to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    exe = os.path.join(ROOT, "target", "release", "examples", "loss_timing")
    env = dict(os.environ, LIBTORCH=glob.glob(os.path.join(ROOT, ".venv", "lib", "python3*", "site-packages", "torch"))[0])
    env["PATH"] = os.path.join(ROOT, ".venv", "bin") + os.pathsep + env["PATH"]
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "losses", "--example", "loss_timing"],
                   cwd=ROOT, env=env, check=True)
    listing = subprocess.run([exe, "--threads", str(args.threads), "--filter", args.filter,
                              "--min-seconds", "0"], capture_output=True, text=True, check=True)
    cases = [json.loads(line) for line in listing.stdout.splitlines()]

    def rust_time(case):
        out = subprocess.run([exe, "--threads", str(args.threads), "--exact", case["id"],
                              "--min-seconds", str(args.min_seconds)], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)["median_s"]

    rows = []
    print(f"threads: {args.threads}; torch {torch.__version__}; allocator: {ALLOCATOR_ENV}")
    print("median time of one forward + backward (gradients of embeddings and centres), best of "
          f"{args.rounds} interleaved rounds\n")
    print("| case | harness ms | PyTorch ms | harness/PyTorch | PML ms | harness/PML |")
    print("|---|---:|---:|---:|---:|---:|")
    for case in cases:
        # Interleaved rounds, best median of each side: load on the machine hits both alike.
        ours, t, p = float("inf"), float("inf"), None
        for _ in range(args.rounds):
            ours = min(ours, rust_time(case))
            t = min(t, peer_time(case, args.min_seconds, "torch"))
            q = peer_time(case, args.min_seconds, "pml")
            p = q if p is None or q is None else min(p, q)
        row = dict(id=case["id"], harness_s=ours, torch_s=t, pml_s=p)
        rows.append(row)
        pml_cols = "– | –" if p is None else f"{p * 1e3:.3f} | {ours / p:.2f}"
        print(f"| {case['id']} | {ours * 1e3:.3f} | {t * 1e3:.3f} | {ours / t:.2f} | {pml_cols} |", flush=True)
    worst = max(rows, key=lambda r: r["harness_s"] / r["torch_s"])
    print(f"\nworst harness/PyTorch ratio: {worst['harness_s'] / worst['torch_s']:.2f} ({worst['id']})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
