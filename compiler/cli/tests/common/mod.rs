//! Helpers shared by the compiler's integration tests: repository paths, batch slicing,
//! seeded values and running the `strata` binary. Each test file uses a subset.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use strata_ir::Tensor;

/// The repository root (fixtures and models live there).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Rows `range` of a batch-first f32 tensor.
pub fn rows(t: &Tensor, range: std::ops::Range<usize>) -> Tensor {
    let per: usize = t.shape()[1..].iter().product();
    let mut shape = t.shape().to_vec();
    shape[0] = range.len();
    let data = t.as_f32().unwrap()[range.start * per..range.end * per].to_vec();
    Tensor::from_f32(shape, data).unwrap()
}

/// `n` seeded values in [-1, 1) (xorshift), the same for a given seed on every machine.
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// Runs the `strata` binary built for these tests.
pub fn strata(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .expect("strata runs")
}

/// Runs `strata` and returns its stdout; fails the test if it fails.
pub fn ok(args: &[&str]) -> String {
    let out = strata(args);
    assert!(
        out.status.success(),
        "strata {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `strata` expecting failure and returns its stderr.
pub fn fails(args: &[&str]) -> String {
    let out = strata(args);
    assert!(
        !out.status.success(),
        "strata {args:?} unexpectedly succeeded"
    );
    String::from_utf8(out.stderr).unwrap()
}
