"""Fashion-MNIST from Debian's `dataset-fashion-mnist` (gzipped IDX files), normalised as
`models/fmnist_resnet8.onnx` expects: `(pixel/255 − 0.2860)/0.3530`, float32 [N, 1, 28, 28].

    python fmnist.py OUT_DIR    # writes test_images.npy, test_labels.npy, train_images.npy, train_labels.npy
"""

from __future__ import annotations

import gzip
import os
import struct
import sys

import numpy as np

ROOT = os.environ.get("FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist")
MEAN, STD = 0.2860, 0.3530


def _idx(path: str) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    if len(data) < 4:
        raise ValueError(f"{path}: too short for an IDX header")
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {data[:4].hex()})")
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: {body.size} bytes of data for dims {dims}")
    return body.reshape(dims)


def load(split: str) -> tuple[np.ndarray, np.ndarray]:
    """`(images float32 [N,1,28,28] normalised, labels int64 [N])` of `train` or `test`."""
    prefix = {"train": "train", "test": "t10k"}[split]
    x = _idx(os.path.join(ROOT, f"{prefix}-images-idx3-ubyte.gz"))
    y = _idx(os.path.join(ROOT, f"{prefix}-labels-idx1-ubyte.gz"))
    x = ((x.astype(np.float32) / 255.0 - MEAN) / STD).astype(np.float32)[:, None]
    return x, y.astype(np.int64)


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    for split in ("train", "test"):
        x, y = load(split)
        np.save(os.path.join(out, f"{split}_images.npy"), x)
        np.save(os.path.join(out, f"{split}_labels.npy"), y)
        print(f"{split}: {x.shape[0]} images")
