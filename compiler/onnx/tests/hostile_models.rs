//! Hostile models built in the test: external data that is not a regular file or lies about
//! its size, and shapes whose values could not be held. Each must fail with its typed error
//! at once (no hang, no allocation from a claimed size); the CLI's crafted-input suite runs
//! the same classes under a memory limit.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::TensorProto;
use strata_ir::files::FileError;
use strata_ir::limits::LimitError;
use strata_ir::InferError;
use strata_onnx::{import_bytes, import_file, ImportOptions, OnnxError};
use strata_test_support::onnx::{external_tensor, f32vi, node, raw_tensor, M};

/// `y = op(x, init)` in opset 17, the node named `n`.
fn model(op: &str, x: &[i64], init: TensorProto) -> Vec<u8> {
    let n = node(op, "n", &["x", &init.name], &["y"], vec![]);
    M::new(17)
        .input(f32vi("x", x))
        .init(init)
        .node(n)
        .output("y")
        .bytes()
}

fn external(dims: &[i64]) -> TensorProto {
    external_tensor("w", dims, "w.bin", &[])
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

/// A sparse file of `len` bytes: nothing is written, so any size is cheap.
fn sparse(path: impl AsRef<Path>, len: u64) {
    std::fs::File::create(path).unwrap().set_len(len).unwrap();
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
    sparse(dir.join("w.bin"), 2 << 30);
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
    sparse(dir.join("w.bin"), 6 << 30);
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
    sparse(&big, 3 << 30);
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

/// Imports `model`, expecting shape inference to refuse an output as too large: which
/// output, and the limit it broke.
fn too_large(model: &[u8]) -> (usize, LimitError) {
    let e = import_bytes(model, None, &ImportOptions::default()).expect_err("too large");
    match e {
        OnnxError::Shape {
            source: InferError::TooLarge { output, source },
            ..
        } => (output, source),
        e => panic!("not a too-large shape error: {e:?}"),
    }
}

#[test]
fn a_gemm_with_an_empty_reduction_and_2pow32_outputs_is_a_shape_error() {
    let b = raw_tensor("b", DataType::FLOAT, &[0, 1 << 32], vec![]);
    let (output, limit) = too_large(&model("Gemm", &[1, 0], b));
    assert_eq!(output, 0);
    assert!(
        matches!(limit, LimitError::Bytes { bytes, .. } if bytes == 16 << 30),
        "{limit:?}"
    );
}

#[test]
fn pads_that_grow_a_value_past_the_cap_are_a_shape_error() {
    let pads = strata_test_support::onnx::i64_tensor("pads", &[0, 0, 0, 1 << 40]);
    let (_, limit) = too_large(&model("Pad", &[1, 4], pads));
    assert!(matches!(limit, LimitError::Elements { .. }), "{limit:?}");
}
