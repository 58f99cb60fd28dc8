//! The verifier against crafted malformed graphs, one per error kind.

use strata_test_support::models::{every_op, snapshot_cnn};

use strata_ir::ops::{BinaryOp, Split, UnaryOp};
use strata_ir::{
    verify, ConstId, DType, Edge, Graph, NodeId, NodeKind, Op, Tensor, TensorType, Value, ValueRef,
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

/// Adds op node `name` reading `inputs`, declaring one output `value` of type `f32[dims]`.
fn node(
    g: &mut Graph,
    name: &str,
    op: Op,
    inputs: &[ValueRef],
    value: &str,
    dims: &[usize],
) -> NodeId {
    g.add_op(name, op, inputs, val(value, dims)).unwrap()
}

/// Connects output `output` of `from` to input slot `input` of `to`, unchecked.
fn edge(g: &mut Graph, from: NodeId, to: NodeId, output: usize, input: usize) {
    g.add_edge_unchecked(from, to, Edge { output, input });
}

/// `g` must fail verification with exactly `expected`: the error's `Debug` form, which spells
/// its variant and every field.
#[track_caller]
fn assert_rejected(g: &Graph, expected: &str) {
    let e = verify(g).unwrap_err();
    assert_eq!(format!("{e:?}"), expected, "{e}");
}

#[test]
fn valid_graphs_pass() {
    verify(&every_op()).unwrap();
    verify(&snapshot_cnn()).unwrap();
}

#[test]
fn bad_edges() {
    let (add, relu) = (Op::Binary(BinaryOp::Add), Op::Unary(UnaryOp::Relu));
    // (op, whether x is its input 0, the extra edge from x (output, slot), the error)
    let cases = [
        (
            &add,
            false,
            (0, 1),
            r#"MissingInput { node: "n", op: "add", slot: 0 }"#,
        ),
        (
            &relu,
            true,
            (0, 0),
            r#"DuplicateInputSlot { node: "n", op: "relu", slot: 0 }"#,
        ),
        (
            &relu,
            false,
            (3, 0),
            r#"BadOutputIndex { node: "n", op: "relu", slot: 0, producer: "x", output: 3, outputs: 1 }"#,
        ),
    ];
    for (op, connected, (output, input), expected) in cases {
        let (mut g, x) = base();
        let inputs: &[ValueRef] = if connected { &[x] } else { &[] };
        let n = node(&mut g, "n", op.clone(), inputs, "y", &[2, 3]);
        edge(&mut g, x.node, n, output, input);
        assert_rejected(&g, expected);
    }
}

#[test]
fn dangling_graph_output() {
    let (mut g, x) = base();
    let missing = ValueRef {
        node: x.node,
        output: 5,
    };
    g.set_outputs(vec![x, missing]);
    assert_rejected(&g, "DanglingOutput { index: 1 }");
}

#[test]
fn wrong_arity() {
    let split = Op::Split(Split {
        axis: 0,
        sizes: vec![1, 1],
    });
    // (op, whether it reads x, its one declared output, the error)
    let cases = [
        (
            Op::Binary(BinaryOp::Add),
            true,
            &[2, 3][..],
            r#"InputArity { node: "n", op: "add", expected: "2", got: 1 }"#,
        ),
        (
            split,
            true,
            &[1, 3],
            r#"OutputArity { node: "n", op: "split", expected: 2, got: 1 }"#,
        ),
        (
            Op::Concat { axis: 0 },
            false,
            &[2, 3],
            r#"InputArity { node: "n", op: "concat", expected: "at least 1", got: 0 }"#,
        ),
    ];
    for (op, reads_x, dims, expected) in cases {
        let (mut g, x) = base();
        let inputs: &[ValueRef] = if reads_x { &[x] } else { &[] };
        node(&mut g, "n", op, inputs, "y", dims);
        assert_rejected(&g, expected);
    }
}

#[test]
fn duplicate_value_names() {
    let (mut g, x) = base();
    node(&mut g, "r1", Op::Unary(UnaryOp::Relu), &[x], "y", &[2, 3]);
    node(&mut g, "r2", Op::Unary(UnaryOp::Tanh), &[x], "y", &[2, 3]);
    let expected = r#"DuplicateValueName { name: "y", node: "r2", op: "tanh", first: "r1", first_op: "relu" }"#;
    assert_rejected(&g, expected);
}

#[test]
fn cycle() {
    let (mut g, _) = base();
    let a = node(&mut g, "a", Op::Unary(UnaryOp::Relu), &[], "a", &[2, 3]);
    let b = node(
        &mut g,
        "b",
        Op::Unary(UnaryOp::Relu),
        &[ValueRef::first(a)],
        "b",
        &[2, 3],
    );
    edge(&mut g, b, a, 0, 0);
    assert!(matches!(verify(&g).unwrap_err(), E::Cycle { .. }));
}

#[test]
fn declared_type_disagrees_with_inference() {
    let (mut g, x) = base();
    node(&mut g, "r", Op::Unary(UnaryOp::Relu), &[x], "y", &[3, 2]);
    let e = verify(&g).unwrap_err();
    assert_eq!(
        e.to_string(),
        "node `r` (relu): output 0 is declared f32[3,2] but the inputs give f32[2,3]"
    );
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
}

#[test]
fn inference_failure_names_the_node() {
    let (mut g, x) = base();
    let z = g.add_input("z", f32t(&[4]));
    node(
        &mut g,
        "bad_add",
        Op::Binary(BinaryOp::Add),
        &[x, z],
        "y",
        &[2, 3],
    );
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
    assert_eq!(
        verify(&g).unwrap_err(),
        E::ConstantType {
            node: "c".into(),
            declared: f32t(&[3]),
            actual: f32t(&[2])
        }
    );

    let (mut g, _) = base();
    let c = g.add_constant("c", Tensor::scalar_f32(1.0));
    g.node_mut(c.node).unwrap().kind = NodeKind::Constant(ConstId(999));
    assert_rejected(&g, r#"MissingConstant { node: "c" }"#);
}

#[test]
fn input_node_problems() {
    let (mut g, x) = base();
    let c = g.add_constant("c", Tensor::scalar_f32(1.0));
    edge(&mut g, c.node, x.node, 0, 0);
    assert_rejected(&g, r#"UnexpectedInputs { node: "x", op: "input" }"#);

    let (mut g, _) = base();
    let c = g.add_constant("c", Tensor::scalar_f32(1.0));
    g.node_mut(c.node).unwrap().kind = NodeKind::Input;
    assert_rejected(&g, r#"UnlistedInput { node: "c" }"#);

    let (mut g, x) = base();
    g.node_mut(x.node).unwrap().kind = NodeKind::Op(Op::Identity);
    assert_rejected(&g, r#"BadGraphInput { index: 0, node: "x" }"#);
}

#[test]
fn constant_with_extra_outputs() {
    let (mut g, _) = base();
    let c = g.add_constant("c", Tensor::scalar_f32(1.0));
    g.node_mut(c.node).unwrap().outputs.extend(val("c2", &[]));
    assert_rejected(
        &g,
        r#"OutputArity { node: "c", op: "const", expected: 1, got: 2 }"#,
    );
}
