#!/usr/bin/env python3
"""Writes tests/fixtures/qat_tables/: a two-layer MLP (`tiny.onnx`: Gemm 8→4, Relu, Gemm 4→3,
weights `fc.weight` and `head.weight`) and its QAT tables sidecar as numpy itself writes it,
stored (`tables.npz`, numpy.savez) and deflated (`tables_compressed.npz`,
numpy.savez_compressed), so the Rust reader is tested against numpy's real output.

The tables follow simple rules the tests recompute (docs/qat-tables.md for the layout):
scale = max|row| / 127 (what `vl-quantize` would choose), alpha[k] = scale·2^(8−k),
beta[k] = alpha[k]/2, bias[k] = the layer's bias, act[k] = (0.02·k, −k).

Needs numpy and onnx (`.venv/bin/python scripts/make_qat_tables_fixtures.py`).
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "qat_tables")
PLANES = (2, 4, 8)
rng = np.random.default_rng(19)


def main():
    os.makedirs(OUT, exist_ok=True)
    layers = {
        "fc": (rng.standard_normal((4, 8)).astype(np.float32), rng.standard_normal(4).astype(np.float32)),
        "head": (rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(3).astype(np.float32)),
    }
    n = helper.make_node
    inits = []
    for name, (w, b) in layers.items():
        inits += [numpy_helper.from_array(w, f"{name}.weight"), numpy_helper.from_array(b, f"{name}.bias")]
    graph = helper.make_graph(
        [
            n("Gemm", ["x", "fc.weight", "fc.bias"], ["h"], transB=1),
            n("Relu", ["h"], ["r"]),
            n("Gemm", ["r", "head.weight", "head.bias"], ["y"], transB=1),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="strata-fixture")
    model.ir_version = 8
    onnx.save(model, os.path.join(OUT, "tiny.onnx"))

    arrays = {
        "strata/format": np.array(1, dtype=np.int64),
        "strata/bits": np.array(8, dtype=np.int64),
        "strata/act_bits": np.array(8, dtype=np.int64),
        "strata/planes": np.array(PLANES, dtype=np.int64),
    }
    for name, (w, b) in layers.items():
        key = f"{name}.weight"
        scale = np.abs(w).max(axis=1) / np.float32(127)
        arrays[f"{key}/scale"] = scale
        for k in PLANES:
            alpha = scale * np.float32(2 ** (8 - k))
            arrays[f"{key}/k{k}/alpha"] = alpha
            arrays[f"{key}/k{k}/beta"] = alpha / np.float32(2)
            arrays[f"{key}/k{k}/bias"] = b
            arrays[f"{key}/k{k}/act"] = np.array([0.02 * k, -k], dtype=np.float32)
    np.savez(os.path.join(OUT, "tables.npz"), **arrays)
    np.savez_compressed(os.path.join(OUT, "tables_compressed.npz"), **arrays)


if __name__ == "__main__":
    main()
