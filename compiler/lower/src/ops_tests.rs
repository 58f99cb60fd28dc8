//! Lowering of the data-movement ops, reductions, Max/Min, BatchNorm and the IEEE unary
//! functions on small float graphs, and the refusals that name node and reason.

use std::sync::Arc;

use strata_ir::ops::elementwise::{UnaryOp, VariadicOp};
use strata_ir::ops::{
    BatchNorm, CoordMode, GlobalPoolKind, NearestMode, Pad, PadMode, Reduce, Resize, ResizeMode,
    Slice, Split,
};
use strata_ir::{DType, Graph, NodeId, Op, Tensor, TensorType, ValueRef};

use crate::*;

fn op(g: &mut Graph, name: &str, op: Op, ins: &[ValueRef]) -> ValueRef {
    ValueRef::first(g.add_op_inferred(name, op, ins, vec![name.into()]).unwrap())
}

fn input(g: &mut Graph, shape: &[usize]) -> ValueRef {
    g.add_input("x", TensorType::known(DType::F32, shape))
}

fn lowered(mut g: Graph, y: ValueRef) -> Lowered {
    g.set_outputs(vec![y]);
    let options = LowerOptions {
        planes: 4,
        layer_planes: None,
        layout: WeightLayout::Codes,
        code_bits: CodeBits::Fast,
    };
    lower(&g, &options).unwrap()
}

fn refusal(mut g: Graph, y: ValueRef) -> (String, &'static str, String) {
    g.set_outputs(vec![y]);
    let options = LowerOptions {
        planes: 4,
        layer_planes: None,
        layout: WeightLayout::Codes,
        code_bits: CodeBits::Fast,
    };
    match lower(&g, &options) {
        Err(LowerError::Unsupported { node, op, reason }) => (node, op, reason),
        other => panic!("{other:?}"),
    }
}

fn kernels(l: &Lowered) -> Vec<&Kernel> {
    l.steps.iter().map(|s| &s.kernel).collect()
}

#[test]
fn squeeze_and_unsqueeze_are_views() {
    let mut g = Graph::new("sq");
    let x = input(&mut g, &[1, 4, 1, 3]);
    let s = op(&mut g, "sq", Op::Squeeze { axes: vec![2] }, &[x]);
    let u = op(&mut g, "unsq", Op::Unsqueeze { axes: vec![3] }, &[s]);
    let y = op(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[u]);
    let l = lowered(g, y);
    assert_eq!(l.aliases.len(), 2);
    assert!(l
        .aliases
        .iter()
        .all(|a| a.kind == AliasKind::View && a.of == Loc::Input(0)));
    assert_eq!(
        kernels(&l),
        [&Kernel::Relu {
            x: Loc::Input(0),
            n: 12
        }]
    );
}

/// Rows 2, 1, 0 (a negative step from −1 with an end before the start) and every other
/// column from 1 of a `[1, 3, 4]` input: base 2·4 + 1, strides −4 and 2.
#[test]
fn slice_is_a_strided_copy_with_negative_steps() {
    let mut g = Graph::new("slice");
    let x = input(&mut g, &[1, 3, 4]);
    let s = Slice {
        starts: vec![-1, 1],
        ends: vec![-100, 4],
        axes: vec![1, 2],
        steps: vec![-1, 2],
    };
    let y = op(&mut g, "slice", Op::Slice(s), &[x]);
    let l = lowered(g, y);
    assert_eq!(
        kernels(&l),
        [&Kernel::Gather {
            x: Loc::Input(0),
            base: 9,
            dims: vec![1, 3, 2],
            strides: vec![0, -4, 2],
        }]
    );
    // A slice that keeps everything is a view.
    let mut g = Graph::new("all");
    let x = input(&mut g, &[1, 3, 4]);
    let s = Slice {
        starts: vec![0],
        ends: vec![i64::MAX],
        axes: vec![2],
        steps: vec![1],
    };
    let s = op(&mut g, "slice", Op::Slice(s), &[x]);
    let y = op(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[s]);
    let l = lowered(g, y);
    assert_eq!(l.aliases.len(), 1);
    assert_eq!(l.steps.len(), 1);
}

