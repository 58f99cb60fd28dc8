//! Compiles `models/mnist_cnn.onnx` to C at build time (K = 4 planes, generic target) with the
//! Strata library API, then builds the C with the `cc` crate into a static library.

use std::path::{Path, PathBuf};

use strata_compiler::build::{Build, Target};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // 64 calibration samples keep the build fast; the result is deterministic.
    let built = Build::new(root.join("models/mnist_cnn.onnx"))
        .calibration(root.join("tests/fixtures/mnist/calib.npy"))
        .calibration_samples(64)
        .planes(4)
        .target(Target::Generic)
        .name("mnist_cnn")
        .emit_c(&out)
        .unwrap_or_else(|e| panic!("strata: {e}"));
    println!(
        "cargo:rustc-env=MNIST_WEIGHT_BYTES={}",
        built.stats.weight_bytes
    );
    cc::Build::new()
        .file(&built.source)
        .include(&built.include_dir)
        .std("c99")
        // Fused multiply-adds would change the float epilogue's rounding.
        .flag_if_supported("-ffp-contract=off")
        .warnings(true)
        .compile("mnist_cnn");
}
