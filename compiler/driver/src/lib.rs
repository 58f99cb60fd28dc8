//! Strata's compiler driver: compiling a model to a `.strata` container, evaluating and
//! reporting it, choosing mixed precision, the manifest, and the API build scripts use. It
//! sits over the frontend (`strata-onnx`) and the backends (`strata-backend-c`), which it
//! re-exports so a build script needs this one crate; the `strata` CLI is a thin layer on it.

pub mod adaptive;
pub mod bench;
pub mod build;
pub mod compile;
pub mod eval;
pub mod inspect;
pub mod manifest;
pub mod mixed_precision;
pub mod model;
pub mod npy;
pub mod plot;
pub mod qat_tables;

/// The ONNX frontend.
pub use strata_onnx as onnx;

/// The backends, and the backend-neutral lowering they print.
pub mod backend {
    /// The C backend.
    pub use strata_backend_c as c;
    /// The MLIR backend (cargo feature `mlir`).
    #[cfg(feature = "mlir")]
    pub use strata_backend_mlir as mlir;

    /// What a build without the `mlir` feature says when asked for the MLIR backend.
    pub const MLIR_DISABLED: &str = "the MLIR backend is not built in: install LLVM/MLIR 22 \
(`apt-get update && apt-get install -y llvm-22-dev libmlir-22-dev mlir-22-tools libpolly-22-dev \
libzstd-dev libz3-dev libxml2-dev`) and rebuild with `cargo build --features mlir` \
(MLIR_SYS_220_PREFIX=/usr/lib/llvm-22 TABLEGEN_220_PREFIX=/usr/lib/llvm-22)";
    /// The lowering every backend consumes (and byte counts are read from).
    pub use strata_lower as lower;
}

pub use model::{load_model, load_model_with, LoadError, LoadOptions};
