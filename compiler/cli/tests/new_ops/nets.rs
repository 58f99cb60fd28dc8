//! The nets of the C exactness matrix besides the real models (`emit_c_targets`), shared
//! with the MLIR backend's matrix (`mlir_ops`): `small_net` (every convolution form and odd
//! fully connected sizes) and `op_nets` (every other op the backends lower, each behind
//! bit-plane convolutions).

use strata_ir::ops::{BinaryOp, Clip, GlobalPoolKind, Pool, ReduceMean, Reshape, Softmax, UnaryOp};
use strata_ir::{Graph, Op, Tensor};
use strata_test_support::{batch_ty, conv_attrs, gemm, op, values};

use super::Builder;

/// Every quantizable layer form the C targets handle differently: conv with 3 input channels
/// (im2col) and asymmetric pads; conv with 10 channels (direct) with stride 2 and dilation 2
/// and 20 output channels (a partial 16-row block); grouped conv with a 2×3 kernel; depthwise
/// conv (im2col per group); Gemm 60→13 and 13→5 (odd reduction, partial blocks).
pub fn small_net() -> Graph {
    let mut g = Graph::new("small_bitplane");
    let dims = [3usize, 9, 9];
    let x = g.add_input("x", batch_ty(&dims));
    let mut seed = 10;
    let mut konst = |g: &mut Graph, name: &str, shape: &[usize], scale: f32| {
        seed += 1;
        let n: usize = shape.iter().product();
        let v = values(n, seed).into_iter().map(|v| v * scale).collect();
        g.add_constant(name, Tensor::from_f32(shape.to_vec(), v).unwrap())
    };
    // Per conv: kernel, stride, pads, dilation, group, weight shape and scale, Relu after.
    type ConvRow = (
        [usize; 2],
        usize,
        [usize; 4],
        usize,
        usize,
        [usize; 4],
        f32,
        bool,
    );
    let convs: [ConvRow; 4] = [
        ([3, 3], 1, [1, 0, 2, 1], 1, 1, [10, 3, 3, 3], 0.4, true),
        ([3, 3], 2, [1, 1, 1, 1], 2, 1, [20, 10, 3, 3], 0.2, true),
        ([2, 3], 1, [1, 1, 0, 1], 1, 2, [20, 10, 2, 3], 0.2, false),
        ([3, 3], 1, [1, 1, 1, 1], 1, 20, [20, 1, 3, 3], 0.5, true),
    ];
    let relu = || Op::Unary(UnaryOp::Relu);
    let mut h = x;
    for (l, (kernel, s, pads, d, group, shape, scale, then_relu)) in (1..).zip(convs) {
        let w = konst(&mut g, &format!("w{l}"), &shape, scale);
        let b = konst(&mut g, &format!("b{l}"), &[shape[0]], 0.1);
        let conv = Op::Conv(conv_attrs(&kernel, &[s; 2], &pads, &[d; 2], group, true));
        h = op(&mut g, &format!("c{l}"), conv, &[h, w, b]);
        if then_relu {
            h = op(&mut g, &format!("r{l}"), relu(), &[h]);
        }
    }
    h = op(&mut g, "flat", Op::Flatten { axis: 1 }, &[h]);
    // Gemm 60→13 with Relu, then 13→5.
    for (l, rows, scale, then_relu) in [(5, 13, 0.15, true), (6, 5, 0.4, false)] {
        let cols = g.value(h).unwrap().ty.shape.resolve(1)[1];
        let w = konst(&mut g, &format!("w{l}"), &[rows, cols], scale);
        let b = konst(&mut g, &format!("b{l}"), &[rows], 0.1);
        let gemm = gemm(1.0, 1.0, false, true, true);
        h = op(&mut g, &format!("fc{l}"), gemm, &[h, w, b]);
        if then_relu {
            h = op(&mut g, &format!("r{l}"), relu(), &[h]);
        }
    }
    let y = h;
    g.set_outputs(vec![y]);
    strata_ir::verify(&g).unwrap();
    g
}

