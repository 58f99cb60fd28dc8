//! Crafted ONNX models, read by `strata inspect`: external data that is not a regular file or
//! lies about its size, shapes whose values could not be held, nesting and sizes protobuf
//! refuses, names too long to print.

use std::path::{Path, PathBuf};

use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{NodeProto, TensorProto, ValueInfoProto};
use strata_test_support::onnx::{external_tensor, f32vi, raw_tensor, M};

use crate::harness::{root, scratch, Case, Format};

/// A node named after its first output, without attributes.
fn node(op: &str, ins: &[&str], outs: &[&str]) -> NodeProto {
    strata_test_support::onnx::node(op, outs[0], ins, outs, vec![])
}

/// A model of opset 17 with one output.
fn model(
    node: Vec<NodeProto>,
    input: Vec<ValueInfoProto>,
    output: &str,
    initializer: Vec<TensorProto>,
) -> Vec<u8> {
    let mut m = M::new(17);
    (m.graph.node, m.graph.input, m.graph.initializer) = (node, input, initializer);
    m.output(output).bytes()
}

/// `y = x + w` with `w: f32[dims]` the given initializer.
fn add_model(w: TensorProto, dims: &[i64]) -> Vec<u8> {
    model(
        vec![node("Add", &["x", "w"], &["y"])],
        vec![f32vi("x", dims)],
        "y",
        vec![w],
    )
}

/// Length-delimited protobuf field `field` holding `body`.
fn field(field: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let varint = |mut v: u64, out: &mut Vec<u8>| loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    };
    varint(((field << 3) | 2) as u64, &mut out);
    varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

/// A model whose graph holds a node whose attribute holds a graph … `depth` levels deep.
fn nested_graphs(depth: usize) -> Vec<u8> {
    let mut graph = Vec::new();
    for _ in 0..depth {
        let attribute = field(6, &graph); // AttributeProto.g
        let node = field(5, &attribute); // NodeProto.attribute
        graph = field(1, &node); // GraphProto.node
    }
    field(7, &graph) // ModelProto.graph
}

fn sparse(path: &Path, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
}

