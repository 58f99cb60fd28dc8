use strata_ir::ops::{BinaryOp, Split, UnaryOp};
use strata_ir::{DType, Dim, Edge, Graph, GraphError, Op, Shape, TensorType, Value, ValueRef};
use strata_runtime::{run, RuntimeError};
use strata_test_support::*;

fn ty(dims: &[Dim]) -> TensorType {
    TensorType::new(DType::F32, Shape(dims.to_vec()))
}

/// An op node with declared output dims: the graphs here include ones whose types
/// inference would refuse (batch-mixing ops, wrong arity, too few outputs).
fn declared(g: &mut Graph, name: &str, o: Op, inputs: &[ValueRef], dims: &[Dim]) -> ValueRef {
    let id = g
        .add_op(
            name,
            o,
            inputs,
            vec![Value {
                name: name.into(),
                ty: ty(dims),
            }],
        )
        .unwrap();
    ValueRef::first(id)
}

use Dim::{Batch as N, Known as K};

/// x[N,3] + bias → relu → flatten → out; also returns x and the bias constant as outputs.
fn small_graph() -> Graph {
    let mut g = Graph::new("small");
    let x = g.add_input("x", ty(&[N, K(3)]));
    let b = g.add_constant("b", f32t(&[3], &[1., -1., 0.5]));
    let s = op(&mut g, "add", Op::Binary(BinaryOp::Add), &[x, b]);
    let r = declared(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[s], &[N, K(3)]);
    let f = declared(&mut g, "flat", Op::Flatten { axis: 0 }, &[r], &[K(1), N]);
    g.set_outputs(vec![f, r, x, b, f]);
    g
}

#[test]
fn runs_any_batch_and_returns_outputs_in_order() {
    let g = small_graph();
    for batch in [1usize, 2, 5, 600] {
        let xs: Vec<f32> = (0..batch * 3).map(|v| v as f32 - 4.0).collect();
        let x = f32t(&[batch, 3], &xs);
        let out = run(&g, std::slice::from_ref(&x)).unwrap();
        assert_eq!(out.len(), 5);
        let expected: Vec<f32> = xs
            .iter()
            .enumerate()
            .map(|(i, v)| (v + [1., -1., 0.5][i % 3]).max(0.0))
            .collect();
        assert_close(&out[0], &[1, batch * 3], &expected, 0.0);
        assert_close(&out[1], &[batch, 3], &expected, 0.0);
        assert_eq!(out[2], x, "graph input passed through unchanged");
        assert_close(&out[3], &[3], &[1., -1., 0.5], 0.0);
        assert_eq!(out[4], out[0]);
    }
}

#[test]
fn owned_intermediates_are_moved_not_corrupting_shared_values() {
    // x → relu → (flatten, sigmoid): relu's output has two users, so the in-place/move fast
    // path must not fire for the first user.
    let mut g = Graph::new("fanout");
    let x = g.add_input("x", ty(&[N, K(2)]));
    let r = declared(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[x], &[N, K(2)]);
    let f = declared(&mut g, "flat", Op::Flatten { axis: 0 }, &[r], &[K(1), N]);
    let t = declared(&mut g, "tanh", Op::Unary(UnaryOp::Tanh), &[r], &[N, K(2)]);
    let t2 = declared(&mut g, "tanh2", Op::Unary(UnaryOp::Tanh), &[t], &[N, K(2)]);
    g.set_outputs(vec![f, t2]);
    let x = f32t(&[1, 2], &[-1.0, 2.0]);
    let out = run(&g, std::slice::from_ref(&x)).unwrap();
    assert_close(&out[0], &[1, 2], &[0.0, 2.0], 0.0);
    assert_close(&out[1], &[1, 2], &[0.0, 2f32.tanh().tanh()], 1e-6);
    // A unary op directly on a graph input must not modify the caller's tensor.
    assert_eq!(x.as_f32().unwrap(), &[-1.0, 2.0]);
}

#[test]
fn unused_split_output_is_dropped() {
    // Only the second output of the split is a graph output.
    let g = strata_ir::text::parse(
        "graph @split(%x: f32[4]) {\n  %a, %b = split(%x) {axis=0, sizes=[1, 3]} @split : f32[1], f32[3]\n  return %b\n}\n",
    )
    .unwrap();
    let out = run(&g, &[f32t(&[4], &[1., 2., 3., 4.])]).unwrap();
    assert_close(&out[0], &[3], &[2., 3., 4.], 0.0);
}

