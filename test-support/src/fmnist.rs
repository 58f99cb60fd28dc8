//! The bundled Fashion-MNIST residual network (`models/fmnist_resnet8.onnx`: skip
//! connections, GlobalAveragePool, Gemm) and its fixtures.

use strata_compiler::npy::read_npy;
use strata_compiler::onnx::{import_file, ImportOptions};
use strata_ir::{Graph, Tensor};

use crate::repo_root;

/// `models/fmnist_resnet8.onnx`, imported.
pub fn fp32() -> Graph {
    import_file(
        &repo_root().join("models/fmnist_resnet8.onnx"),
        &ImportOptions::default(),
    )
    .expect("the bundled model imports")
}

/// `tests/fixtures/fmnist/{name}.npy`: `calib` (32 training images), `images` and `labels`
/// (the first 8 test images).
pub fn fixture(name: &str) -> Tensor {
    read_npy(&repo_root().join(format!("tests/fixtures/fmnist/{name}.npy")))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}
