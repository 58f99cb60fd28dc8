#!/usr/bin/env python3
"""Exports the benchmark's larger convolutional net: torchvision's ResNet-18, full width, on
3x64x64 inputs (150 M multiply-accumulates per image), for scripts/bench_mlir.py.

    ~/.cache/strata/torch-venv/bin/python scripts/export_resnet18.py OUT_DIR

No pretrained weights are downloaded (no network here): the weights are torchvision's seeded
initialisation and the BatchNorm statistics are averaged over a few seeded batches in train
mode, as for the corpus (scripts/make_corpus.py), so the activations have realistic ranges.
The network is then a latency subject, not a classifier: the benchmark reports agreement
with onnxruntime FP32 instead of accuracy.

Writes OUT_DIR/resnet18_64.onnx (TorchScript exporter, opset 17, free batch axis),
OUT_DIR/resnet18_64.calib.npy (32 seeded inputs) and OUT_DIR/resnet18_64.images.npy (64).
"""

import os
import sys

import numpy as np
import torch
import torchvision


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "."
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None)
    net.train()
    with torch.no_grad():
        for _ in range(4):
            net(torch.randn(16, 3, 64, 64))
    net.eval()
    x = torch.randn(1, 3, 64, 64)
    path = os.path.join(out, "resnet18_64.onnx")
    torch.onnx.export(
        net,
        x,
        path,
        opset_version=17,
        dynamo=False,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
    )
    rng = np.random.default_rng(1)
    np.save(os.path.join(out, "resnet18_64.calib.npy"), rng.standard_normal((32, 3, 64, 64), np.float32))
    np.save(os.path.join(out, "resnet18_64.images.npy"), rng.standard_normal((64, 3, 64, 64), np.float32))
    print(path)


if __name__ == "__main__":
    main()
