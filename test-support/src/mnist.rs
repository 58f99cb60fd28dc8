//! The bundled MNIST CNN and its fixtures, compiled the way `strata compile` does: the
//! end-to-end tests of the CLI and the facade crate start from it.

use strata_compiler::compile::{compile_to_container, CompileOptions};
use strata_compiler::npy::read_npy;
use strata_compiler::onnx::{import_file, ImportOptions};
use strata_ir::{Graph, Tensor};

use crate::repo_root;

/// `models/mnist_cnn.onnx`, imported.
pub fn fp32() -> Graph {
    import_file(
        &repo_root().join("models/mnist_cnn.onnx"),
        &ImportOptions::default(),
    )
    .expect("the bundled model imports")
}

/// `tests/fixtures/mnist/{name}.npy`: `calib` (training images), `images` and `labels`
/// (the first 500 test images).
pub fn fixture(name: &str) -> Tensor {
    read_npy(&repo_root().join(format!("tests/fixtures/mnist/{name}.npy")))
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The `.strata` bytes of `fp32` compiled with the default options on `calib`.
pub fn container(fp32: Graph, calib: Tensor) -> Vec<u8> {
    compile_to_container(
        fp32,
        vec![calib],
        &CompileOptions::default(),
        Default::default(),
        |_| {},
    )
    .expect("the model compiles")
}

/// `g` (the compiled MNIST CNN) with a second input `bias` (10 floats) added to the logits,
/// and three outputs: those logits, the first bit-plane layer's output (an intermediate value
/// later steps also read) and `bias` itself (an input copied through). The several-ports
/// form of every backend's API is tested on it.
pub fn two_in_three_out(g: &Graph) -> Graph {
    use strata_ir::ops::elementwise::BinaryOp;
    use strata_ir::{NodeKind, Op, ValueRef};
    let mut g = g.clone();
    let logits = g.outputs()[0];
    let bias = g.add_input("bias", crate::batch_ty(&[10]));
    let plus = crate::op(&mut g, "plus", Op::Binary(BinaryOp::Add), &[logits, bias]);
    let first = g
        .topo_order()
        .expect("the model is a DAG")
        .into_iter()
        .find(|&id| {
            matches!(
                g.node(id).map(|n| &n.kind),
                Ok(NodeKind::Op(Op::Bitplane(_)))
            )
        })
        .expect("the model has a bit-plane layer");
    g.set_outputs(vec![plus, ValueRef::first(first), bias]);
    strata_ir::verify(&g).expect("the graph verifies");
    g
}