/// The kernels' edge cases: every weight ±1, so each row's codes are the extreme codes of
/// every plane count (`±127 >> (8 − k)`: `−2^(k−1)` and `2^(k−1) − 1` for k < 8), reduction
/// lengths that are multiples of no vector width (37 channels × 3×3 = 333 and 2,997), and
/// long enough that byte-product sums cross every int16 widening interval. Fed saturating
/// inputs, its activations sit at both ends of the code range.
pub fn edge_net() -> Graph {
    let mut g = Graph::new("edges");
    let x = g.add_input("x", batch_ty(&[37, 9, 9]));
    let sign = |o: usize| if o % 2 == 0 { -1.0 } else { 1.0 };
    let w = (0..20 * 333).map(|i| sign(i / 333)).collect();
    let same3x3 = || Op::Conv(conv_attrs(&[3, 3], &[1, 1], &[1; 4], &[1, 1], 1, false));
    let w = g.add_constant("w1", Tensor::from_f32(vec![20, 37, 3, 3], w).unwrap());
    let h = op(&mut g, "c1", same3x3(), &[x, w]);
    // 37 channels again (odd), so the fully connected layer reduces over 37 · 81 = 2,997.
    let w = (0..37 * 180).map(|i| 0.1 * sign(i / 180 + i % 3)).collect();
    let w = g.add_constant("w2", Tensor::from_f32(vec![37, 20, 3, 3], w).unwrap());
    let h = op(&mut g, "c2", same3x3(), &[h, w]);
    let h = op(&mut g, "flat", Op::Flatten { axis: 1 }, &[h]);
    let w = (0..17 * 2997).map(|i| sign(i / 2997)).collect();
    let w = g.add_constant("w3", Tensor::from_f32(vec![17, 2997], w).unwrap());
    let gemm = gemm(1.0, 1.0, false, true, false);
    let y = op(&mut g, "fc3", gemm.clone(), &[h, w]);
    // A fully connected layer over the input itself, whose activation codes saturate with
    // the input: its +1 rows (the highest code, the largest offset-binary field of packed
    // codes) times the highest activation byte fill every int16 step the byte path allows.
    let fx = op(&mut g, "flat_x", Op::Flatten { axis: 1 }, &[x]);
    let w = (0..9 * 2997).map(|i| sign(i / 2997)).collect();
    let w = g.add_constant("w4", Tensor::from_f32(vec![9, 2997], w).unwrap());
    let z = op(&mut g, "fc4", gemm, &[fx, w]);
    let y = op(&mut g, "cat", Op::Concat { axis: 1 }, &[y, z]);
    g.set_outputs(vec![y]);
    strata_ir::verify(&g).unwrap();
    g
}

fn pool2(kernel: usize, pads: [usize; 4], dil: [usize; 2]) -> Pool {
    Pool {
        kernel: vec![kernel, if dil[1] > 1 { 2 } else { kernel }],
        strides: vec![2, 2],
        pads: pads.to_vec(),
        dilations: dil.to_vec(),
        ceil_mode: false,
        count_include_pad: false,
    }
}

