//! Whole graphs the tests of several crates share.

use strata_ir::ops::*;
use strata_ir::{DType, Graph, Op, Tensor, TensorData, ValueRef};

use crate::graphs::{
    batch_ty, conv, conv_attrs, conv_transpose_attrs, f32c, gemm, max_pool, op, pool_attrs, ty,
    weight,
};
use crate::rng::values;

/// An MNIST-like small CNN: conv(1→4, 3×3) → relu → maxpool → grouped conv(4→8, group 2) →
/// relu → maxpool → flatten → matmul(32→16) → relu → gemm(16→10). Covers every layer kind.
pub fn small_cnn() -> Graph {
    let mut g = Graph::new("small_cnn");
    let x = g.add_input("x", batch_ty(&[1, 8, 8]));
    let w1 = weight(&mut g, "w1", &[4, 1, 3, 3], 1);
    let b1 = g.add_constant("b1", Tensor::from_f32(vec![4], values(4, 2)).unwrap());
    let relu = Op::Unary(UnaryOp::Relu);
    let c1 = op(&mut g, "conv1", conv(3, 1, 1), &[x, w1, b1]);
    let r1 = op(&mut g, "relu1", relu.clone(), &[c1]);
    let pool = max_pool(2);
    let p1 = op(&mut g, "pool1", pool.clone(), &[r1]);
    let w2 = weight(&mut g, "w2", &[8, 2, 3, 3], 3);
    let b2 = g.add_constant(
        "b2",
        Tensor::from_f32(vec![8], values(8, 4).iter().map(|v| v * 0.1).collect()).unwrap(),
    );
    let c2 = op(&mut g, "conv2", conv(3, 1, 2), &[p1, w2, b2]);
    let r2 = op(&mut g, "relu2", relu.clone(), &[c2]);
    let p2 = op(&mut g, "pool2", pool, &[r2]);
    let f = op(&mut g, "flat", Op::Flatten { axis: 1 }, &[p2]);
    let w3 = weight(&mut g, "w3", &[32, 16], 5);
    let m = op(&mut g, "mm", Op::MatMul, &[f, w3]);
    let r3 = op(&mut g, "relu3", relu.clone(), &[m]);
    let w4 = weight(&mut g, "w4", &[10, 16], 6);
    let c4 = g.add_constant("c4", Tensor::from_f32(vec![10], values(10, 7)).unwrap());
    let fc = gemm(1.0, 0.5, false, true, true);
    let y = op(&mut g, "fc", fc, &[r3, w4, c4]);
    g.set_outputs(vec![y]);
    strata_ir::verify(&g).unwrap();
    g
}

/// Image-like inputs in [0, 1).
pub fn images(n: usize, seed: u64) -> Tensor {
    let v = values(n * 64, seed).into_iter().map(f32::abs).collect();
    Tensor::from_f32(vec![n, 1, 8, 8], v).unwrap()
}

/// A small CNN with odd constants (NaN, ∞, −0): the graph the IR text snapshot prints.
pub fn snapshot_cnn() -> Graph {
    let mut g = Graph::new("small_cnn");
    let x = g.add_input("input", ty(DType::F32, &[None, Some(1), Some(4), Some(4)]));
    let w = f32c(&mut g, "conv.w", &[2, 1, 2, 2], |i| i as f32 * 0.25 - 1.0);
    let b = g.add_constant(
        "conv.b",
        Tensor::from_f32(vec![2], vec![0.5, -0.0]).unwrap(),
    );
    let c = op(&mut g, "conv_1", conv(2, 0, 1), &[x, w, b]);
    let r = op(&mut g, "relu_1", Op::Unary(UnaryOp::Relu), &[c]);
    let p = op(
        &mut g,
        "pool_1",
        Op::MaxPool(pool_attrs(&[2, 2], &[2, 2], &[0; 4], &[1, 1], true, false)),
        &[r],
    );
    let f = op(&mut g, "flat", Op::Flatten { axis: 1 }, &[p]);
    let fc_w = f32c(&mut g, "fc.w", &[3, 8], |i| (i as f32).sin());
    let fc_b = g.add_constant(
        "fc.b",
        Tensor::from_f32(vec![3], vec![f32::NAN, f32::INFINITY, 1e-30]).unwrap(),
    );
    let gemm = g
        .add_op_inferred(
            "Gemm_0",
            gemm(1.0, 0.5, false, true, true),
            &[f, fc_w, fc_b],
            vec!["logits".into()],
        )
        .unwrap();
    g.set_outputs(vec![ValueRef::first(gemm)]);
    g
}

