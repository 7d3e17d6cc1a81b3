#!/usr/bin/env python3
"""The PyTorch side of the GPU script's epoch comparison: the same training epochs as the harness's
run in PyTorch as a user writes it (torchvision ResNet-50 from random init + Linear head + L2
normalisation; torchvision transforms; a DataLoader with the same workers; SoftTriple written from
the paper's formulas, bench/peers/losses.py; Adam with the run's learning rates), on the same JPEGs.

Reads a folder in CUB's format (bench/gpu/make_cub_like.py), trains on classes 1..C (the first half).
Prints one JSON object: per-epoch wall seconds, seconds blocked waiting for the next batch, images/s,
the allocator's peak memory.

Usage: peer_epoch.py ROOT [--batch 32] [--workers 8] [--epochs 2] [--bf16] [--device cuda] [--size 224]
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F
import torchvision
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "peers"))
from losses import torch_loss  # noqa: E402  (the same formulas the loss peer bench uses)


class CubLike(torch.utils.data.Dataset):
    """The training half of a CUB-format folder: (image, class index from 0)."""

    def __init__(self, root, transform):
        paths = dict(line.split() for line in open(os.path.join(root, "images.txt")) if line.strip())
        labels = [line.split() for line in open(os.path.join(root, "image_class_labels.txt")) if line.strip()]
        classes = sorted({int(c) for _, c in labels})
        train = set(classes[: len(classes) // 2])
        self.items = [(os.path.join(root, "images", paths[i]), int(c) - 1) for i, c in labels if int(c) in train]
        self.num_classes = len(train)
        self.transform = transform

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, y = self.items[i]
        return self.transform(Image.open(path).convert("RGB")), y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--k", type=int, default=10)
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.manual_seed(0)
    tf = transforms.Compose([
        transforms.RandomResizedCrop(a.size, scale=(0.08, 1.0), ratio=(0.75, 4 / 3)),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    data = CubLike(a.root, tf)
    loader = torch.utils.data.DataLoader(data, batch_size=a.batch, shuffle=True, num_workers=a.workers,
                                         drop_last=True, persistent_workers=a.workers > 0)
    backbone = torchvision.models.resnet50(weights=None)
    backbone.fc = torch.nn.Identity()
    head = torch.nn.Linear(2048, a.dim)
    model = torch.nn.Sequential(backbone, head).to(dev)
    cfg = {"kind": "soft_triple", "centers_per_class": a.k, "la": 20.0, "gamma": 0.1, "tau": 0.2, "margin": 0.01}
    fwd, centres = torch_loss(cfg, data.num_classes, a.dim)
    for c in centres:
        c.data = c.data.to(dev)
    opt = torch.optim.Adam([{"params": backbone.parameters(), "lr": 1e-4}, {"params": head.parameters(), "lr": 1e-4},
                            {"params": centres, "lr": 1e-2}], eps=0.01, weight_decay=1e-4)
    epochs = []
    for _ in range(a.epochs):
        start, wait, n, losses = time.perf_counter(), 0.0, 0, []
        it = iter(loader)
        while True:
            t = time.perf_counter()
            try:
                x, y = next(it)
            except StopIteration:
                break
            wait += time.perf_counter() - t
            x, y = x.to(dev, non_blocking=True), y.to(dev, non_blocking=True)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=a.bf16):
                e = model(x)
            loss = fwd(F.normalize(e.float(), dim=1), y)
            losses.append(loss.item())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            n += len(y)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        sec = time.perf_counter() - start
        epochs.append({"seconds": sec, "data_wait_seconds": wait, "images": n, "images_per_s": n / sec,
                       "mean_loss": sum(losses) / max(len(losses), 1)})
    peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else 0
    print(json.dumps({"side": "pytorch", "batch": a.batch, "workers": a.workers, "bf16": a.bf16,
                      "epochs": epochs, "peak_allocated_bytes": peak, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