/// Split into two outputs: each its own buffer and strided copy, read by different nodes.
#[test]
fn split_outputs_get_their_own_steps_and_buffers() {
    let mut g = Graph::new("split");
    let x = input(&mut g, &[1, 6, 2]);
    let split = Op::Split(Split {
        axis: 1,
        sizes: vec![2, 4],
    });
    let id: NodeId = g
        .add_op_inferred("split", split, &[x], vec!["a".into(), "b".into()])
        .unwrap();
    let (a, b) = (
        ValueRef::first(id),
        ValueRef {
            node: id,
            output: 1,
        },
    );
    let ra = op(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[a]);
    let y = op(&mut g, "cat", Op::Concat { axis: 1 }, &[b, ra]);
    let l = lowered(g, y);
    let k = kernels(&l);
    assert_eq!(
        k[..2],
        [
            &Kernel::Gather {
                x: Loc::Input(0),
                base: 0,
                dims: vec![1, 2, 2],
                strides: vec![0, 2, 1],
            },
            &Kernel::Gather {
                x: Loc::Input(0),
                base: 4,
                dims: vec![1, 4, 2],
                strides: vec![0, 2, 1],
            }
        ]
    );
    assert_eq!(
        *k[2],
        Kernel::Relu {
            x: Loc::Buf(0),
            n: 4
        }
    );
    assert_eq!(
        *k[3],
        Kernel::Concat {
            parts: vec![(Loc::Buf(1), 8), (Loc::Buf(2), 4)],
            outer: 1,
        }
    );
    // Both pieces are alive at once: different places in the arena.
    assert_ne!(l.offset(0), l.offset(1));
}

#[test]
fn reductions_and_global_max_pool() {
    let mut g = Graph::new("reduce");
    let x = input(&mut g, &[1, 4, 3, 5]);
    let r = |axes: Vec<usize>| Reduce {
        axes,
        keep_dims: true,
    };
    let m = op(&mut g, "max", Op::ReduceMax(r(vec![2, 3])), &[x]);
    let s = op(&mut g, "sum", Op::ReduceSum(r(vec![1])), &[x]);
    let p = op(&mut g, "gmp", Op::GlobalPool(GlobalPoolKind::Max), &[x]);
    let f = |g: &mut Graph, name: &str, v| op(g, name, Op::Flatten { axis: 1 }, &[v]);
    let (m, s, p) = (f(&mut g, "fm", m), f(&mut g, "fs", s), f(&mut g, "fp", p));
    let y = op(&mut g, "cat", Op::Concat { axis: 1 }, &[m, s, p]);
    let l = lowered(g, y);
    let k = kernels(&l);
    let reduce = |outer, len, inner, f| Kernel::Reduce {
        x: Loc::Input(0),
        outer,
        len,
        inner,
        f,
    };
    assert_eq!(*k[0], reduce(4, 15, 1, ReduceFn::Max));
    assert_eq!(*k[1], reduce(1, 4, 15, ReduceFn::Sum));
    assert_eq!(*k[2], reduce(4, 15, 1, ReduceFn::MaxNumber));
    // Axes 1 and 3 are not one run.
    let mut g = Graph::new("gap");
    let x = input(&mut g, &[1, 4, 3, 5]);
    let y = op(&mut g, "holes", Op::ReduceSum(r(vec![1, 3])), &[x]);
    let (node, op_name, reason) = refusal(g, y);
    assert_eq!((node.as_str(), op_name), ("holes", "reduce_sum"));
    assert!(reason.contains("contiguous"), "{reason}");
}

/// Max of an activation and a per-channel constant, then Min of a scalar constant (first)
/// and that result: the operands keep their graph order (MinRev), the last step writes the
/// node's output and the intermediate lives within the node's step.
#[test]
fn max_and_min_are_chains_of_binary_steps() {
    let mut g = Graph::new("mm");
    let x = input(&mut g, &[1, 2, 3]);
    let c = g.add_constant(
        "c",
        Arc::new(Tensor::from_f32(vec![2, 1], vec![0.5, -0.5]).unwrap()),
    );
    let k = g.add_constant("k", Arc::new(Tensor::scalar_f32(0.25)));
    let y = op(&mut g, "max", Op::Variadic(VariadicOp::Max), &[x, c, x]);
    let y = op(&mut g, "min", Op::Variadic(VariadicOp::Min), &[k, y]);
    let l = lowered(g, y);
    let k = kernels(&l);
    assert_eq!(k.len(), 3);
    assert_eq!(
        *k[0],
        Kernel::Binary {
            a: Loc::Input(0),
            b: Operand::Const(0),
            n: 6,
            bcast: Broadcast { len: 2, inner: 3 },
            f: BinaryFn::Max,
        }
    );
    assert_eq!(
        *k[1],
        Kernel::Binary {
            a: Loc::Buf(0),
            b: Operand::Act(Loc::Input(0)),
            n: 6,
            bcast: Broadcast::full(6),
            f: BinaryFn::Max,
        }
    );
    assert!(matches!(
        k[2],
        Kernel::Binary {
            a: Loc::Buf(1),
            b: Operand::Const(1),
            f: BinaryFn::MinRev,
            ..
        }
    ));
    assert_eq!(l.constants[0].values, [0.5, -0.5]);
}