/// Tiny nets, each behind bit-plane convolutions (so their ops see different values at every
/// K), that cover every op the C backend supports besides the bit-plane layers: (C prefix,
/// graph). A few nets rather than one per op: each net is one more C translation unit to
/// build per matrix cell, and the ops' outputs reach the net's output without a
/// re-quantization that could hide a difference.
pub fn op_nets() -> Vec<(&'static str, Graph)> {
    let mut nets = Vec::new();
    let add = || Op::Binary(BinaryOp::Add);
    let mul = || Op::Binary(BinaryOp::Mul);
    // Pools of an 11×11 map to 5×5, summed: MaxPool 2×2/2 without pads (the fast path, the
    // last row and column dropped), MaxPool 3×2/2 with dilation 2 across and asymmetric pads
    // (the general path), AveragePool 4×4/2 with pads left out of the divisor, and 4×4/2 with
    // an end pad counted and ceil mode (a last window past the end padding).
    let mut b = Builder::with_seed("op_pool", 100);
    let c = b.conv("c", 6, 2);
    let max2 = b.op("max2x2", Op::MaxPool(pool2(2, [0; 4], [1, 1])), &[c]);
    let max = b.op("max", Op::MaxPool(pool2(3, [1, 0, 0, 1], [1, 2])), &[c]);
    let avg = b.op("avg", Op::AveragePool(pool2(4, [1; 4], [1, 1])), &[c]);
    let mut p = pool2(4, [0, 0, 0, 1], [1, 1]);
    p.count_include_pad = true;
    p.ceil_mode = true;
    let avg_pad = b.op("avg_pad", Op::AveragePool(p), &[c]);
    let s = b.op("s1", add(), &[max2, max]);
    let s = b.op("s2", add(), &[s, avg]);
    let y = b.op("s3", add(), &[s, avg_pad]);
    nets.push(("op_pool", b.finish_one(y)));
    // Elementwise: a standalone Relu read through an Identity of the convolution's output
    // (whose storage has another reader, so the Relu must not be applied in the layer's
    // epilogue), Add and Mul of two activations, Add of a full-size constant given as the
    // first operand, Mul by a scalar, and a Reshape as the output.
    let mut b = Builder::with_seed("op_arith", 110);
    let c1 = b.conv("c1", 4, 1);
    let i = b.op("id", Op::Identity, &[c1]);
    let r = b.op("relu", Op::Unary(UnaryOp::Relu), &[i]);
    let s = b.op("sum", add(), &[c1, r]);
    let c2 = b.conv("c2", 4, 1);
    let m = b.op("prod", mul(), &[s, c2]);
    let k = b.konst("k", &[1, 4, 9, 9], 0.5, 0.0);
    let a = b.op("shift", add(), &[k, m]);
    let k = b.g.add_constant("two", Tensor::scalar_f32(-1.7));
    let p = b.op("scale", mul(), &[a, k]);
    let reshape = Op::Reshape(Reshape {
        shape: vec![0, -1],
        allow_zero: false,
    });
    let y = b.op("reshape", reshape, &[p]);
    nets.push(("op_arith", b.finish_one(y)));
    // GlobalAveragePool over 81 positions, then Flatten.
    let mut b = Builder::with_seed("op_gap", 120);
    let c = b.conv("c", 6, 1);
    let gp = b.op("gap", Op::GlobalPool(GlobalPoolKind::Average), &[c]);
    let y = b.op("flat", Op::Flatten { axis: 1 }, &[gp]);
    nets.push(("op_gap", b.finish_one(y)));
    // Element-wise functions side by side, concatenated along the channels (so every value
    // reaches the output as computed): Sigmoid, LeakyRelu, HardSigmoid, HardSwish,
    // Clip with both bounds and with a minimum only, PRelu with a per-channel slope.
    let mut b = Builder::with_seed("op_act", 130);
    let c = b.conv("c", 6, 1);
    let un = |u| Op::Unary(u);
    let mut outs = vec![
        b.op("sig", un(UnaryOp::Sigmoid), &[c]),
        b.op("leaky", un(UnaryOp::LeakyRelu { alpha: 0.1 }), &[c]),
    ];
    let hs = UnaryOp::HardSigmoid {
        alpha: 0.2,
        beta: 0.5,
    };
    outs.push(b.op("hsig", un(hs), &[c]));
    outs.push(b.op("hswish", un(UnaryOp::HardSwish), &[c]));
    let lo = b.g.add_constant("lo", Tensor::scalar_f32(-0.25));
    let hi = b.g.add_constant("hi", Tensor::scalar_f32(0.5));
    let both = Op::Clip(Clip {
        has_min: true,
        has_max: true,
    });
    outs.push(b.op("clip", both, &[c, lo, hi]));
    let min_only = Op::Clip(Clip {
        has_min: true,
        has_max: false,
    });
    outs.push(b.op("clip_lo", min_only, &[c, lo]));
    let slope = b.konst("slope", &[6, 1, 1], 0.5, 0.0);
    outs.push(b.op("prelu", Op::PRelu, &[c, slope]));
    let y = b.op("cat", Op::Concat { axis: 1 }, &outs);
    nets.push(("op_act", b.finish_one(y)));
    // Broadcasting arithmetic: Sub and Div of activations and of constants on either side
    // (a scalar, a per-channel vector), and a squeeze-excitation gate (ReduceMean over H, W
    // with keepdims, Sigmoid, Mul broadcasting the gate over the map, in both operand orders).
    let mut b = Builder::with_seed("op_bcast", 140);
    let c1 = b.conv("c1", 4, 1);
    let c2 = b.conv("c2", 4, 1);
    let sub = || Op::Binary(BinaryOp::Sub);
    let div = || Op::Binary(BinaryOp::Div);
    let mut outs = vec![b.op("d", sub(), &[c1, c2])];
    let k = b.g.add_constant("k", Tensor::scalar_f32(0.3));
    outs.push(b.op("k_minus", sub(), &[k, c1]));
    let kc = b.konst("kc", &[4, 1, 1], 1.0, 0.0);
    let kc = b.op("kc_off", add(), &[kc, k]);
    outs.push(b.op("per_ch_div", div(), &[c2, kc]));
    outs.push(b.op("div_into", div(), &[k, c2]));
    let mean = Op::ReduceMean(ReduceMean {
        axes: vec![2, 3],
        keep_dims: true,
    });
    let g = b.op("gate_mean", mean, &[c2]);
    let g = b.op("gate", Op::Unary(UnaryOp::Sigmoid), &[g]);
    outs.push(b.op("se", mul(), &[c1, g]));
    outs.push(b.op("se_swapped", mul(), &[g, c2]));
    outs.push(b.op("ch_minus", sub(), &[g, c1]));
    let y = b.op("cat", Op::Concat { axis: 1 }, &outs);
    nets.push(("op_bcast", b.finish_one(y)));
    // Softmax over the last axis of a transposed (NHWC) map and over the channels of the
    // NCHW map, ReduceMean over one middle axis, flattened and concatenated on axis 1.
    let mut b = Builder::with_seed("op_softmax", 150);
    let c = b.conv("c", 5, 1);
    let t = b.op(
        "nhwc",
        Op::Transpose {
            perm: vec![0, 2, 3, 1],
        },
        &[c],
    );
    let sm = |axis| {
        Op::Softmax(Softmax {
            axis,
            coerce_2d: false,
        })
    };
    let s1 = b.op("sm_last", sm(3), &[t]);
    let s2 = b.op("sm_ch", sm(1), &[c]);
    let rm = Op::ReduceMean(ReduceMean {
        axes: vec![1],
        keep_dims: false,
    });
    let m = b.op("mean_h", rm, &[t]);
    let flat = || Op::Flatten { axis: 1 };
    let f1 = b.op("f1", flat(), &[s1]);
    let f2 = b.op("f2", flat(), &[s2]);
    let f3 = b.op("f3", flat(), &[m]);
    let y = b.op("cat", Op::Concat { axis: 1 }, &[f1, f2, f3]);
    nets.push(("op_softmax", b.finish_one(y)));
    // Data movement, reductions, Max/Min, BatchNorm, IEEE unary functions and Resize (every
    // chain of `new_ops` in one net, so the matrix builds one more unit per cell, not three).
    nets.push(("op_new", super::combined()));
    // Two stacked bidirectional LSTMs (bias, peepholes, initial states from activations).
    nets.push(("op_lstm", super::lstm_net()));
    nets
}
