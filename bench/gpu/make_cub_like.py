#!/usr/bin/env python3
"""Writes a generated image folder in CUB-200-2011's own format (images.txt, image_class_labels.txt,
images/<class>/<file>.jpg): classes 1..C train, 101..100+C test (CUB's split), JPEGs of about W x H.

With the defaults it has CUB's exact shape (100 classes / 5,864 images train, 100 / 5,924 test, about
500 x 375), so `kind: cub` with `subset: false` loads it and checks its counts. Each class is a
coloured arrangement of shapes on a textured background, with per-image jitter; the point is the
JPEG pipeline's cost, not the task. Needs Pillow and numpy (both in the GPU machine's image).

Usage: make_cub_like.py OUT [--classes 100] [--train 5864] [--test 5924] [--size 500x375] [--jobs N]
"""
import argparse
import os
from multiprocessing import Pool

import numpy as np
from PIL import Image, ImageDraw


def counts(total, classes):
    """`total` images over `classes` classes, as evenly as possible."""
    base, extra = divmod(total, classes)
    return [base + (1 if c < extra else 0) for c in range(classes)]


def draw(job):
    path, cls, idx, (w, h) = job
    g = np.random.default_rng(cls * 100_003 + idx)
    c = np.random.default_rng(cls)
    jw, jh = int(w * g.uniform(0.85, 1.15)), int(h * g.uniform(0.85, 1.15))
    base = (g.random((jh // 8 + 1, jw // 8 + 1, 3)) * 255).astype(np.uint8)
    img = Image.fromarray(base).resize((jw, jh), Image.BILINEAR)
    d = ImageDraw.Draw(img)
    for _ in range(6):
        col = tuple(int(v) for v in c.integers(0, 256, 3))
        cx, cy = g.uniform(0.1, 0.9) * jw, g.uniform(0.1, 0.9) * jh
        r = c.uniform(0.05, 0.2) * min(jw, jh)
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=col)
    img.save(path, quality=85)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--classes", type=int, default=100, help="classes per split, at most 100")
    ap.add_argument("--train", type=int, default=5864)
    ap.add_argument("--test", type=int, default=5924)
    ap.add_argument("--size", default="500x375")
    ap.add_argument("--jobs", type=int, default=os.cpu_count())
    a = ap.parse_args()
    if not 1 <= a.classes <= 100:
        ap.error("--classes: CUB's format holds at most 100 classes per split")
    size = tuple(int(v) for v in a.size.split("x"))
    jobs, images, labels = [], [], []
    # CUB numbers its classes 1..200 and splits at 100: train classes 1..C, test classes 101..100+C.
    ids = list(range(1, a.classes + 1)) + list(range(101, 101 + a.classes))
    for cls, n in zip(ids, counts(a.train, a.classes) + counts(a.test, a.classes)):
        folder = f"{cls:03d}.class_{cls:03d}"
        os.makedirs(os.path.join(a.out, "images", folder), exist_ok=True)
        for i in range(n):
            rel = f"{folder}/img_{i:04d}.jpg"
            images.append(rel)
            labels.append(cls)
            jobs.append((os.path.join(a.out, "images", rel), cls, i, size))
    with Pool(a.jobs) as pool:
        pool.map(draw, jobs, chunksize=32)
    with open(os.path.join(a.out, "images.txt"), "w") as f:
        f.writelines(f"{i} {p}\n" for i, p in enumerate(images, start=1))
    with open(os.path.join(a.out, "image_class_labels.txt"), "w") as f:
        f.writelines(f"{i} {c}\n" for i, c in enumerate(labels, start=1))
    print(f"wrote {len(images)} JPEGs ({a.train} train, {a.test} test, {2 * a.classes} classes) to {a.out}")


if __name__ == "__main__":
    main()
