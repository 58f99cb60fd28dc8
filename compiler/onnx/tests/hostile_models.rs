//! Hostile models built in the test: external data that is not a regular file or lies about
//! its size, and shapes whose values could not be held. Each must fail with its typed error
//! at once (no hang, no allocation from a claimed size); the CLI's crafted-input suite runs
//! the same classes under a memory limit.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use onnx_protobuf::tensor_proto::{DataLocation, DataType};
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::{
    type_proto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use protobuf::{EnumOrUnknown, MessageField};
use strata_ir::files::FileError;
use strata_ir::limits::LimitError;
use strata_ir::InferError;
use strata_onnx::{import_bytes, import_file, ImportOptions, OnnxError};

fn vi(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| Dimension {
            value: Some(dimension::Value::DimValue(d)),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        type_: MessageField::some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: DataType::FLOAT as i32,
                shape: MessageField::some(TensorShapeProto {
                    dim,
                    ..Default::default()
                }),
                ..Default::default()
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn model(op: &str, x: &[i64], init: TensorProto) -> Vec<u8> {
    let w = init.name.clone();
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: 17,
            ..Default::default()
        }],
        graph: MessageField::some(GraphProto {
            name: "hostile".into(),
            node: vec![NodeProto {
                op_type: op.into(),
                name: "n".into(),
                input: vec!["x".into(), w],
                output: vec!["y".into()],
                ..Default::default()
            }],
            input: vec![vi("x", x)],
            output: vec![ValueInfoProto {
                name: "y".into(),
                ..Default::default()
            }],
            initializer: vec![init],
            ..Default::default()
        }),
        ..Default::default()
    }
    .write_to_bytes()
    .expect("serialize")
}

fn external(dims: &[i64]) -> TensorProto {
    TensorProto {
        name: "w".into(),
        dims: dims.to_vec(),
        data_type: DataType::FLOAT as i32,
        data_location: EnumOrUnknown::new(DataLocation::EXTERNAL),
        external_data: vec![StringStringEntryProto {
            key: "location".into(),
            value: "w.bin".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A fresh directory holding `model.onnx` (an Add of `x` and the external `w`).
fn model_dir(tag: &str, w_dims: &[i64]) -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("hostile-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.onnx");
    std::fs::write(&path, model("Add", &[1, 1], external(w_dims))).unwrap();
    (dir, path)
}

/// Imports within a second, returning the error.
fn import_err(path: &Path) -> OnnxError {
    let start = Instant::now();
    let e = import_file(path, &ImportOptions::default()).expect_err("must fail");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    e
}

fn file_error(e: &OnnxError) -> Option<&FileError> {
    match e {
        OnnxError::ExternalDataIo { source, .. } | OnnxError::Io { source, .. } => {
            FileError::of(source)
        }
        _ => None,
    }
}

#[test]
fn external_data_in_a_fifo_is_refused_without_waiting() {
    let (dir, path) = model_dir("fifo", &[4]);
    let fifo = std::ffi::CString::new(dir.join("w.bin").to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let e = import_err(&path);
    assert!(
        matches!(&e, OnnxError::ExternalDataIo { name, .. } if name == "w"),
        "{e:?}"
    );
    assert_eq!(
        file_error(&e),
        Some(&FileError::NotRegular { kind: "a FIFO" })
    );
}

#[test]
fn external_data_that_is_a_directory_is_refused() {
    let (dir, path) = model_dir("dir", &[4]);
    std::fs::create_dir(dir.join("w.bin")).unwrap();
    let e = import_err(&path);
    assert_eq!(
        file_error(&e),
        Some(&FileError::NotRegular {
            kind: "a directory"
        }),
        "{e:?}"
    );
}

#[test]
fn a_sparse_file_shorter_than_the_tensor_is_measured_not_read() {
    let (dir, path) = model_dir("sparse", &[1 << 30]);
    std::fs::File::create(dir.join("w.bin"))
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let e = import_err(&path);
    assert!(
        matches!(e, OnnxError::ExternalDataRange { offset: 0, length, file_len, .. }
            if length == 4 << 30 && file_len == 2 << 30),
        "{e:?}"
    );
}

#[test]
fn a_small_tensor_in_a_huge_sparse_file_reads_only_its_bytes() {
    let (dir, path) = model_dir("sparse-ok", &[4]);
    std::fs::File::create(dir.join("w.bin"))
        .unwrap()
        .set_len(6 << 30)
        .unwrap();
    let start = Instant::now();
    let g = import_file(&path, &ImportOptions::default()).expect("imports");
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(g.constants().count(), 1);
}

#[test]
fn an_external_tensor_beyond_the_cap_is_refused_before_opening() {
    let (_, path) = model_dir("cap", &[1 << 31]); // 8 GiB of f32; w.bin does not exist
    let e = import_err(&path);
    assert!(
        matches!(&e, OnnxError::TensorTooLarge { name, .. } if name == "w"),
        "{e:?}"
    );
}

#[test]
fn a_model_file_past_protobufs_limit_is_measured_not_read() {
    let (dir, _) = model_dir("big", &[4]);
    let big = dir.join("big.onnx");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(3 << 30)
        .unwrap();
    let e = import_err(&big);
    assert_eq!(
        file_error(&e),
        Some(&FileError::TooLarge {
            len: 3 << 30,
            limit: strata_ir::limits::MAX_PROTOBUF_BYTES
        }),
        "{e:?}"
    );
}

#[test]
fn a_gemm_with_an_empty_reduction_and_2pow32_outputs_is_a_shape_error() {
    let b = TensorProto {
        name: "b".into(),
        dims: vec![0, 1 << 32],
        data_type: DataType::FLOAT as i32,
        ..Default::default()
    };
    let e = import_bytes(&model("Gemm", &[1, 0], b), None, &ImportOptions::default())
        .expect_err("too large");
    assert!(
        matches!(
            &e,
            OnnxError::Shape {
                source: InferError::TooLarge {
                    output: 0,
                    source: LimitError::Bytes { bytes, .. }
                },
                ..
            } if *bytes == 16 << 30
        ),
        "{e:?}"
    );
}

#[test]
fn pads_that_grow_a_value_past_the_cap_are_a_shape_error() {
    let pads = TensorProto {
        name: "pads".into(),
        dims: vec![4],
        data_type: DataType::INT64 as i32,
        raw_data: [0i64, 0, 0, 1 << 40]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect(),
        ..Default::default()
    };
    let e = import_bytes(
        &model("Pad", &[1, 4], pads),
        None,
        &ImportOptions::default(),
    )
    .expect_err("too large");
    assert!(
        matches!(
            &e,
            OnnxError::Shape {
                source: InferError::TooLarge {
                    source: LimitError::Elements { .. },
                    ..
                },
                ..
            }
        ),
        "{e:?}"
    );
}
