#!/usr/bin/env python3
"""Writes tests/fixtures/dynamic/conv_hw.onnx: a small CNN whose input height and width are
dynamic (symbolic `H`, and `-1`), as exporters write image models that accept any size. The
CLI tests pin them with `--input-shape`. Also batch_expand.onnx: a learned token expanded to
the batch size through Shape → Gather → Concat → Where → Expand, as torch exports a ViT's
class token; the batch size cannot stay free through `Where`, so the CLI suggests pinning it.
Deterministic (fixed seed). Needs the .venv's onnx.
"""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    rng = np.random.default_rng(7)
    w1 = (rng.standard_normal((8, 1, 3, 3)) * 0.4).astype(np.float32)
    b1 = (rng.standard_normal(8) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((10, 8)) * 0.4).astype(np.float32)
    b2 = (rng.standard_normal(10) * 0.1).astype(np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, "H", -1])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
        helper.make_node("GlobalAveragePool", ["r1"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten", axis=1),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["logits"], name="fc", transB=1),
    ]
    inits = [
        numpy_helper.from_array(w1, "w1"),
        numpy_helper.from_array(b1, "b1"),
        numpy_helper.from_array(w2, "w2"),
        numpy_helper.from_array(b2, "b2"),
    ]
    graph = helper.make_graph(nodes, "conv_hw", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    out = os.path.join(ROOT, "tests", "fixtures", "dynamic")
    os.makedirs(out, exist_ok=True)
    onnx.save(model, os.path.join(out, "conv_hw.onnx"))
    images = rng.standard_normal((16, 1, 12, 10)).astype(np.float32)
    np.save(os.path.join(out, "images_12x10.npy"), images)
    labels = rng.integers(0, 10, size=16).astype(np.int64)
    np.save(os.path.join(out, "labels.npy"), labels)
    onnx.save(batch_expand(rng), os.path.join(out, "batch_expand.onnx"))
    onnx.save(sequence_first(rng), os.path.join(out, "sequence_first.onnx"))


def batch_expand(rng):
    """y = relu(x + expand(token, [N, 4])) with the target shape computed from x's batch."""
    token = (rng.standard_normal((1, 4)) * 0.5).astype(np.float32)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    i64 = lambda name, v: numpy_helper.from_array(np.array(v, dtype=np.int64), name)
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], name="shape"),
        helper.make_node("Gather", ["s", "zero"], ["n"], name="batch", axis=0),
        helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"], name="unsqueeze"),
        helper.make_node("Concat", ["n1", "four"], ["target"], name="concat", axis=0),
        helper.make_node("Equal", ["target", "minus_one"], ["is_free"], name="equal"),
        helper.make_node("Where", ["is_free", "ones", "target"], ["shape_out"], name="where"),
        helper.make_node("Expand", ["token", "shape_out"], ["tokens"], name="expand"),
        helper.make_node("Add", ["x", "tokens"], ["sum"], name="add"),
        helper.make_node("Relu", ["sum"], ["y"], name="relu"),
    ]
    inits = [
        numpy_helper.from_array(token, "token"),
        i64("zero", 0),
        i64("axes0", [0]),
        i64("four", [4]),
        i64("minus_one", [-1, -1]),
        i64("ones", [1, 1]),
    ]
    graph = helper.make_graph(nodes, "batch_expand", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def sequence_first(rng):
    """An LSTM over x: [T, 1, 2] whose symbolic first dimension is the sequence (as
    silero-vad's `silero_vad_16k_sequence.onnx` has it), so taking it as the batch fails."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["T", 1, 2])
    y = helper.make_tensor_value_info("y_h", TensorProto.FLOAT, [1, 1, 3])
    w = (rng.standard_normal((1, 12, 2)) * 0.5).astype(np.float32)
    r = (rng.standard_normal((1, 12, 3)) * 0.5).astype(np.float32)
    nodes = [helper.make_node("LSTM", ["x", "w", "r"], ["", "y_h"], name="lstm", hidden_size=3)]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(r, "r")]
    graph = helper.make_graph(nodes, "sequence_first", [x], [y], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    main()
