//! The verified high-level MLIR of a small quantized CNN (`small_cnn`: conv, grouped conv,
//! max pooling, matmul and Gemm layers, Relus) at K = 2 and K = 8, as MLIR prints it after
//! parsing and verification: what `strata emit-mlir` shows. A change to any kernel's text
//! shows up here line by line.

use std::sync::OnceLock;

use strata_backend_mlir::{emit, MlirOptions, Stage};
use strata_compiler::compile::{compile_to_container, CompileOptions};
use strata_ir::container::read_container;
use strata_ir::Graph;
use strata_test_support::models::{images, small_cnn};

fn quantized() -> &'static Graph {
    static G: OnceLock<Graph> = OnceLock::new();
    G.get_or_init(|| {
        let bytes = compile_to_container(
            small_cnn(),
            vec![images(16, 3)],
            &CompileOptions::default(),
            Default::default(),
            |_| {},
        )
        .unwrap();
        read_container(&bytes).unwrap().graph
    })
}

fn high(k: u8) -> String {
    let options = MlirOptions {
        planes: k,
        name: "small".into(),
        ..Default::default()
    };
    emit(quantized(), &options, Stage::High).unwrap()
}

#[test]
fn small_cnn_high_level_mlir_k2() {
    insta::assert_snapshot!(high(2));
}

#[test]
fn small_cnn_high_level_mlir_k8() {
    insta::assert_snapshot!(high(8));
}