#[test]
fn input_checks_name_the_input() {
    let mut g = Graph::new("two");
    let a = g.add_input("a", ty(&[N, K(2)]));
    let b = g.add_input("b", ty(&[N, K(2)]));
    let s = op(&mut g, "add", Op::Binary(BinaryOp::Add), &[a, b]);
    g.set_outputs(vec![s]);
    let ok = f32t(&[3, 2], &[0.; 6]);
    assert_eq!(
        run(&g, std::slice::from_ref(&ok)).unwrap_err(),
        RuntimeError::InputCount {
            expected: 2,
            got: 1
        }
    );
    let e = run(&g, &[ok.clone(), i64t(&[3, 2], &[0; 6])]).unwrap_err();
    assert!(
        matches!(&e, RuntimeError::InputDType { input, got: DType::I64, .. } if input == "b"),
        "{e}"
    );
    let e = run(&g, &[ok.clone(), f32t(&[6], &[0.; 6])]).unwrap_err();
    assert!(
        matches!(&e, RuntimeError::InputRank { input, got: 1, .. } if input == "b"),
        "{e}"
    );
    let e = run(&g, &[ok.clone(), f32t(&[3, 3], &[0.; 9])]).unwrap_err();
    assert!(
        matches!(&e, RuntimeError::InputDim { input, axis: 1, got: 3, want: 2, .. } if input == "b"),
        "{e}"
    );
    let e = run(&g, &[ok.clone(), f32t(&[2, 2], &[0.; 4])]).unwrap_err();
    assert_eq!(
        e,
        RuntimeError::BatchMismatch {
            input: "b".into(),
            axis: 0,
            got: 2,
            batch: 3
        }
    );
    assert!(e.to_string().contains("`b`"));
    let out = run(&g, &[ok.clone(), ok]).unwrap();
    assert_eq!(out[0].shape(), &[3, 2]);
}

#[test]
fn op_failures_name_the_node() {
    let mut g = Graph::new("gather");
    let x = g.add_input("x", ty(&[K(3)]));
    let idx = g.add_constant("idx", i64t(&[1], &[7]));
    let y = op(&mut g, "my_gather", Op::Gather { axis: 0 }, &[x, idx]);
    g.set_outputs(vec![y]);
    let e = run(&g, &[f32t(&[3], &[1., 2., 3.])]).unwrap_err();
    assert!(
        matches!(&e, RuntimeError::Node { node, op: "gather", .. } if node == "my_gather"),
        "{e}"
    );
    assert!(matches!(
        e.root(),
        RuntimeError::IndexOutOfRange { index: 7, .. }
    ));
    assert!(e.to_string().contains("my_gather") && e.to_string().contains("index 7"));
}

