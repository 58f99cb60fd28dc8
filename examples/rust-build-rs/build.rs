//! Compiles `models/mnist_cnn.onnx` at build time (K = 4 planes) with the Strata library API:
//! to C for the generic target, built into a static library with the `cc` crate, and — with
//! this crate's `mlir` feature — also through the MLIR backend to a native object with the
//! same C API (`mnist_cnn_mlir_run`), archived with `cc` as well.

use std::path::{Path, PathBuf};

use strata_compiler::build::{Backend, Build, Target};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // 64 calibration samples keep the build fast; the result is deterministic.
    let model = Build::new(root.join("models/mnist_cnn.onnx"))
        .calibration(root.join("tests/fixtures/mnist/calib.npy"))
        .calibration_samples(64);
    // Compile once; both backends start from the same `.strata` file.
    let strata = out.join("mnist_cnn.strata");
    model
        .write_strata(&strata)
        .unwrap_or_else(|e| panic!("strata: {e}"));
    // The `.strata` file is this script's own output: not an input to watch.
    let built = Build::new(&strata)
        .cargo_metadata(false)
        .planes(4)
        .target(Target::Generic)
        .name("mnist_cnn")
        .emit(&out)
        .unwrap_or_else(|e| panic!("strata: {e}"));
    println!(
        "cargo:rustc-env=MNIST_WEIGHT_BYTES={}",
        built.stats.weight_bytes
    );
    cc::Build::new()
        .file(&built.artifact)
        .include(&built.include_dir)
        .std("c99")
        // Fused multiply-adds would change the float epilogue's rounding.
        .flag_if_supported("-ffp-contract=off")
        .warnings(true)
        .compile("mnist_cnn");
    if std::env::var_os("CARGO_FEATURE_MLIR").is_some() {
        let object = Build::new(&strata)
            .cargo_metadata(false)
            .planes(4)
            .backend(Backend::Mlir)
            .name("mnist_cnn_mlir")
            .emit(&out)
            .unwrap_or_else(|e| panic!("strata: {e}"));
        cc::Build::new()
            .object(&object.artifact)
            .compile("mnist_cnn_mlir");
        // The object calls libm (expf, …).
        println!("cargo:rustc-link-lib=m");
    }
}
