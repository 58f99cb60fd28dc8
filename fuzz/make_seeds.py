#!/usr/bin/env python3
"""Writes the generated part of the fuzz seeds (fuzz/seeds/<target>/): small valid ONNX models
covering the importer's op families and shape folding, and .npy files of every element type
and format version numpy writes. The other seeds are copies of the test fixtures and files
made with the strata CLI (see fuzz/make_seeds.sh, which calls this).

Needs `onnx` and `numpy` (the pinned versions in requirements.txt; `.venv/bin/python`).
"""

import io
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SEEDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds")
F = TensorProto.FLOAT
rng = np.random.default_rng(16)


def vi(name, shape, elem=F):
    return helper.make_tensor_value_info(name, elem, shape)


def init(name, shape, dtype=np.float32):
    return numpy_helper.from_array(rng.standard_normal(shape).astype(dtype), name)


def model(nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, "seed", inputs, outputs, initializer=list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="strata-fuzz-seed")
    m.ir_version = 8
    return m.SerializeToString()


def onnx_seeds():
    n = helper.make_node
    yield "gemm_relu", model(
        [n("Gemm", ["x", "w", "b"], ["g"], transB=1), n("Relu", ["g"], ["y"])],
        [vi("x", ["N", 8])], [vi("y", ["N", 4])], [init("w", (4, 8)), init("b", (4,))])
    yield "conv_pool_flatten", model(
        [n("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], strides=[1, 1]),
         n("BatchNormalization", ["c", "s", "bb", "m", "v"], ["bn"]),
         n("MaxPool", ["bn"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
         n("Flatten", ["p"], ["f"], axis=1),
         n("Softmax", ["f"], ["y"], axis=1)],
        [vi("x", ["N", 1, 4, 4])], [vi("y", ["N", 8])],
        [init("w", (2, 1, 3, 3)), init("b", (2,)), init("s", (2,)), init("bb", (2,)),
         init("m", (2,)), numpy_helper.from_array(np.ones(2, np.float32), "v")])
    # The exporter's dynamic reshape: Shape -> Gather -> Unsqueeze -> Concat -> Reshape.
    yield "shape_subgraph_reshape", model(
        [n("Shape", ["x"], ["s"]),
         n("Gather", ["s", "zero"], ["n0"], axis=0),
         n("Unsqueeze", ["n0", "axes"], ["n1"]),
         n("Concat", ["n1", "minus1"], ["shape"], axis=0),
         n("Reshape", ["x", "shape"], ["y"])],
        [vi("x", ["N", 2, 3])], [vi("y", ["N", 6])],
        [numpy_helper.from_array(np.array(0, np.int64), "zero"),
         numpy_helper.from_array(np.array([0], np.int64), "axes"),
         numpy_helper.from_array(np.array([-1], np.int64), "minus1")])
    yield "pad_slice_concat_transpose", model(
        [n("Pad", ["x", "pads"], ["p"], mode="constant"),
         n("Slice", ["p", "st", "en", "ax"], ["s"]),
         n("Concat", ["s", "s"], ["c"], axis=1),
         n("Transpose", ["c"], ["y"], perm=[0, 2, 1])],
        [vi("x", ["N", 2, 3])], [vi("y", ["N", 3, 4])],
        [numpy_helper.from_array(np.array([0, 0, 0, 0, 0, 0], np.int64), "pads"),
         numpy_helper.from_array(np.array([0], np.int64), "st"),
         numpy_helper.from_array(np.array([2], np.int64), "en"),
         numpy_helper.from_array(np.array([1], np.int64), "ax")])
    yield "matmul_add_mul_clip", model(
        [n("MatMul", ["x", "w"], ["m"]), n("Add", ["m", "b"], ["a"]),
         n("Mul", ["a", "a"], ["q"]), n("Clip", ["q", "lo", "hi"], ["y"])],
        [vi("x", ["N", 3, 5])], [vi("y", ["N", 3, 2])],
        [init("w", (5, 2)), init("b", (2,)),
         numpy_helper.from_array(np.array(-1, np.float32), "lo"),
         numpy_helper.from_array(np.array(1, np.float32), "hi")])
    yield "convtranspose_avgpool_reducemean", model(
        [n("ConvTranspose", ["x", "w"], ["t"], strides=[2, 2]),
         n("AveragePool", ["t"], ["p"], kernel_shape=[2, 2]),
         n("ReduceMean", ["p"], ["y"], axes=[2, 3], keepdims=1)],
        [vi("x", ["N", 2, 3, 3])], [vi("y", ["N", 1, 1, 1])], [init("w", (2, 1, 2, 2))], opset=13)
    yield "split_cast_gather", model(
        [n("Split", ["x"], ["a", "b"], axis=1, split=[1, 2]),
         n("Cast", ["b"], ["c"], to=TensorProto.DOUBLE),
         n("Gather", ["c", "idx"], ["y"], axis=1)],
        [vi("x", ["N", 3])], [vi("a", ["N", 1]), vi("y", ["N", 2], TensorProto.DOUBLE)],
        [numpy_helper.from_array(np.array([1, 0], np.int64), "idx")], opset=11)


def npy_bytes(a, version=None):
    buf = io.BytesIO()
    if version is None:
        np.save(buf, a)
    else:
        np.lib.format.write_array(buf, a, version=version)
    return buf.getvalue()


def npy_seeds():
    yield "f32_2x3", npy_bytes(rng.standard_normal((2, 3)).astype(np.float32))
    yield "f64_scalar", npy_bytes(np.array(3.5))
    yield "i8_v2", npy_bytes(np.arange(-4, 4, dtype=np.int8), version=(2, 0))
    yield "u8_v3", npy_bytes(np.arange(6, dtype=np.uint8).reshape(1, 2, 3), version=(3, 0))
    yield "i32_big_endian", npy_bytes(np.arange(4, dtype=">i4"))
    yield "i64_labels", npy_bytes(np.array([1, 0, 7], np.int64))
    yield "bool", npy_bytes(np.array([True, False, True]))
    yield "empty_0x5", npy_bytes(np.zeros((0, 5), np.float32))
    yield "fortran_1d", npy_bytes(np.asfortranarray(np.arange(3, dtype=np.float32)))
    yield "fortran_2d", npy_bytes(np.asfortranarray(np.ones((2, 2), np.float32)))
    yield "complex_unsupported", npy_bytes(np.ones(2, np.complex64))


def main():
    for target, seeds in (("onnx_import", onnx_seeds()), ("npy_reader", npy_seeds())):
        out = os.path.join(SEEDS, target)
        os.makedirs(out, exist_ok=True)
        for name, data in seeds:
            ext = "onnx" if target == "onnx_import" else "npy"
            with open(os.path.join(out, f"gen_{name}.{ext}"), "wb") as f:
                f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