pub fn cases() -> Vec<Case> {
    let dir = scratch("onnx");
    let inspect =
        |name: &'static str, path: &Path| Case::new(Format::Onnx, name, &[&"inspect", &path]);
    // Each model in its own directory, so its external data names only its own files.
    let model_in = |name: &'static str, bytes: Vec<u8>| -> (PathBuf, PathBuf) {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("model.onnx");
        std::fs::write(&p, bytes).unwrap();
        (d, p)
    };
    let mut cases = Vec::new();

    // External data: a FIFO hung the import (opened for reading, it waits for a writer).
    let (d, p) = model_in(
        "external_fifo",
        add_model(external_tensor("w", &[4], "w.bin", &[]), &[1, 4]),
    );
    let fifo = std::ffi::CString::new(d.join("w.bin").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    cases.push(
        inspect("external_data_fifo", &p).says(&["tensor `w`", "is a FIFO, not a regular file"]),
    );

    let (d, p) = model_in(
        "external_dir",
        add_model(external_tensor("w", &[4], "w.bin", &[]), &[1, 4]),
    );
    std::fs::create_dir(d.join("w.bin")).unwrap();
    cases
        .push(inspect("external_data_directory", &p).says(&["is a directory, not a regular file"]));

    let (d, p) = model_in(
        "external_dev_zero",
        add_model(external_tensor("w", &[4], "w.bin", &[]), &[1, 4]),
    );
    std::os::unix::fs::symlink("/dev/zero", d.join("w.bin")).unwrap();
    cases.push(
        inspect("external_data_symlink_to_dev_zero", &p)
            .says(&["resolves outside the model directory"]),
    );

    // A sparse 2 GiB file for a 4 GiB tensor: the range is checked before anything is read.
    let (d, p) = model_in(
        "external_sparse",
        add_model(external_tensor("w", &[1 << 30], "w.bin", &[]), &[1, 1]),
    );
    sparse(&d.join("w.bin"), 2 << 30);
    cases.push(inspect("external_data_sparse_too_short", &p).says(&[
        "offset 0 + length 4294967296 exceeds file",
        "of 2147483648 bytes",
    ]));

    // Beyond the tensor cap: refused before the file is even opened (it does not exist).
    let (_, p) = model_in(
        "external_beyond_cap",
        add_model(external_tensor("w", &[1 << 31], "absent.bin", &[]), &[1, 1]),
    );
    cases.push(
        inspect("external_tensor_beyond_cap", &p)
            .says(&["tensor `w`", "limit of 4294967296 bytes"]),
    );

    let (d, p) = model_in(
        "external_length",
        add_model(
            external_tensor("w", &[4], "w.bin", &[("length", "17".into())]),
            &[1, 4],
        ),
    );
    std::fs::write(d.join("w.bin"), [0u8; 16]).unwrap();
    cases.push(
        inspect("external_length_disagrees", &p).says(&["length 17 does not match the 16 bytes"]),
    );

    let (d, p) = model_in(
        "external_offset",
        add_model(
            external_tensor(
                "w",
                &[4],
                "w.bin",
                &[("offset", "18446744073709551615".into())],
            ),
            &[1, 4],
        ),
    );
    std::fs::write(d.join("w.bin"), [0u8; 16]).unwrap();
    cases.push(
        inspect("external_offset_overflows", &p)
            .says(&["offset 18446744073709551615 + length 16 exceeds"]),
    );

    // A Gemm with an empty reduction axis and 2^32 outputs: nothing to read, 16 GiB to write.
    let gemm = model(
        vec![node("Gemm", &["a", "b"], &["y"])],
        vec![f32vi("a", &[1, 0])],
        "y",
        vec![raw_tensor("b", DataType::FLOAT, &[0, 1 << 32], vec![])],
    );
    cases.push(
        inspect(
            "gemm_empty_reduction_2pow32_outputs",
            &model_in("gemm", gemm).1,
        )
        .says(&[
            "node `y` (Gemm)",
            "output 0",
            "17179869184 bytes, more than the limit",
        ]),
    );

    let pad = model(
        vec![node("Pad", &["x", "pads"], &["y"])],
        vec![f32vi("x", &[-1, 4])],
        "y",
        vec![raw_tensor(
            "pads",
            DataType::INT64,
            &[4],
            [0i64, 0, 0, 1 << 40]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        )],
    );
    cases.push(
        inspect("pad_to_2pow40", &model_in("pad", pad).1).says(&["node `y` (Pad)", "output 0"]),
    );

    let wide_input = model(
        vec![node("Relu", &["x"], &["y"])],
        vec![f32vi("x", &[-1, 1 << 31])],
        "y",
        vec![],
    );
    cases.push(
        inspect(
            "input_8gib_per_sample",
            &model_in("wide_input", wide_input).1,
        )
        .says(&["tensor `x`", "per batch item", "more than the limit"]),
    );

    let initializer = add_model(
        raw_tensor("w", DataType::FLOAT, &[1 << 40, 1 << 40], vec![]),
        &[1, 4],
    );
    cases.push(
        inspect(
            "initializer_dims_overflow",
            &model_in("init_dims", initializer).1,
        )
        .says(&["tensor `w`", "too large"]),
    );

    // Protobuf stops at depth 100 instead of recursing until the stack runs out.
    cases.push(
        inspect(
            "graphs_nested_5000_deep",
            &model_in("nested", nested_graphs(5000)).1,
        )
        .says(&["cannot decode ONNX protobuf"]),
    );

    // Over protobuf's 2 GiB limit: measured, not read.
    let big = dir.join("big.onnx");
    sparse(&big, 3 << 30);
    cases.push(
        inspect("file_3gib_sparse", &big)
            .says(&["is 3221225472 bytes, more than the limit of 2147483647 bytes"]),
    );

    let as_dir = dir.join("model_dir.onnx");
    std::fs::create_dir_all(&as_dir).unwrap();
    cases.push(
        inspect("model_is_a_directory", &as_dir).says(&["is a directory, not a regular file"]),
    );

    // A megabyte op type is cut when printed.
    let long_op = model(
        vec![node(&"X".repeat(1 << 20), &["x"], &["y"])],
        vec![f32vi("x", &[1, 4])],
        "y",
        vec![],
    );
    cases.push(
        inspect("op_type_1mb", &model_in("long_op", long_op).1)
            .says(&["unsupported op", "more bytes"]),
    );

    // Fixtures of scripts/make_bad_onnx.py, through the CLI.
    let fixture = |f: &str| root().join("tests/fixtures/bad_onnx").join(f);
    cases.push(
        inspect("fixture_truncated", &fixture("truncated.onnx"))
            .says(&["cannot decode ONNX protobuf"]),
    );
    cases.push(inspect("fixture_cycle", &fixture("cycle.onnx")).says(&["is part of a cycle"]));
    cases.push(
        inspect(
            "fixture_raw_data_length",
            &fixture("raw_data_length_mismatch.onnx"),
        )
        .says(&["raw_data holds"]),
    );
    cases.push(
        inspect("fixture_external_escape", &fixture("external_escape.onnx"))
            .says(&["relative path inside the model directory"]),
    );
    cases
}
