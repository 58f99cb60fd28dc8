//! The verifier against crafted malformed graphs, one per error kind.

use strata_test_support::models::{every_op, snapshot_cnn};

use strata_ir::ops::{BinaryOp, Split, UnaryOp};
use strata_ir::{
    verify, ConstId, DType, Edge, Graph, NodeKind, Op, Tensor, TensorType, Value, ValueRef,
    VerifyError as E,
};

fn f32t(dims: &[usize]) -> TensorType {
    TensorType::known(DType::F32, dims)
}

fn val(name: &str, dims: &[usize]) -> Vec<Value> {
    vec![Value {
        name: name.into(),
        ty: f32t(dims),
    }]
}

fn base() -> (Graph, ValueRef) {
    let mut g = Graph::new("g");
    let x = g.add_input("x", f32t(&[2, 3]));
    (g, x)
}

#[test]
fn valid_graphs_pass() {
    verify(&every_op()).unwrap();
    verify(&snapshot_cnn()).unwrap();
}

#[test]
fn missing_input_slot() {
    let (mut g, x) = base();
    let add = g
        .add_op("add", Op::Binary(BinaryOp::Add), &[], val("y", &[2, 3]))
        .unwrap();
    g.add_edge_unchecked(
        x.node,
        add,
        Edge {
            output: 0,
            input: 1,
        },
    );
    let e = verify(&g).unwrap_err();
    assert_eq!(
        e,
        E::MissingInput {
            node: "add".into(),
            op: "add",
            slot: 0
        }
    );
}

#[test]
fn duplicate_input_slot() {
    let (mut g, x) = base();
    let r = g
        .add_op("r", Op::Unary(UnaryOp::Relu), &[x], val("y", &[2, 3]))
        .unwrap();
    g.add_edge_unchecked(
        x.node,
        r,
        Edge {
            output: 0,
            input: 0,
        },
    );
    let e = verify(&g).unwrap_err();
    assert_eq!(
        e,
        E::DuplicateInputSlot {
            node: "r".into(),
            op: "relu",
            slot: 0
        }
    );
}

#[test]
fn edge_from_missing_output() {
    let (mut g, x) = base();
    let r = g
        .add_op("r", Op::Unary(UnaryOp::Relu), &[], val("y", &[2, 3]))
        .unwrap();
    g.add_edge_unchecked(
        x.node,
        r,
        Edge {
            output: 3,
            input: 0,
        },
    );
    let e = verify(&g).unwrap_err();
    assert!(
        matches!(e, E::BadOutputIndex { ref node, op: "relu", slot: 0, output: 3, outputs: 1, ref producer } if node == "r" && producer == "x"),
        "{e}"
    );
}

#[test]
fn dangling_graph_output() {
    let (mut g, x) = base();
    g.set_outputs(vec![
        x,
        ValueRef {
            node: x.node,
            output: 5,
        },
    ]);
    assert_eq!(verify(&g).unwrap_err(), E::DanglingOutput { index: 1 });
}

#[test]
fn wrong_arity() {
    let (mut g, x) = base();
    g.add_op("add", Op::Binary(BinaryOp::Add), &[x], val("y", &[2, 3]))
        .unwrap();
    let e = verify(&g).unwrap_err();
    assert_eq!(
        e,
        E::InputArity {
            node: "add".into(),
            op: "add",
            expected: "2".into(),
            got: 1
        }
    );

    let (mut g, x) = base();
    let split = Op::Split(Split {
        axis: 0,
        sizes: vec![1, 1],
    });
    g.add_op("split", split, &[x], val("a", &[1, 3])).unwrap();
    let e = verify(&g).unwrap_err();
    assert_eq!(
        e,
        E::OutputArity {
            node: "split".into(),
            op: "split",
            expected: 2,
            got: 1
        }
    );

    let (mut g, _) = base();
    g.add_op("cat", Op::Concat { axis: 0 }, &[], val("y", &[2, 3]))
        .unwrap();
    let e = verify(&g).unwrap_err();
    assert!(
        matches!(e, E::InputArity { ref expected, got: 0, .. } if expected == "at least 1"),
        "{e}"
    );
}

#[test]
fn duplicate_value_names() {
    let (mut g, x) = base();
    g.add_op("r1", Op::Unary(UnaryOp::Relu), &[x], val("y", &[2, 3]))
        .unwrap();
    g.add_op("r2", Op::Unary(UnaryOp::Tanh), &[x], val("y", &[2, 3]))
        .unwrap();
    let e = verify(&g).unwrap_err();
    assert_eq!(
        e,
        E::DuplicateValueName {
            name: "y".into(),
            node: "r2".into(),
            op: "tanh",
            first: "r1".into(),
            first_op: "relu"
        }
    );
}