#[test]
fn malformed_graphs_are_errors() {
    // A node wired with too few inputs.
    let mut g = Graph::new("arity");
    let x = g.add_input("x", ty(&[K(1)]));
    let y = declared(
        &mut g,
        "lonely_add",
        Op::Binary(BinaryOp::Add),
        &[x],
        &[K(1)],
    );
    g.set_outputs(vec![y]);
    let e = run(&g, &[f32t(&[1], &[1.])]).unwrap_err();
    assert!(
        matches!(e.root(), RuntimeError::Arity { got: 1, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("lonely_add"));
    // A cycle.
    let mut g = Graph::new("cycle");
    let x = g.add_input("x", ty(&[K(1)]));
    let a = declared(&mut g, "a", Op::Binary(BinaryOp::Add), &[x, x], &[K(1)]);
    let b = declared(&mut g, "b", Op::Unary(UnaryOp::Relu), &[a], &[K(1)]);
    g.add_edge_unchecked(
        b.node,
        a.node,
        Edge {
            output: 0,
            input: 1,
        },
    );
    g.set_outputs(vec![b]);
    let e = run(&g, &[f32t(&[1], &[1.])]).unwrap_err();
    assert!(
        matches!(e, RuntimeError::Graph(GraphError::Cycle { .. })),
        "{e}"
    );
    // A node declaring fewer outputs than its op produces.
    let mut g = Graph::new("outputs");
    let x = g.add_input("x", ty(&[K(2)]));
    let s = declared(
        &mut g,
        "split",
        Op::Split(Split {
            axis: 0,
            sizes: vec![1, 1],
        }),
        &[x],
        &[K(1)],
    );
    g.set_outputs(vec![s]);
    let e = run(&g, &[f32t(&[2], &[1., 2.])]).unwrap_err();
    assert!(
        matches!(
            e,
            RuntimeError::OutputCount {
                declared: 1,
                produced: 2,
                ..
            }
        ),
        "{e}"
    );
    // A graph output referring to a missing output index.
    let mut g = Graph::new("dangling");
    let x = g.add_input("x", ty(&[K(2)]));
    let r = declared(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[x], &[K(2)]);
    g.set_outputs(vec![ValueRef {
        node: r.node,
        output: 3,
    }]);
    let e = run(&g, &[f32t(&[2], &[1., 2.])]).unwrap_err();
    assert!(
        matches!(e, RuntimeError::MissingValue { output: 3, .. }),
        "{e}"
    );
}

/// Reference execution: every op on the whole batch through `eval_op`, no chunking.
fn eval_whole(g: &Graph, inputs: &[strata_ir::Tensor]) -> Vec<strata_ir::Tensor> {
    use std::collections::HashMap;
    use strata_ir::NodeKind;
    let mut vals: HashMap<ValueRef, strata_ir::Tensor> = HashMap::new();
    for (i, &id) in g.inputs().iter().enumerate() {
        vals.insert(ValueRef::first(id), inputs[i].clone());
    }
    for id in g.topo_order().unwrap() {
        let node = g.node(id).unwrap();
        match &node.kind {
            NodeKind::Constant(_) => {
                let v = ValueRef::first(id);
                vals.insert(v, (**g.constant_value(v).unwrap()).clone());
            }
            NodeKind::Op(op) => {
                let args: Vec<strata_ir::Tensor> =
                    g.node_inputs(id).iter().map(|v| vals[v].clone()).collect();
                let refs: Vec<&strata_ir::Tensor> = args.iter().collect();
                for (i, t) in strata_runtime::eval_op(op, &refs)
                    .unwrap()
                    .into_iter()
                    .enumerate()
                {
                    vals.insert(
                        ValueRef {
                            node: id,
                            output: i,
                        },
                        t,
                    );
                }
            }
            _ => {}
        }
    }
    g.outputs().iter().map(|v| vals[v].clone()).collect()
}

fn cnn() -> Graph {
    let mut g = Graph::new("cnn");
    let x = g.add_input("x", ty(&[N, K(2), K(8), K(8)]));
    let w1 = g.add_constant("w1", rand_tensor(&[4, 2, 3, 3], 1));
    let b1 = g.add_constant("b1", rand_tensor(&[4], 2));
    let w2 = g.add_constant("w2", rand_tensor(&[5, 64], 3));
    let (relu, fc) = (Op::Unary(UnaryOp::Relu), gemm(1.0, 1.0, false, true, false));
    let softmax = Op::Softmax(strata_ir::ops::Softmax {
        axis: 1,
        coerce_2d: false,
    });
    let c = op(&mut g, "conv", conv(3, 1, 1), &[x, w1, b1]);
    let r = op(&mut g, "relu", relu, &[c]);
    let p = op(&mut g, "pool", max_pool(2), &[r]);
    let f = op(&mut g, "flatten", Op::Flatten { axis: 1 }, &[p]);
    let y = op(&mut g, "fc", fc, &[f, w2]);
    let s = op(&mut g, "softmax", softmax, &[y]);
    g.set_outputs(vec![s, y, w2]);
    g
}

#[test]
fn large_batches_run_in_chunks_with_identical_results() {
    let g = cnn();
    for batch in [1usize, 63, 200, 517] {
        let x = rand_tensor(&[batch, 2, 8, 8], 100 + batch as u64);
        let got = run(&g, std::slice::from_ref(&x)).unwrap();
        let want = eval_whole(&g, std::slice::from_ref(&x));
        assert_eq!(got.len(), want.len());
        for (a, b) in got.iter().zip(&want) {
            assert_eq!(a.shape(), b.shape(), "batch {batch}");
            assert_close(a, b.shape(), b.as_f32().unwrap(), 1e-6);
        }
    }
}

#[test]
fn ops_that_mix_samples_run_on_the_whole_batch() {
    let g = strata_ir::text::parse(
        "graph @mixing(%x: f32[N,3]) {
  %mean = reduce_mean(%x) {axes=[0], keep_dims=false} : f32[3]
  %softmax0 = softmax(%x) {axis=0, coerce_2d=false} : f32[N,3]
  %shape = shape(%x) {start=0, end=1} : i64[1]
  return %mean, %softmax0, %shape
}",
    )
    .unwrap();
    let batch = 1000;
    let x = rand_tensor(&[batch, 3], 7);
    let got = run(&g, std::slice::from_ref(&x)).unwrap();
    let want = eval_whole(&g, std::slice::from_ref(&x));
    assert_close(&got[0], &[3], want[0].as_f32().unwrap(), 1e-6);
    assert_close(&got[1], &[batch, 3], want[1].as_f32().unwrap(), 1e-6);
    assert_eq!(got[2], i64t(&[1], &[batch as i64]));
    let col0: f32 = got[1].as_f32().unwrap().iter().step_by(3).sum();
    assert!(
        (col0 - 1.0).abs() < 1e-4,
        "softmax over the whole batch sums to 1, got {col0}"
    );
}

#[test]
fn profiled_run_reports_every_op_node() {
    let g = cnn();
    let x = rand_tensor(&[300, 2, 8, 8], 5);
    let (out, timings) = strata_runtime::run_profiled(&g, std::slice::from_ref(&x)).unwrap();
    assert_eq!(out[0].shape(), &[300, 5]);
    let names: Vec<&str> = timings.iter().map(|t| t.node.as_str()).collect();
    assert_eq!(names, ["conv", "relu", "pool", "flatten", "fc", "softmax"]);
    assert_eq!(timings[0].op, "conv");
    assert!(timings.iter().all(|t| t.seconds >= 0.0));
}

#[test]
fn run_with_rejects_unknown_layers_and_matches_run() {
    use strata_runtime::{run_with, QuantPath, RunOptions};
    let g = small_graph();
    let x = f32t(&[2, 3], &[1., -2., 3., -4., 5., -6.]);
    let plain = run(&g, std::slice::from_ref(&x)).unwrap();
    let options = RunOptions {
        planes: Some(4),
        path: QuantPath::Float,
        ..RunOptions::default()
    };
    assert_eq!(
        run_with(&g, std::slice::from_ref(&x), &options).unwrap(),
        plain
    );
    for name in ["relu", "no_such_layer"] {
        let mut options = RunOptions::default();
        options.per_layer.insert(name.to_string(), 2);
        let e = run_with(&g, std::slice::from_ref(&x), &options).unwrap_err();
        assert_eq!(
            e,
            RuntimeError::UnknownLayer {
                node: name.to_string()
            }
        );
        assert!(e.to_string().contains(name));
    }
}

#[test]
fn empty_batch_gives_empty_outputs() {
    let g = cnn();
    let x = f32t(&[0, 2, 8, 8], &[]);
    let out = run(&g, std::slice::from_ref(&x)).unwrap();
    assert_eq!(out[0].shape(), &[0, 5]);
    assert_eq!(out[1].shape(), &[0, 5]);
    assert_eq!(out[2].shape(), &[5, 64]);
}

/// A value within the limits per sample can exceed them at a run's batch size: the declared
/// output type at that size is checked before the kernel allocates anything.
#[test]
fn an_output_too_large_at_this_batch_is_refused_before_allocation() {
    let g = strata_ir::text::parse(
        "graph @g(%x: f32[N,1]) {\n  %y = pad(%x) {pads=[0, 0, 0, 1073741823], value=0.0} : f32[N,1073741824]\n  return %y\n}\n",
    )
    .unwrap();
    strata_ir::verify(&g).expect("4 GiB per sample is within the limit");
    let x = strata_ir::Tensor::from_f32(vec![2, 1], vec![1.0, 2.0]).unwrap();
    let e = run(&g, &[x]).expect_err("8 GiB at batch 2");
    assert!(
        matches!(e.root(), RuntimeError::TooLarge { op: "pad", shape } if shape == &[2, 1 << 30]),
        "{e:?}"
    );
}
