#!/usr/bin/env python3
"""Training image pipeline throughput: the harness (decode + RandomResizedCrop 224 + flip +
normalise, in Rust) against torchvision with PIL on the same JPEG files, images per second per core,
measured side by side in one run. The files are written here: realistic 500 × 375 photos-like JPEGs
(smooth colour fields with edges and texture, quality 90), the size of CUB's images.

Usage: make bench-peers-pipeline   or   .venv/bin/python3 bench/peers/pipeline.py [--images 300]
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_jpegs(folder, count, seed=0):
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = 375, 500
        low = rng.random((6, 8, 3))
        img = Image.fromarray((low * 255).astype(np.uint8)).resize((w, h), Image.BICUBIC)
        arr = np.asarray(img).astype(np.float32)
        arr += rng.normal(0, 12, (h, w, 3))  # texture
        yy, xx = np.mgrid[0:h, 0:w]
        disc = (yy - rng.integers(0, h)) ** 2 + (xx - rng.integers(0, w)) ** 2 < rng.integers(40, 150) ** 2
        arr[disc] = arr[disc] * 0.3 + rng.random(3) * 180
        out = Image.fromarray(arr.clip(0, 255).astype(np.uint8)).filter(ImageFilter.SMOOTH)
        out.save(os.path.join(folder, f"{i:05d}.jpg"), quality=90)


def torchvision_rate(folder, min_seconds):
    import torch
    from PIL import Image
    from torchvision import transforms

    torch.set_num_threads(1)
    tf = transforms.Compose([
        transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".jpg"))
    start, n = time.perf_counter(), 0
    while time.perf_counter() - start < min_seconds:
        for f in files:
            tf(Image.open(f).convert("RGB"))
            n += 1
    return n / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--min-seconds", type=float, default=5.0)
    args = ap.parse_args()
    env = dict(os.environ, LIBTORCH=glob.glob(os.path.join(ROOT, ".venv", "lib", "python3*", "site-packages", "torch"))[0])
    env["PATH"] = os.path.join(ROOT, ".venv", "bin") + os.pathsep + env["PATH"]
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "harness", "--example", "pipeline_timing"],
                   cwd=ROOT, env=env, check=True)
    exe = os.path.join(ROOT, "target", "release", "examples", "pipeline_timing")
    with tempfile.TemporaryDirectory() as tmp:
        write_jpegs(tmp, args.images)
        rows = []
        for _ in range(2):  # interleaved rounds, best of each side
            ours = json.loads(subprocess.run([exe, tmp, "--min-seconds", str(args.min_seconds)],
                                             capture_output=True, text=True, check=True).stdout)
            theirs = torchvision_rate(tmp, args.min_seconds)
            rows.append((ours, theirs))
    ours = max(r[0]["per_core_images_per_s"] for r in rows)
    pool = max(r[0]["pool_images_per_s"] for r in rows)
    theirs = max(r[1] for r in rows)
    import torchvision
    print(f"{args.images} JPEGs of 500 × 375 (quality 90); decode + RandomResizedCrop 224 + flip + normalise; "
          f"torchvision {torchvision.__version__} with PIL, one thread each\n")
    print("| | images/s per core | ratio harness/torchvision |")
    print("|---|---:|---:|")
    print(f"| harness (Rust: image decode, fast_image_resize) | {ours:.1f} | {ours / theirs:.2f} |")
    print(f"| torchvision + PIL | {theirs:.1f} | 1.00 |")
    print(f"\nharness worker pool ({rows[0][0]['workers']} workers): {pool:.1f} images/s")


if __name__ == "__main__":
    sys.exit(main())