#[test]
fn cycle() {
    let (mut g, _) = base();
    let a = g
        .add_op("a", Op::Unary(UnaryOp::Relu), &[], val("a", &[2, 3]))
        .unwrap();
    let b = g
        .add_op(
            "b",
            Op::Unary(UnaryOp::Relu),
            &[ValueRef::first(a)],
            val("b", &[2, 3]),
        )
        .unwrap();
    g.add_edge_unchecked(
        b,
        a,
        Edge {
            output: 0,
            input: 0,
        },
    );
    assert!(matches!(verify(&g).unwrap_err(), E::Cycle { .. }));
}

#[test]
fn declared_type_disagrees_with_inference() {
    let (mut g, x) = base();
    g.add_op("r", Op::Unary(UnaryOp::Relu), &[x], val("y", &[3, 2]))
        .unwrap();
    let e = verify(&g).unwrap_err();
    assert_eq!(
        e,
        E::TypeMismatch {
            node: "r".into(),
            op: "relu",
            output: 0,
            declared: f32t(&[3, 2]),
            inferred: f32t(&[2, 3])
        }
    );
    assert_eq!(
        e.to_string(),
        "node `r` (relu): output 0 is declared f32[3,2] but the inputs give f32[2,3]"
    );
}

#[test]
fn inference_failure_names_the_node() {
    let (mut g, x) = base();
    let y = g.add_input("z", f32t(&[4]));
    g.add_op(
        "bad_add",
        Op::Binary(BinaryOp::Add),
        &[x, y],
        val("y", &[2, 3]),
    )
    .unwrap();
    let e = verify(&g).unwrap_err();
    assert!(
        matches!(e, E::Infer { ref node, op: "add", .. } if node == "bad_add"),
        "{e}"
    );
    assert!(
        e.to_string()
            .starts_with("node `bad_add` (add): shapes [2,3] and [4]"),
        "{e}"
    );
}

#[test]
fn constant_type_disagreement_and_missing_tensor() {
    let (mut g, _) = base();
    let c = g.add_constant("c", Tensor::from_f32(vec![2], vec![1.0, 2.0]).unwrap());
    g.node_mut(c.node).unwrap().outputs[0].ty = f32t(&[3]);
    let e = verify(&g).unwrap_err();
    assert_eq!(
        e,
        E::ConstantType {
            node: "c".into(),
            declared: f32t(&[3]),
            actual: f32t(&[2])
        }
    );

    let (mut g, _) = base();
    let c = g.add_constant("c", Tensor::scalar_f32(1.0));
    g.node_mut(c.node).unwrap().kind = NodeKind::Constant(ConstId(999));
    assert_eq!(
        verify(&g).unwrap_err(),
        E::MissingConstant { node: "c".into() }
    );
}

#[test]
fn input_node_problems() {
    let (mut g, x) = base();
    let c = g.add_constant("c", Tensor::scalar_f32(1.0));
    g.add_edge_unchecked(
        c.node,
        x.node,
        Edge {
            output: 0,
            input: 0,
        },
    );
    assert_eq!(
        verify(&g).unwrap_err(),
        E::UnexpectedInputs {
            node: "x".into(),
            op: "input"
        }
    );

    let (mut g, _) = base();
    let c = g.add_constant("c", Tensor::scalar_f32(1.0));
    g.node_mut(c.node).unwrap().kind = NodeKind::Input;
    assert_eq!(
        verify(&g).unwrap_err(),
        E::UnlistedInput { node: "c".into() }
    );

    let (mut g, x) = base();
    g.node_mut(x.node).unwrap().kind = NodeKind::Op(Op::Identity);
    assert_eq!(
        verify(&g).unwrap_err(),
        E::BadGraphInput {
            index: 0,
            node: "x".into()
        }
    );
}

#[test]
fn constant_with_extra_outputs() {
    let (mut g, _) = base();
    let c = g.add_constant("c", Tensor::scalar_f32(1.0));
    g.node_mut(c.node).unwrap().outputs.push(Value {
        name: "c2".into(),
        ty: f32t(&[]),
    });
    assert_eq!(
        verify(&g).unwrap_err(),
        E::OutputArity {
            node: "c".into(),
            op: "const",
            expected: 1,
            got: 2
        }
    );
}
