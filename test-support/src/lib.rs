//! Helpers shared by the tests of every Strata crate (a dev-dependency only, never
//! published): one seeded generator, so a failure reproduces on every machine; tensor and
//! graph builders; and running the `strata` binary from the CLI's tests.
//!
//! Each test binary uses a subset, hence the `dead_code`-free layout in small modules.

pub mod bitplane;
#[cfg(feature = "compiler")]
pub mod c;
pub mod cli;
#[cfg(feature = "compiler")]
pub mod fmnist;
pub mod graphs;
#[cfg(feature = "compiler")]
pub mod mnist;
pub mod models;
#[cfg(feature = "compiler")]
pub mod npz;
#[cfg(feature = "onnx")]
pub mod onnx;
pub mod rng;
pub mod tensors;

pub use graphs::{
    batch_ty, conv, conv_attrs, conv_transpose_attrs, f32_ty, f32c, gemm, max_pool, op, pool_attrs,
    ty, weight,
};
pub use rng::{rand_tensor, values, XorShift};
pub use tensors::{assert_close, f32t, f64t, i64t, rows, tensor};

#[cfg(feature = "runtime")]
pub use tensors::{bad_attr, eval1, eval_err, expect_all, Case};

use std::path::PathBuf;

/// Strict C99 with every warning an error: how the tests build emitted C.
pub const STRICT_C99: [&str; 6] = [
    "-std=c99",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-O2",
];

/// The repository root (fixtures, models and the README live there).
pub fn repo_root() -> PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}
