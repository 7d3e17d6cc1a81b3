#!/usr/bin/env python3
"""Training image pipeline throughput: the harness (decode + RandomResizedCrop + flip + normalise,
in Rust) against torchvision with PIL on the same files and transforms, images per second per core,
measured side by side in one run. Two workloads:
- photos (default): realistic 500 × 375 photo-like JPEGs written here (smooth colour fields with
  edges and texture, quality 90), the size of CUB's images; RandomResizedCrop 224 and flip;
- `--omniglot DIR`: Omniglot's real 105 × 105 one-bit PNG drawings under DIR (every *.png, e.g.
  ../shared/data/omniglot), with configs/real/omniglot.yaml's transform: RandomResizedCrop 28 of
  80-100 % of the area at aspect 0.9-1.11, no flip, ImageNet normalisation.
The harness side is the example `pipeline_timing`, built with the profile the harness binary uses
(`cargo build`: dependencies and the workspace optimised; Cargo.toml).

Usage: make bench-peers-pipeline   or   .venv/bin/python3 bench/peers/pipeline.py [--images 300] [--omniglot DIR]
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


# Each workload: file ending, harness options, torchvision's transforms (built in torchvision_rate).
PHOTOS = {"ext": "jpg", "size": 224, "scale": (0.08, 1.0), "ratio": (3 / 4, 4 / 3), "flip": 0.5}
OMNIGLOT = {"ext": "png", "size": 28, "scale": (0.8, 1.0), "ratio": (0.9, 1.11), "flip": 0.0}


def files_under(folder, ext):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs if f.endswith("." + ext))


def torchvision_rate(folder, min_seconds, w):
    import torch
    from PIL import Image
    from torchvision import transforms

    torch.set_num_threads(1)
    tf = transforms.Compose([
        transforms.RandomResizedCrop(w["size"], scale=w["scale"], ratio=w["ratio"]),
        transforms.RandomHorizontalFlip(w["flip"]), transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    files = files_under(folder, w["ext"])
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
    ap.add_argument("--omniglot", metavar="DIR", help="time Omniglot's PNG drawings under DIR instead of written JPEGs")
    args = ap.parse_args()
    w = OMNIGLOT if args.omniglot else PHOTOS
    env = dict(os.environ, LIBTORCH=glob.glob(os.path.join(ROOT, ".venv", "lib", "python3*", "site-packages", "torch"))[0])
    env["PATH"] = os.path.join(ROOT, ".venv", "bin") + os.pathsep + env["PATH"]
    subprocess.run(["cargo", "build", "--locked", "-p", "harness", "--example", "pipeline_timing"],
                   cwd=ROOT, env=env, check=True)
    exe = os.path.join(ROOT, "target", "debug", "examples", "pipeline_timing")
    opts = ["--ext", w["ext"], "--size", str(w["size"]), "--scale", "%g,%g" % w["scale"],
            "--ratio", "%g,%g" % w["ratio"], "--flip", str(w["flip"]), "--min-seconds", str(args.min_seconds)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.omniglot or tmp
        if not args.omniglot:
            write_jpegs(tmp, args.images)
        rows = []
        for _ in range(2):  # interleaved rounds, best of each side
            ours = json.loads(subprocess.run([exe, folder] + opts, capture_output=True, text=True, check=True).stdout)
            theirs = torchvision_rate(folder, args.min_seconds, w)
            rows.append((ours, theirs))
    ours = max(r[0]["per_core_images_per_s"] for r in rows)
    pool = max(r[0]["pool_images_per_s"] for r in rows)
    theirs = max(r[1] for r in rows)
    import torchvision
    if args.omniglot:
        what = (f"{rows[0][0]['images']} Omniglot PNGs of 105 × 105, one bit ({args.omniglot}); decode + "
                f"RandomResizedCrop 28 (scale 0.8-1, ratio 0.9-1.11) + normalise, no flip")
    else:
        what = f"{args.images} JPEGs of 500 × 375 (quality 90); decode + RandomResizedCrop 224 + flip + normalise"
    print(f"{what}; torchvision {torchvision.__version__} with PIL, one thread each\n")
    print("| | images/s per core | ratio harness/torchvision |")
    print("|---|---:|---:|")
    print(f"| harness (Rust: image decode, fast_image_resize) | {ours:.1f} | {ours / theirs:.2f} |")
    print(f"| torchvision + PIL | {theirs:.1f} | 1.00 |")
    print(f"\nharness worker pool ({rows[0][0]['workers']} workers): {pool:.1f} images/s")


if __name__ == "__main__":
    sys.exit(main())