/// Constant, reflect and edge Pad, nearest Resize and a three-index Gather copy through index
/// tables (−1: the fill); a one-index Gather and an Expand are strided copies.
#[test]
fn pads_nearest_resize_and_gathers() {
    let mut g = Graph::new("pad");
    let x = input(&mut g, &[1, 1, 3]);
    let pad = |mode, value| {
        Op::Pad(Pad {
            pads: vec![0, 0, 2, 0, 0, 1],
            value,
            mode,
        })
    };
    let c = op(&mut g, "constant", pad(PadMode::Constant, 0.5), &[x]);
    let r = op(&mut g, "reflect", pad(PadMode::Reflect, 0.0), &[x]);
    let e = op(&mut g, "edge", pad(PadMode::Edge, 0.0), &[x]);
    let y = op(&mut g, "cat", Op::Concat { axis: 2 }, &[c, r, e]);
    let l = lowered(g, y);
    let tables: Vec<&[i32]> = l.tables.iter().map(|t| t.indices.as_slice()).collect();
    assert_eq!(
        tables,
        [
            &[-1, -1, 0, 1, 2, -1][..],
            &[2, 1, 0, 1, 2, 1],
            &[0, 0, 0, 1, 2, 2]
        ]
    );
    assert_eq!(
        *kernels(&l)[0],
        Kernel::Take {
            x: Loc::Input(0),
            table: 0,
            fill: 0.5
        }
    );
    assert_eq!(l.weight_bytes(), 3 * 6 * 4);

    let mut g = Graph::new("nearest");
    let x = input(&mut g, &[1, 1, 2, 2]);
    let rs = Resize {
        mode: ResizeMode::Nearest,
        coord: CoordMode::Asymmetric,
        nearest: NearestMode::Floor,
        scales: vec![1.0, 1.0, 2.0, 1.5],
        sizes: vec![0, 0, 4, 3],
    };
    let y = op(&mut g, "up", Op::Resize(rs), &[x]);
    let l = lowered(g, y);
    assert_eq!(l.tables[0].indices, [0, 0, 1, 0, 0, 1, 2, 2, 3, 2, 2, 3]);

    let mut g = Graph::new("gather");
    let x = input(&mut g, &[1, 3, 2]);
    let three = g.add_constant(
        "three",
        Arc::new(Tensor::from_i64(vec![3], vec![2, -3, 1]).unwrap()),
    );
    let one = g.add_constant("one", Arc::new(Tensor::from_i64(vec![], vec![1]).unwrap()));
    let a = op(&mut g, "pick3", Op::Gather { axis: 1 }, &[x, three]);
    let b = op(&mut g, "pick1", Op::Gather { axis: 1 }, &[x, one]);
    let b = op(
        &mut g,
        "grow",
        Op::Expand {
            shape: vec![1, 3, 2],
        },
        &[b],
    );
    let y = op(&mut g, "cat", Op::Concat { axis: 1 }, &[a, b]);
    let l = lowered(g, y);
    let k = kernels(&l);
    assert_eq!(l.tables[0].indices, [4, 5, 0, 1, 2, 3]);
    assert_eq!(
        *k[1],
        Kernel::Gather {
            x: Loc::Input(0),
            base: 2,
            dims: vec![1, 2],
            strides: vec![0, 1],
        }
    );
    assert_eq!(
        *k[2],
        Kernel::Gather {
            x: Loc::Buf(1),
            base: 0,
            dims: vec![1, 3, 2],
            strides: vec![0, 0, 1],
        }
    );
    // An index past the axis is the runtime's error, named by the node.
    let mut g = Graph::new("bad");
    let x = input(&mut g, &[1, 3, 2]);
    let far = g.add_constant("far", Arc::new(Tensor::from_i64(vec![1], vec![3]).unwrap()));
    let y = op(&mut g, "far", Op::Gather { axis: 1 }, &[x, far]);
    let (node, op_name, _) = refusal(g, y);
    assert_eq!((node.as_str(), op_name), ("far", "gather"));
}

