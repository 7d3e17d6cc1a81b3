#!/usr/bin/env python3
"""Converts the public ImageNet-pretrained BN-Inception weights (PyTorch state dict) into the
safetensors file `harness` loads for `backbone: {kind: bn_inception, weights: FILE}`.

Accepted inputs (download them yourself; they are not redistributed here):
  - bn_inception-52deb4733.pth  (Cadene's pretrainedmodels port, what the SoftTriple code loads)
  - bn_inception-9f5701afb96c8044.pth  (the older port: BatchNorm tensors stored as 1 x C)
The names are kept (conv1_7x7_s2.weight, inception_3a_1x1_bn.running_mean, ...), 1 x C BatchNorm
tensors are squeezed to C, the ImageNet classifier (last_linear.*) and num_batches_tracked are
dropped, and every name and shape is checked against the layout in
harness/tests/fixtures/bn_inception.json before anything is written (to FILE.tmp, then renamed).

Usage:
  .venv/bin/python3 bench/weights/convert_bn_inception.py bn_inception-52deb4733.pth bn_inception.safetensors
  .venv/bin/python3 bench/weights/convert_bn_inception.py --selftest OUT.safetensors
    (converts a 1 x C-style state dict of the fixture's formula weights; then
     HARNESS_BN_INCEPTION_WEIGHTS=OUT.safetensors cargo test -p harness --test models converted
     checks that harness computes the fixture's features from it)
"""
import argparse
import importlib.util
import json
import os
import struct
import sys

try:
    import torch
except ImportError as e:  # `make setup` installs libtorch for the harness alone, not torch's CUDA libraries
    sys.exit(f"error: cannot import torch ({e}): run `make setup-full` first")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAYOUT = os.path.join(ROOT, "harness", "tests", "fixtures", "bn_inception.json")
DTYPES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64"}


def expected_layout():
    with open(LAYOUT) as f:
        return {name: shape for name, shape in json.load(f)["variables"]}


def convert(state, layout):
    """The state dict's backbone tensors under the port's names and shapes, or SystemExit naming
    what is missing or does not fit."""
    out, problems = {}, []
    for name, shape in layout.items():
        if name not in state:
            problems.append(f"missing `{name}` (shape {shape})")
            continue
        t = state[name].detach().to("cpu").contiguous()
        if list(t.shape) != shape and t.dim() == 2 and t.shape[0] == 1 and [t.shape[1]] == shape:
            t = t.reshape(shape)  # the older port's 1 x C BatchNorm tensors
        if list(t.shape) != shape:
            problems.append(f"`{name}` has shape {list(t.shape)}, expected {shape}")
            continue
        if t.dtype not in DTYPES:
            problems.append(f"`{name}` has dtype {t.dtype}, expected a floating-point tensor")
            continue
        out[name] = t.float()
    ignored = sorted(k for k in state if k not in layout)
    unexpected = [k for k in ignored if not (k.startswith("last_linear.") or k.endswith("num_batches_tracked"))]
    if unexpected:
        problems.append(f"{len(unexpected)} tensors that are not BN-Inception's, e.g. {unexpected[:3]} "
                        "(is this the BN-Inception state dict?)")
    if problems:
        sys.exit("cannot convert:\n  " + "\n  ".join(problems))
    return out


def write_safetensors(tensors, path):
    """Writes the safetensors format (8-byte little-endian header size, JSON header, raw data)
    through a temporary file and a rename."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        data = tensors[name].numpy().tobytes()
        header[name] = dict(dtype="F32", shape=list(tensors[name].shape), data_offsets=[offset, offset + len(data)])
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * ((8 - len(head) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def selftest_state(layout):
    """The fixture's formula weights, stored as the older port stores them (BatchNorm as 1 x C),
    plus a classifier: what a downloaded state dict looks like."""
    spec = importlib.util.spec_from_file_location(
        "fixture", os.path.join(ROOT, "harness", "tests", "fixtures", "make_bn_inception_fixture.py"))
    fixture = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixture)
    state = {}
    for ordinal, name in enumerate(sorted(layout)):
        t = fixture.fill(name, layout[name], ordinal)
        state[name] = t.unsqueeze(0) if "_bn." in name else t
    state["last_linear.weight"] = torch.zeros(1000, 1024)
    state["last_linear.bias"] = torch.zeros(1000)
    return state


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", nargs="?", help="the .pth state dict")
    ap.add_argument("output", help="the .safetensors file to write")
    ap.add_argument("--selftest", action="store_true", help="convert the fixture's formula weights instead")
    args = ap.parse_args()
    layout = expected_layout()
    if args.selftest:
        state = selftest_state(layout)
    else:
        if not args.source:
            ap.error("give the .pth file to convert (or --selftest)")
        state = torch.load(args.source, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
    tensors = convert(state, layout)
    write_safetensors(tensors, args.output)
    print(f"{args.output}: {len(tensors)} tensors, "
          f"{sum(t.numel() for t in tensors.values()):,} parameters and statistics")


if __name__ == "__main__":
    main()