/// One graph that uses every op, every element type, odd names and special floats.
/// The ops added for real-model imports (math, comparisons, Where, reductions, Expand,
/// Resize, copying Pad, QDQ), chained from `x: f32[N,2,6,6]`; returns values to output.
fn import_ops(g: &mut Graph, x: ValueRef) -> Vec<ValueRef> {
    let mut m = x;
    for (i, u) in [
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Neg,
        UnaryOp::Abs,
        UnaryOp::Reciprocal,
        UnaryOp::Floor,
        UnaryOp::Ceil,
    ]
    .into_iter()
    .enumerate()
    {
        m = op(g, &format!("math{i}"), Op::Unary(u), &[m]);
    }
    m = op(g, "pow", Op::Binary(BinaryOp::Pow), &[m, x]);
    let mut outs = Vec::new();
    for (i, c) in [
        CompareOp::Equal,
        CompareOp::Greater,
        CompareOp::Less,
        CompareOp::GreaterOrEqual,
        CompareOp::LessOrEqual,
    ]
    .into_iter()
    .enumerate()
    {
        outs.push(op(g, &format!("cmp{i}"), Op::Compare(c), &[m, x]));
    }
    let w = op(g, "where", Op::Where, &[outs[1], m, x]);
    let reduce = |axes: Vec<usize>, keep_dims| Reduce { axes, keep_dims };
    let rmax = op(g, "rmax", Op::ReduceMax(reduce(vec![1], true)), &[w]);
    outs.push(op(
        g,
        "rsum",
        Op::ReduceSum(reduce(vec![2, 3], false)),
        &[w],
    ));
    let am = ArgMax {
        axis: 1,
        keep_dims: false,
        select_last_index: true,
    };
    outs.push(op(g, "argmax", Op::ArgMax(am), &[w]));
    let ex = op(
        g,
        "expand",
        Op::Expand {
            shape: vec![2, 1, 1],
        },
        &[rmax],
    );
    let rs = Resize {
        mode: ResizeMode::Linear,
        coord: CoordMode::HalfPixelSymmetric,
        nearest: NearestMode::Ceil,
        scales: vec![1.0, 1.0, 1.5, 0.5],
        sizes: vec![0, 2, 9, 3],
    };
    let rs = op(g, "resize", Op::Resize(rs), &[ex]);
    let pad = Pad {
        pads: vec![0, 0, 1, 2, 0, 0, 2, 1],
        value: 0.0,
        mode: PadMode::Reflect,
    };
    let pr = op(g, "pad_reflect", Op::Pad(pad), &[rs]);
    let qs = f32c(g, "q.scale", &[2], |i| 0.1 + i as f32);
    let qz = g.add_constant(
        "q.zero",
        Tensor::new(vec![2], TensorData::I8(vec![0, -3])).unwrap(),
    );
    let q = op(
        g,
        "quant",
        Op::QuantizeLinear(Qdq { axis: 1 }),
        &[pr, qs, qz],
    );
    outs.push(op(
        g,
        "dequant",
        Op::DequantizeLinear(Qdq { axis: 1 }),
        &[q, qs, qz],
    ));
    outs
}