/// Linear Resize: the runtime's taps per axis (a scale-1 axis reads itself with weight 0).
#[test]
fn linear_resize_stores_the_runtime_taps() {
    let mut g = Graph::new("linear");
    let x = input(&mut g, &[1, 1, 2, 3]);
    let rs = Resize {
        mode: ResizeMode::Linear,
        coord: CoordMode::AlignCorners,
        nearest: NearestMode::Floor,
        scales: vec![1.0, 1.0, 1.5, 1.0],
        sizes: vec![0, 0, 3, 0],
    };
    let y = op(&mut g, "up", Op::Resize(rs), &[x]);
    let l = lowered(g, y);
    assert_eq!(
        *kernels(&l)[0],
        Kernel::ResizeLinear {
            x: Loc::Input(0),
            dims: vec![1, 1, 3, 3],
            strides: vec![6, 6, 3, 1],
            taps: 0,
        }
    );
    let t = &l.taps[0];
    // Axes 0, 1 (one index each), 2 (three: 0, 0.5, 1 along two rows), 3 (three).
    assert_eq!(t.indices[2..5], [[0, 1], [0, 1], [1, 1]]);
    assert_eq!(t.weights[2..5], [0.0, 0.5, 0.0]);
    assert_eq!(t.indices[5..], [[0, 0], [1, 1], [2, 2]]);
    assert_eq!(t.bytes(), 8 * 8 * 2);
}

/// BatchNorm: the runtime's coefficients, applied as a multiply and an add per channel.
#[test]
fn batch_norm_is_a_multiply_and_an_add() {
    let mut g = Graph::new("bn");
    let x = input(&mut g, &[1, 2, 3]);
    let p = |g: &mut Graph, name: &str, v: [f32; 2]| {
        g.add_constant(
            name,
            Arc::new(Tensor::from_f32(vec![2], v.to_vec()).unwrap()),
        )
    };
    let ins = [
        x,
        p(&mut g, "scale", [2.0, 0.5]),
        p(&mut g, "bias", [0.1, -0.2]),
        p(&mut g, "mean", [1.0, 0.0]),
        p(&mut g, "var", [4.0, 0.25]),
    ];
    let y = op(
        &mut g,
        "bn",
        Op::BatchNorm(BatchNorm { epsilon: 0.0 }),
        &ins,
    );
    let l = lowered(g, y);
    let k = kernels(&l);
    let bcast = Broadcast { len: 2, inner: 3 };
    assert!(
        matches!(k[0], Kernel::Binary { a: Loc::Input(0), b: Operand::Const(0), f: BinaryFn::Mul, bcast: b, .. } if *b == bcast)
    );
    assert!(matches!(
        k[1],
        Kernel::Binary {
            a: Loc::Buf(0),
            b: Operand::Const(1),
            f: BinaryFn::Add,
            ..
        }
    ));
    // a = scale / sqrt(var + eps), s = bias − mean · a.
    assert_eq!(l.constants[0].values, [1.0, 1.0]);
    assert_eq!(l.constants[1].values, [-0.9, -0.2]);
}

#[test]
fn ieee_and_libm_unary_functions_become_unary_steps() {
    let cases = [
        (UnaryOp::Neg, UnaryFn::Neg),
        (UnaryOp::Abs, UnaryFn::Abs),
        (UnaryOp::Floor, UnaryFn::Floor),
        (UnaryOp::Ceil, UnaryFn::Ceil),
        (UnaryOp::Sqrt, UnaryFn::Sqrt),
        (UnaryOp::Reciprocal, UnaryFn::Reciprocal),
        (UnaryOp::Exp, UnaryFn::Exp),
        (UnaryOp::Log, UnaryFn::Log),
        (UnaryOp::Tanh, UnaryFn::Tanh),
        (UnaryOp::Erf, UnaryFn::Erf),
    ];
    for (u, f) in cases {
        let mut g = Graph::new("u");
        let x = input(&mut g, &[1, 5]);
        let y = op(&mut g, "f", Op::Unary(u), &[x]);
        let l = lowered(g, y);
        assert_eq!(
            kernels(&l),
            [&Kernel::Unary {
                x: Loc::Input(0),
                n: 5,
                f
            }]
        );
    }
}

