//! Strata: an ahead-of-time compiler for vertically layered quantized neural networks.
//!
//! This facade re-exports the workspace crates so that applications and the end-to-end tests
//! depend on one name; a device build that only executes models should depend on
//! `strata-ir` + `strata-runtime` directly and stay free of ONNX and MLIR.

pub use strata_compiler as compiler;
pub use strata_ir as ir;
pub use strata_passes as passes;
pub use strata_runtime as runtime;