pub fn every_op() -> Graph {
    let mut g = Graph::new("every op \"quoted\"");
    let x = g.add_input("x", ty(DType::F32, &[None, Some(2), Some(6), Some(6)]));
    let ids = g.add_input("idx:0", ty(DType::I32, &[Some(2)]));
    let conv_w = f32c(&mut g, "w", &[4, 1, 3, 3], |i| i as f32 / 7.0);
    let conv = op(
        &mut g,
        "conv",
        Op::Conv(conv_attrs(
            &[3, 3],
            &[2, 1],
            &[1, 1, 1, 0],
            &[1, 2],
            2,
            false,
        )),
        &[x, conv_w],
    );
    let ct_w = f32c(&mut g, "ct_w", &[4, 1, 2, 2], |i| -(i as f32));
    let ct_b = f32c(&mut g, "ct_b", &[2], |i| i as f32);
    let ct = conv_transpose_attrs(&[2, 2], &[2, 2], &[0, 0, 1, 1], &[1, 1], &[1, 0], 2, true);
    let ct = op(&mut g, "conv_t", Op::ConvTranspose(ct), &[conv, ct_w, ct_b]);
    let bn_p: Vec<ValueRef> = (0..4)
        .map(|k| {
            f32c(&mut g, &format!("bn{k}"), &[2], move |i| {
                (k * 2 + i) as f32 + 0.5
            })
        })
        .collect();
    let bn = op(
        &mut g,
        "bn",
        Op::BatchNorm(BatchNorm { epsilon: 1e-5 }),
        &[ct, bn_p[0], bn_p[1], bn_p[2], bn_p[3]],
    );
    let mut v = bn;
    for (i, u) in [
        UnaryOp::Relu,
        UnaryOp::LeakyRelu { alpha: 0.01 },
        UnaryOp::Sigmoid,
        UnaryOp::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        UnaryOp::HardSwish,
        UnaryOp::Tanh,
        UnaryOp::Erf,
    ]
    .into_iter()
    .enumerate()
    {
        v = op(&mut g, &format!("u{i}"), Op::Unary(u), &[v]);
    }
    let slope = f32c(&mut g, "slope", &[2, 1, 1], |i| 0.1 * i as f32);
    v = op(&mut g, "prelu", Op::PRelu, &[v, slope]);
    let lo = g.add_constant(
        "lo",
        Tensor::new(vec![], TensorData::F32(vec![-6.0])).unwrap(),
    );
    let hi = g.add_constant(
        "hi",
        Tensor::new(vec![1], TensorData::F32(vec![6.0])).unwrap(),
    );
    v = op(
        &mut g,
        "clip",
        Op::Clip(Clip {
            has_min: true,
            has_max: true,
        }),
        &[v, lo, hi],
    );
    let v2 = op(
        &mut g,
        "clip_hi",
        Op::Clip(Clip {
            has_min: false,
            has_max: true,
        }),
        &[v, hi],
    );
    for (i, b) in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div]
        .into_iter()
        .enumerate()
    {
        v = op(&mut g, &format!("bin{i}"), Op::Binary(b), &[v, v2]);
    }
    v = op(
        &mut g,
        "max",
        Op::Variadic(VariadicOp::Max),
        &[v, v2, slope],
    );
    v = op(&mut g, "min", Op::Variadic(VariadicOp::Min), &[v]);
    let pool = pool_attrs(&[2, 2], &[1, 2], &[0, 1, 1, 0], &[1, 1], true, true);
    let mp = op(&mut g, "maxpool", Op::MaxPool(pool.clone()), &[v]);
    let ap = op(&mut g, "avgpool", Op::AveragePool(pool), &[v]);
    let gap = op(
        &mut g,
        "gap",
        Op::GlobalPool(GlobalPoolKind::Average),
        &[mp],
    );
    let gmp = op(&mut g, "gmp", Op::GlobalPool(GlobalPoolKind::Max), &[ap]);
    let cat = op(&mut g, "cat", Op::Concat { axis: 1 }, &[gap, gmp, gap]);
    let sm = op(
        &mut g,
        "softmax",
        Op::Softmax(Softmax {
            axis: 1,
            coerce_2d: true,
        }),
        &[cat],
    );
    let fl = op(&mut g, "flatten", Op::Flatten { axis: 1 }, &[sm]);
    let gw = f32c(&mut g, "gemm.w", &[6, 3], |i| i as f32);
    let gemm = op(
        &mut g,
        "gemm",
        gemm(0.5, 2.0, false, false, false),
        &[fl, gw],
    );
    let mw = f32c(&mut g, "mm.w", &[3], |i| i as f32);
    let mm = op(&mut g, "matmul", Op::MatMul, &[gemm, mw]);
    let rs = op(
        &mut g,
        "reshape",
        Op::Reshape(Reshape {
            shape: vec![-1, 1],
            allow_zero: false,
        }),
        &[mm],
    );
    let tr = op(
        &mut g,
        "transpose",
        Op::Transpose { perm: vec![1, 0] },
        &[rs],
    );
    let pad = op(
        &mut g,
        "pad",
        Op::Pad(Pad {
            pads: vec![1, 0, 2, 0],
            value: -0.0,
            mode: PadMode::Constant,
        }),
        &[tr],
    );
    let sq = op(&mut g, "squeeze", Op::Squeeze { axes: vec![0] }, &[tr]);
    let us = op(
        &mut g,
        "unsqueeze",
        Op::Unsqueeze { axes: vec![0, 2] },
        &[sq],
    );
    let id = op(&mut g, "identity", Op::Identity, &[us]);
    let sh = op(&mut g, "shape", Op::Shape { start: 0, end: 2 }, &[x]);
    let table = f32c(&mut g, "table", &[5, 3], |i| i as f32);
    let ga = op(&mut g, "gather", Op::Gather { axis: 0 }, &[table, ids]);
    let sl = op(
        &mut g,
        "slice",
        Op::Slice(Slice {
            starts: vec![-1, 0],
            ends: vec![i64::MIN, i64::MAX],
            axes: vec![1, 0],
            steps: vec![-2, 1],
        }),
        &[table],
    );
    let split = g
        .add_op_inferred(
            "split",
            Op::Split(Split {
                axis: 0,
                sizes: vec![2, 3],
            }),
            &[table],
            vec!["lo_part".into(), "hi part".into()],
        )
        .unwrap();
    let rm = op(
        &mut g,
        "mean",
        Op::ReduceMean(ReduceMean {
            axes: vec![1],
            keep_dims: true,
        }),
        &[ga],
    );
    let cast = op(&mut g, "cast", Op::Cast { to: DType::I8 }, &[rm]);
    let extra = import_ops(&mut g, x);
    // One constant of every element type, small (literal) and large (hex).
    let mut outs = vec![
        pad,
        id,
        sh,
        sl,
        ValueRef {
            node: split,
            output: 1,
        },
        cast,
    ];
    outs.extend(extra);
    for (i, d) in DType::ALL.into_iter().enumerate() {
        for n in [3usize, 40] {
            let data = match d {
                DType::F32 => TensorData::F32(
                    (0..n)
                        .map(|k| match k {
                            0 => f32::from_bits(0x7fc0_0001),
                            1 => -0.0,
                            2 => f32::NEG_INFINITY,
                            k => k as f32 * 1.1e-3,
                        })
                        .collect(),
                ),
                DType::F64 => TensorData::F64(
                    (0..n)
                        .map(|k| match k {
                            0 => f64::NAN,
                            1 => -f64::NAN,
                            2 => f64::MIN_POSITIVE,
                            k => k as f64 / 3.0,
                        })
                        .collect(),
                ),
                DType::I8 => TensorData::I8((0..n).map(|k| (k as i8).wrapping_mul(37)).collect()),
                DType::U8 => TensorData::U8((0..n).map(|k| (k * 7) as u8).collect()),
                DType::I32 => TensorData::I32((0..n).map(|k| i32::MIN + k as i32).collect()),
                DType::I64 => TensorData::I64((0..n).map(|k| i64::MAX - k as i64).collect()),
                DType::Bool => TensorData::Bool((0..n).map(|k| k % 3 == 0).collect()),
            };
            let c = g.add_constant(format!("c{i}_{n}"), Tensor::new(vec![n], data).unwrap());
            outs.push(c);
        }
    }
    let empty = g.add_constant(
        "empty",
        Tensor::new(vec![0, 3], TensorData::I64(vec![])).unwrap(),
    );
    let scalar = g.add_constant("scalar", Tensor::scalar_f32(2.5));
    outs.push(empty);
    outs.push(scalar);
    outs.push(x);
    // A node name that differs from its value name.
    let n = g
        .add_op_inferred(
            "/model/Relu_7",
            Op::Unary(UnaryOp::Relu),
            &[scalar],
            vec!["r7".into()],
        )
        .unwrap();
    outs.push(ValueRef::first(n));
    g.set_outputs(outs);
    g
}