/// Each refusal names the node, the op and why.
#[test]
fn refusals_say_why() {
    let refuse = |o: Op, ins: &dyn Fn(&mut Graph, ValueRef) -> Vec<ValueRef>| {
        let mut g = Graph::new("r");
        let x = input(&mut g, &[1, 2, 3, 3]);
        let ins = ins(&mut g, x);
        let y = op(&mut g, "n", o, &ins);
        refusal(g, y)
    };
    let only_x = |_: &mut Graph, x| vec![x];
    let conv = strata_test_support::graphs::conv(3, 1, 1);
    let (_, op_name, reason) = refuse(conv, &|g, x| {
        let w = strata_test_support::graphs::weight(g, "w", &[2, 2, 3, 3], 1);
        let b = strata_test_support::graphs::weight(g, "b", &[2], 2);
        vec![x, w, b]
    });
    assert_eq!(op_name, "conv");
    assert!(reason.contains("vl-quantize"), "{reason}");
    // A cast to indices and back: the first cast's output is not an f32 activation.
    let mut g = Graph::new("r");
    let x = input(&mut g, &[1, 2]);
    let i = op(&mut g, "to_i64", Op::Cast { to: DType::I64 }, &[x]);
    let y = op(&mut g, "back", Op::Cast { to: DType::F32 }, &[i]);
    let (node, op_name, reason) = refusal(g, y);
    assert_eq!((node.as_str(), op_name), ("to_i64", "cast"));
    assert!(reason.contains("not f32"), "{reason}");
    let (_, op_name, reason) = refuse(Op::Cast { to: DType::F32 }, &only_x);
    assert_eq!(op_name, "cast");
    assert!(reason.contains("casts"), "{reason}");
}

/// Pow keeps its operand order: an activation base is `Pow`, a broadcast constant base
/// raised to an activation is `PowFrom`.
#[test]
fn pow_lowers_in_both_operand_orders() {
    use strata_ir::ops::elementwise::BinaryOp;
    let mut g = Graph::new("pow");
    let x = input(&mut g, &[1, 2, 3]);
    let e = g.add_constant("e", Tensor::scalar_f32(2.0));
    let sq = op(&mut g, "sq", Op::Binary(BinaryOp::Pow), &[x, e]);
    let y = op(&mut g, "exp2", Op::Binary(BinaryOp::Pow), &[e, sq]);
    let l = lowered(g, y);
    let fs: Vec<_> = kernels(&l)
        .into_iter()
        .map(|k| match k {
            Kernel::Binary { f, bcast, .. } => (*f, *bcast),
            other => panic!("{other:?}"),
        })
        .collect();
    let scalar = Broadcast { len: 1, inner: 1 };
    assert_eq!(fs, [(BinaryFn::Pow, scalar), (BinaryFn::PowFrom, scalar)]);
}

/// MatMul of activations with numpy batch broadcasting: the batch dims are padded to the
/// output's rank, 1 where an operand repeats; a constant operand is stored.
#[test]
fn matmul_broadcasts_batches_and_stores_a_constant_operand() {
    let mut g = Graph::new("mm");
    let x = input(&mut g, &[1, 4, 2, 3]);
    let one = op(
        &mut g,
        "one_head",
        Op::Slice(Slice {
            starts: vec![0],
            ends: vec![1],
            axes: vec![1],
            steps: vec![1],
        }),
        &[x],
    );
    let t = op(
        &mut g,
        "t",
        Op::Transpose {
            perm: vec![0, 1, 3, 2],
        },
        &[x],
    );
    let s = op(&mut g, "qk", Op::MatMul, &[one, t]);
    let w = g.add_constant("w", Tensor::from_f32(vec![2, 5], vec![0.5; 10]).unwrap());
    let y = op(&mut g, "proj", Op::MatMul, &[s, w]);
    let l = lowered(g, y);
    let mms: Vec<_> = kernels(&l)
        .into_iter()
        .filter(|k| matches!(k, Kernel::MatMul { .. }))
        .cloned()
        .collect();
    assert_eq!(mms.len(), 2);
    let Kernel::MatMul {
        batch,
        a_batch,
        b_batch,
        m,
        k,
        n,
        ..
    } = &mms[0]
    else {
        unreachable!()
    };
    assert_eq!(
        (batch, a_batch, b_batch),
        (&vec![1, 4], &vec![1, 1], &vec![1, 4])
    );
    assert_eq!((*m, *k, *n), (2, 3, 2));
    let Kernel::MatMul {
        b,
        batch,
        b_batch,
        m,
        k,
        n,
        ..
    } = &mms[1]
    else {
        unreachable!()
    };
    assert_eq!((batch, b_batch), (&vec![1, 4], &vec![1, 1]));
    assert_eq!((*m, *k, *n), (2, 2, 5));
    let Operand::Const(c) = b else {
        panic!("{b:?}")
    };
    assert_eq!(l.constants[*c].values, [0.5; 10]);
}

