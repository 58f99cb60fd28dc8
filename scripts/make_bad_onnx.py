#!/usr/bin/env python3
"""Generates the crafted malformed ONNX models in tests/fixtures/bad_onnx/.

Each file exercises one error path of Strata's ONNX frontend (see compiler/onnx/tests/bad_onnx.rs,
which asserts the exact error variant for each). The outputs are committed so the Rust tests
need no Python. Regenerate with:  python scripts/make_bad_onnx.py   (needs `onnx`, tested with 1.22.0)
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "bad_onnx")
F = TensorProto.FLOAT


def vi(name, shape, elem=F):
    return helper.make_tensor_value_info(name, elem, shape)


def model(nodes, inputs, outputs, inits=(), opset=13, domain_opsets=()):
    g = helper.make_graph(nodes, "bad", inputs, outputs, initializer=list(inits))
    ops = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in domain_opsets]
    m = helper.make_model(g, opset_imports=ops, producer_name="strata-bad-onnx")
    m.ir_version = 8
    return m


def save(name, m):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(m.SerializeToString() if not isinstance(m, bytes) else m)


def relu_model():
    return model([helper.make_node("Relu", ["x"], ["y"], name="relu0")], [vi("x", [1, 4])], [vi("y", [1, 4])])


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))

    # --- not a protobuf at all ---
    good = relu_model().SerializeToString()
    save("truncated.onnx", good[: len(good) // 2 + 3])
    save("garbage.onnx", bytes([0xFF] * 7 + [0x0F, 0x13, 0x37] * 10))
    save("empty.onnx", b"")

    # --- graph structure ---
    w = numpy_helper.from_array(np.ones((2, 3, 3, 3), np.float32), "conv_w_present")
    save("missing_initializer.onnx", model(
        [helper.make_node("Conv", ["x", "conv_w"], ["y"], name="conv0")],
        [vi("x", [1, 3, 8, 8])], [vi("y", [1, 2, 6, 6])], [w]))
    save("dangling_input.onnx", model(
        [helper.make_node("Relu", ["x"], ["a"], name="relu0"),
         helper.make_node("Add", ["a", "typo_value"], ["y"], name="add0")],
        [vi("x", [1, 4])], [vi("y", [1, 4])]))
    save("dangling_output.onnx", model(
        [helper.make_node("Relu", ["x"], ["a"], name="relu0")],
        [vi("x", [1, 4])], [vi("not_produced", [1, 4])]))
    save("cycle.onnx", model(
        [helper.make_node("Add", ["x", "b"], ["a"], name="add_a"),
         helper.make_node("Relu", ["a"], ["b"], name="relu_b")],
        [vi("x", [1, 4])], [vi("b", [1, 4])]))
    save("duplicate_value.onnx", model(
        [helper.make_node("Relu", ["x"], ["y"], name="first"),
         helper.make_node("Sigmoid", ["x"], ["y"], name="second")],
        [vi("x", [1, 4])], [vi("y", [1, 4])]))

    # --- shapes ---
    save("shape_mismatch_add.onnx", model(
        [helper.make_node("Add", ["a", "b"], ["y"], name="add_bad")],
        [vi("a", [2, 3]), vi("b", [4, 5])], [vi("y", [2, 3])]))
    save("gemm_inner_mismatch.onnx", model(
        [helper.make_node("Gemm", ["a", "b"], ["y"], name="gemm_bad")],
        [vi("a", [2, 3]), vi("b", [4, 5])], [vi("y", [2, 5])]))
    save("output_type_mismatch.onnx", model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu0")],
        [vi("x", [2, 3])], [vi("y", [2, 4])]))
    save("symbolic_non_batch_dim.onnx", model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu0")],
        [vi("x", ["N", "C"])], [vi("y", ["N", "C"])]))
    save("absurd_input_dims.onnx", model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu0")],
        [vi("x", [1, 2**40])], [vi("y", [1, 2**40])]))
    save("reshape_nonconst_shape.onnx", model(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape0")],
        [vi("x", [2, 6]), vi("shape", [2], TensorProto.INT64)], [vi("y", [3, 4])]))

    # --- tensors ---
    huge = TensorProto()
    huge.name = "huge_w"
    huge.data_type = F
    huge.dims.extend([2**31, 2**31])
    huge.raw_data = b"\0" * 16
    save("absurd_initializer_dims.onnx", model(
        [helper.make_node("Add", ["x", "huge_w"], ["y"], name="add0")],
        [vi("x", [1, 4])], [vi("y", [1, 4])], [huge]))
    short = TensorProto()
    short.name = "short_w"
    short.data_type = F
    short.dims.extend([2, 3])
    short.raw_data = b"\0" * 10
    save("raw_data_length_mismatch.onnx", model(
        [helper.make_node("Add", ["x", "short_w"], ["y"], name="add0")],
        [vi("x", [2, 3])], [vi("y", [2, 3])], [short]))
    half = numpy_helper.from_array(np.ones((1, 4), np.float16), "half_w")
    save("float16_initializer.onnx", model(
        [helper.make_node("Add", ["x", "half_w"], ["y"], name="add0")],
        [vi("x", [1, 4])], [vi("y", [1, 4])], [half]))
    save("cast_to_bfloat16.onnx", model(
        [helper.make_node("Cast", ["x"], ["y"], name="cast0", to=TensorProto.BFLOAT16)],
        [vi("x", [1, 4])], [vi("y", [1, 4], TensorProto.BFLOAT16)]))

    def external(name, location, offset, length):
        t = TensorProto()
        t.name = name
        t.data_type = F
        t.dims.extend([1, 4])
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", location), ("offset", str(offset)), ("length", str(length))):
            e = t.external_data.add()
            e.key, e.value = k, v
        return t

    save("external_escape.onnx", model(
        [helper.make_node("Add", ["x", "ext_w"], ["y"], name="add0")],
        [vi("x", [1, 4])], [vi("y", [1, 4])], [external("ext_w", "../escape.bin", 0, 16)]))
    save("external_absolute.onnx", model(
        [helper.make_node("Add", ["x", "ext_w"], ["y"], name="add0")],
        [vi("x", [1, 4])], [vi("y", [1, 4])], [external("ext_w", "/etc/hostname", 0, 16)]))
    with open(os.path.join(OUT, "external_small.bin"), "wb") as f:
        f.write(np.arange(4, dtype=np.float32).tobytes())  # 16 bytes
    save("external_offset_past_eof.onnx", model(
        [helper.make_node("Add", ["x", "ext_w"], ["y"], name="add0")],
        [vi("x", [1, 4])], [vi("y", [1, 4])], [external("ext_w", "external_small.bin", 1024, 16)]))

    # --- ops, opsets, attributes ---
    save("unsupported_op.onnx", model(
        [helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["y"], name="nms0")],
        [vi("boxes", [1, 4, 4]), vi("scores", [1, 1, 4])], [vi("y", [1, 3], TensorProto.INT64)]))
    save("unsupported_domain.onnx", model(
        [helper.make_node("FusedConv", ["x", "w"], ["y"], name="fused0", domain="com.microsoft")],
        [vi("x", [1, 3, 8, 8]), vi("w", [2, 3, 3, 3])], [vi("y", [1, 2, 6, 6])],
        domain_opsets=[("com.microsoft", 1)]))
    save("opset_too_old.onnx", model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu_old")],
        [vi("x", [1, 4])], [vi("y", [1, 4])], opset=6))
    save("opset_too_new.onnx", model(
        [helper.make_node("Relu", ["x"], ["y"], name="relu_new")],
        [vi("x", [1, 4])], [vi("y", [1, 4])], opset=99))
    save("hardswish_before_opset14.onnx", model(
        [helper.make_node("HardSwish", ["x"], ["y"], name="hswish0")],
        [vi("x", [1, 4])], [vi("y", [1, 4])], opset=13))
    save("wrong_attribute_type.onnx", model(
        [helper.make_node("Flatten", ["x"], ["y"], name="flatten0", axis=[1])],
        [vi("x", [2, 3, 4])], [vi("y", [2, 12])]))
    save("attribute_out_of_range.onnx", model(
        [helper.make_node("Softmax", ["x"], ["y"], name="softmax0", axis=5)],
        [vi("x", [2, 3])], [vi("y", [2, 3])]))
    save("missing_attribute.onnx", model(
        [helper.make_node("Concat", ["a", "b"], ["y"], name="concat0")],
        [vi("a", [2, 3]), vi("b", [2, 3])], [vi("y", [4, 3])]))
    save("resize_cubic.onnx", model(
        [helper.make_node("Resize", ["x", "", "scales"], ["y"], name="resize0", mode="cubic")],
        [vi("x", [1, 1, 2, 2])], [vi("y", [1, 1, 4, 4])],
        [numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")]))
    bn_inits = [numpy_helper.from_array(np.ones(3, np.float32), n) for n in ("s", "b", "m", "v")]
    save("batchnorm_training.onnx", model(
        [helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], name="bn0",
                          training_mode=1)],
        [vi("x", [1, 3, 4, 4])], [vi("y", [1, 3, 4, 4])], bn_inits, opset=15))
    save("maxpool_indices.onnx", model(
        [helper.make_node("MaxPool", ["x"], ["y", "idx"], name="pool0", kernel_shape=[2, 2])],
        [vi("x", [1, 1, 4, 4])], [vi("y", [1, 1, 3, 3]), vi("idx", [1, 1, 3, 3], TensorProto.INT64)]))
    print(f"wrote {len(os.listdir(OUT))} files to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    sys.exit(main())