/// A MatMul of two constants is left to constant folding.
#[test]
fn matmul_of_two_constants_is_refused() {
    let mut g = Graph::new("mm2");
    let x = input(&mut g, &[1, 2]);
    let a = g.add_constant("a", Tensor::from_f32(vec![1, 2], vec![1.0, 2.0]).unwrap());
    let b = g.add_constant("b", Tensor::from_f32(vec![2, 2], vec![1.0; 4]).unwrap());
    let p = op(&mut g, "const_mm", Op::MatMul, &[a, b]);
    let y = op(
        &mut g,
        "sum",
        Op::Binary(strata_ir::ops::elementwise::BinaryOp::Add),
        &[x, p],
    );
    let (node, op_name, reason) = refusal(g, y);
    assert_eq!((node.as_str(), op_name), ("const_mm", "matmul"));
    assert!(reason.contains("both operands are constants"), "{reason}");
}

#[test]
fn a_constant_read_as_an_activation_is_filled_into_a_buffer() {
    // A ViT's class token: a constant concatenated to computed embeddings.
    let mut g = Graph::new("cls");
    let x = input(&mut g, &[1, 2, 3]);
    let r = op(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[x]);
    let token = vec![0.5, -1.0, 2.0];
    let t = g.add_constant(
        "token",
        Tensor::from_f32(vec![1, 1, 3], token.clone()).unwrap(),
    );
    let c = op(&mut g, "cat", Op::Concat { axis: 1 }, &[t, r]);
    let y = op(&mut g, "out", Op::Unary(UnaryOp::Relu), &[c]);
    let l = lowered(g, y);
    let k = kernels(&l);
    assert_eq!(*k[1], Kernel::Fill { constant: 0, n: 3 });
    assert_eq!(l.constants[0].values, token);
    assert_eq!(l.steps[1].node, "cat");
    let Kernel::Concat { parts, outer: 1 } = k[2] else {
        panic!("{:?}", k[2]);
    };
    assert_eq!(
        parts,
        &vec![(Loc::Buf(l.steps[1].y), 3), (Loc::Buf(l.steps[0].y), 6)]
    );
    // The filled token and the Relu output are both read by the Concat: apart in the arena.
    assert_ne!(l.offset(l.steps[1].y), l.offset(l.steps[0].y));
}

#[test]
fn a_constant_repeating_over_separate_axes_is_stored_expanded() {
    // `[1, 2, 3, 2] + [2, 1, 2]`: kept axes 1 and 3 around a repeated axis 2.
    let mut g = Graph::new("mask");
    let x = input(&mut g, &[1, 2, 3, 2]);
    let m = g.add_constant(
        "m",
        Tensor::from_f32(vec![2, 1, 2], vec![1.0, 2.0, 3.0, 4.0]).unwrap(),
    );
    let y = op(
        &mut g,
        "add",
        Op::Binary(strata_ir::ops::BinaryOp::Add),
        &[x, m],
    );
    let l = lowered(g, y);
    let Kernel::Binary {
        b: Operand::Const(k),
        bcast,
        n: 12,
        ..
    } = l.steps[0].kernel
    else {
        panic!("{:?}", l.steps[0].kernel);
    };
    assert_eq!(bcast, Broadcast { len: 12, inner: 1 });
    let want = [1.0, 2.0, 1.0, 2.0, 1.0, 2.0, 3.0, 4.0, 3.0, 4.0, 3.0, 4.0];
    assert_eq!(l.constants[k].values, want);
}
