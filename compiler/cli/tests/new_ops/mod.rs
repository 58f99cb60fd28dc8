//! Float graphs (before quantization) that exercise the ops the C backend lowers besides the
//! bit-plane layers and the ops of `emit_c_targets`'s other nets: data movement (Squeeze,
//! Unsqueeze, Slice with negative and >1 steps, Split, Pad in every mode, Gather, Expand),
//! reductions (ReduceMax, ReduceSum, GlobalMaxPool), Max/Min, BatchNorm, the IEEE unary
//! functions, Exp, Log, Tanh and Erf, Resize (nearest and linear in every coordinate mode),
//! a transformer block's LayerNorm (Pow) and attention (MatMul of activations), LSTM
//! (bidirectional, bias, peepholes, initial states), GRU (both reset modes), transposed
//! convolutions (which `conv-transpose-to-conv` turns into bit-plane Convs and pixel
//! shuffles), 1-D convolutions and pools, and Where on comparisons of activations. Each chain starts from its own 3×3 convolution
//! of the `[N, 3, 9, 9]` input, which becomes a bit-plane layer, so the plane count matters;
//! every result is flattened and concatenated into the output, so no re-quantization hides a
//! difference. Shared by `emit_c_ops` (one net per chain) and `emit_c_targets` (all chains
//! in one net).

// Each of the two test crates uses only its part of this module.
#![allow(dead_code)]

pub mod nets;

use strata_ir::ops::elementwise::{CompareOp, VariadicOp};
use strata_ir::ops::{
    pool::Pool, BatchNorm, BinaryOp, Conv, ConvTranspose, CoordMode, Direction, GlobalPoolKind,
    Gru, Lstm, NearestMode, Pad, PadMode, Reduce, Resize, ResizeMode, Slice, Softmax, Split,
    UnaryOp,
};
use strata_ir::Op;
use strata_ir::{DType, Dim, Graph, Shape, Tensor, TensorType, ValueRef};
use strata_test_support::values;

/// A graph under construction with the `[N, 3, 9, 9]` input and deterministic constants.
pub struct Builder {
    pub g: Graph,
    x: ValueRef,
    seed: u64,
}

impl Builder {
    /// The builder of `new_ops`' own nets (constants seeded from 500).
    pub fn new(name: &str) -> Self {
        Self::with_seed(name, 500)
    }

    /// Constants drawn from seeds `seed + 1`, `seed + 2`, …
    pub fn with_seed(name: &str, seed: u64) -> Self {
        let mut g = Graph::new(name);
        let dims = [Dim::Batch, Dim::Known(3), Dim::Known(9), Dim::Known(9)];
        let x = g.add_input("x", TensorType::new(DType::F32, Shape(dims.to_vec())));
        Builder { g, x, seed }
    }

    /// A constant of `shape`: seeded values in [−1, 1) times `scale` plus `offset`.
    pub fn konst(&mut self, name: &str, shape: &[usize], scale: f32, offset: f32) -> ValueRef {
        self.seed += 1;
        let n: usize = shape.iter().product();
        let v = values(n, self.seed)
            .into_iter()
            .map(|v| v * scale + offset)
            .collect();
        self.g
            .add_constant(name, Tensor::from_f32(shape.to_vec(), v).unwrap())
    }

    pub fn op(&mut self, name: &str, op: Op, ins: &[ValueRef]) -> ValueRef {
        ValueRef::first(
            self.g
                .add_op_inferred(name, op, ins, vec![name.to_string()])
                .unwrap(),
        )
    }

    /// A 3×3 convolution of the input to `m` channels with pads `pad`.
    pub fn conv(&mut self, name: &str, m: usize, pad: usize) -> ValueRef {
        let w = self.konst(&format!("{name}_w"), &[m, 3, 3, 3], 0.4, 0.0);
        let b = self.konst(&format!("{name}_b"), &[m], 0.1, 0.0);
        let conv = Op::Conv(Conv {
            kernel: vec![3, 3],
            strides: vec![1, 1],
            pads: vec![pad; 4],
            dilations: vec![1, 1],
            group: 1,
            has_bias: true,
        });
        let x = self.x;
        self.op(name, conv, &[x, w, b])
    }

    /// Every value flattened (axis 1) and concatenated: the graph's one output.
    pub fn finish(mut self, outs: &[ValueRef]) -> Graph {
        let flat: Vec<ValueRef> = outs
            .iter()
            .enumerate()
            .map(|(i, &v)| self.op(&format!("flat{i}"), Op::Flatten { axis: 1 }, &[v]))
            .collect();
        let y = self.op("cat", Op::Concat { axis: 1 }, &flat);
        self.g.set_outputs(vec![y]);
        strata_ir::verify(&self.g).unwrap();
        self.g
    }

    /// `y` as the graph's one output.
    pub fn finish_one(mut self, y: ValueRef) -> Graph {
        self.g.set_outputs(vec![y]);
        strata_ir::verify(&self.g).unwrap();
        self.g
    }
}

/// Squeeze/Unsqueeze, a reversed strided Slice, both Split outputs, Pad in all four modes,
/// a Gather of four indices (one negative) and of one, an Expand of a one-pixel Slice.
pub fn movement(b: &mut Builder) -> Vec<ValueRef> {
    let c = b.conv("mv_c", 4, 1);
    let u = b.op("mv_unsq", Op::Unsqueeze { axes: vec![2] }, &[c]);
    let s = b.op("mv_sq", Op::Squeeze { axes: vec![2] }, &[u]);
    let slice = |starts: Vec<i64>, ends: Vec<i64>, axes: Vec<usize>, steps: Vec<i64>| {
        Op::Slice(Slice {
            starts,
            ends,
            axes,
            steps,
        })
    };
    let sl = b.op(
        "mv_slice",
        slice(vec![-1, 1], vec![-100, 8], vec![1, 3], vec![-1, 3]),
        &[s],
    );
    let split = Op::Split(Split {
        axis: 2,
        sizes: vec![4, 5],
    });
    let id =
        b.g.add_op_inferred("mv_split", split, &[c], vec!["mv_a".into(), "mv_b".into()])
            .unwrap();
    let (sa, sb) = (
        ValueRef::first(id),
        ValueRef {
            node: id,
            output: 1,
        },
    );
    let pad = |mode, pads: [i64; 8], value| {
        Op::Pad(Pad {
            pads: pads.to_vec(),
            value,
            mode,
        })
    };
    let pc = b.op(
        "mv_pad_c",
        pad(PadMode::Constant, [0, 0, 1, 2, 0, 0, 2, 1], 0.5),
        &[c],
    );
    let pr = b.op(
        "mv_pad_r",
        pad(PadMode::Reflect, [0, 0, 2, 1, 0, 0, 1, 3], 0.0),
        &[c],
    );
    let pe = b.op(
        "mv_pad_e",
        pad(PadMode::Edge, [0, 0, 0, 3, 0, 0, 3, 0], 0.0),
        &[sb],
    );
    let pw = b.op(
        "mv_pad_w",
        pad(PadMode::Wrap, [0, 0, 1, 1, 0, 0, 1, 1], 0.0),
        &[sa],
    );
    let idx = b.g.add_constant(
        "mv_idx",
        Tensor::from_i64(vec![4], vec![8, 0, -1, 4]).unwrap(),
    );
    let g4 = b.op("mv_gather4", Op::Gather { axis: 3 }, &[c, idx]);
    let one =
        b.g.add_constant("mv_one", Tensor::from_i64(vec![], vec![2]).unwrap());
    let g1 = b.op("mv_gather1", Op::Gather { axis: 1 }, &[c, one]);
    let px = b.op(
        "mv_pixel",
        slice(vec![4, 2], vec![5, 3], vec![2, 3], vec![1, 1]),
        &[c],
    );
    let e = b.op(
        "mv_expand",
        Op::Expand {
            shape: vec![1, 1, 9, 9],
        },
        &[px],
    );
    vec![sl, sa, sb, pc, pr, pe, pw, g4, g1, e]
}

/// BatchNorm after a Relu, ReduceMax, ReduceSum, GlobalMaxPool, Max of three inputs (one a
/// per-channel constant, one the broadcast pool) and of one, Min with a scalar constant
/// first, Neg, Abs, Floor, Ceil (of a scaled map, so both round), Sqrt (of Abs: no NaN,
/// whose sign differs between ISAs), Reciprocal, Exp (of the scaled map), Log (of Abs), and
/// the deterministic Tanh and Erf (`strata_ir::math`) of the map and of the scaled map (which
/// reaches their saturated ranges).
pub fn arithmetic(b: &mut Builder) -> Vec<ValueRef> {
    let c = b.conv("ar_c", 6, 1);
    let r = b.op("ar_relu", Op::Unary(UnaryOp::Relu), &[c]);
    let scale = b.konst("ar_bn_scale", &[6], 0.5, 1.0);
    let bias = b.konst("ar_bn_bias", &[6], 0.2, 0.0);
    let mean = b.konst("ar_bn_mean", &[6], 0.1, 0.3);
    let var = b.konst("ar_bn_var", &[6], 0.2, 0.5);
    let bn = b.op(
        "ar_bn",
        Op::BatchNorm(BatchNorm { epsilon: 1e-3 }),
        &[r, scale, bias, mean, var],
    );
    let red = |axes: Vec<usize>, keep_dims| Reduce { axes, keep_dims };
    let rmax = b.op("ar_rmax", Op::ReduceMax(red(vec![2, 3], false)), &[c]);
    let rsum = b.op("ar_rsum", Op::ReduceSum(red(vec![1], true)), &[c]);
    let gmp = b.op("ar_gmp", Op::GlobalPool(GlobalPoolKind::Max), &[c]);
    let kc = b.konst("ar_kc", &[6, 1, 1], 0.3, 0.0);
    let mx = b.op("ar_max", Op::Variadic(VariadicOp::Max), &[gmp, c, kc]);
    let k = b.g.add_constant("ar_k", Tensor::scalar_f32(0.1));
    let mn = b.op("ar_min", Op::Variadic(VariadicOp::Min), &[k, c]);
    let m1 = b.op("ar_max1", Op::Variadic(VariadicOp::Max), &[c]);
    let un = |u| Op::Unary(u);
    let neg = b.op("ar_neg", un(UnaryOp::Neg), &[m1]);
    let abs = b.op("ar_abs", un(UnaryOp::Abs), &[c]);
    let seven = b.g.add_constant("ar_seven", Tensor::scalar_f32(7.0));
    let t = b.op("ar_scaled", Op::Binary(BinaryOp::Mul), &[c, seven]);
    let fl = b.op("ar_floor", un(UnaryOp::Floor), &[t]);
    let ce = b.op("ar_ceil", un(UnaryOp::Ceil), &[t]);
    let sq = b.op("ar_sqrt", un(UnaryOp::Sqrt), &[abs]);
    let rc = b.op("ar_recip", un(UnaryOp::Reciprocal), &[c]);
    let ex = b.op("ar_exp", un(UnaryOp::Exp), &[t]);
    let lg = b.op("ar_log", un(UnaryOp::Log), &[abs]);
    let th = b.op("ar_tanh", un(UnaryOp::Tanh), &[c]);
    let th7 = b.op("ar_tanh7", un(UnaryOp::Tanh), &[t]);
    let ef = b.op("ar_erf", un(UnaryOp::Erf), &[c]);
    let ef7 = b.op("ar_erf7", un(UnaryOp::Erf), &[t]);
    vec![
        bn, rmax, rsum, gmp, mx, mn, neg, abs, fl, ce, sq, rc, ex, lg, th, th7, ef, ef7,
    ]
}

/// Where on comparisons of f32 values (the C and MLIR `select_where`): an activation against a
/// scalar (PyTorch's Softplus threshold), against a per-channel constant with a constant
/// branch, two activations with each other (≥ and ≤), and Equal on floored values, which
/// hits both branches; and Where on constant masks (causal, per channel).
pub fn selecting(b: &mut Builder) -> Vec<ValueRef> {
    let c = b.conv("se_c", 6, 1);
    let d = b.conv("se_d", 6, 1);
    let cmp = |b: &mut Builder, name: &str, op, l, r| b.op(name, Op::Compare(op), &[l, r]);
    let t = b.g.add_constant("se_t", Tensor::scalar_f32(0.1));
    let half = b.g.add_constant("se_half", Tensor::scalar_f32(0.5));
    let small = b.op("se_small", Op::Binary(BinaryOp::Mul), &[c, half]);
    let gt = cmp(b, "se_gt", CompareOp::Greater, c, t);
    let w1 = b.op("se_w1", Op::Where, &[gt, c, small]);
    let kc = b.konst("se_kc", &[6, 1, 1], 0.3, 0.0);
    let lt = cmp(b, "se_lt", CompareOp::Less, c, kc);
    let w2 = b.op("se_w2", Op::Where, &[lt, half, d]);
    let ge = cmp(b, "se_ge", CompareOp::GreaterOrEqual, c, d);
    let w3 = b.op("se_w3", Op::Where, &[ge, d, c]);
    let le = cmp(b, "se_le", CompareOp::LessOrEqual, d, kc);
    let w4 = b.op("se_w4", Op::Where, &[le, c, kc]);
    let three = b.g.add_constant("se_three", Tensor::scalar_f32(3.0));
    let c3 = b.op("se_c3", Op::Binary(BinaryOp::Mul), &[c, three]);
    let fl = b.op("se_floor", Op::Unary(UnaryOp::Floor), &[c3]);
    let zero = b.g.add_constant("se_zero", Tensor::scalar_f32(0.0));
    let eq = cmp(b, "se_eq", CompareOp::Equal, fl, zero);
    let w5 = b.op("se_w5", Op::Where, &[eq, d, c3]);
    // Constant masks: a causal (lower-triangular) one over the 9×9 map, as `masked_fill`
    // writes it, and one per channel.
    let causal = (0..81).map(|i| i % 9 <= i / 9).collect();
    let causal = Tensor::new(vec![9, 9], strata_ir::TensorData::Bool(causal)).unwrap();
    let causal = b.g.add_constant("se_causal", causal);
    let low = b.g.add_constant("se_low", Tensor::scalar_f32(-3.0));
    let w6 = b.op("se_w6", Op::Where, &[causal, c, low]);
    let per_c = Tensor::new(
        vec![6, 1, 1],
        strata_ir::TensorData::Bool(vec![true, false, false, true, true, false]),
    )
    .unwrap();
    let per_c = b.g.add_constant("se_per_c", per_c);
    let w7 = b.op("se_w7", Op::Where, &[per_c, d, c]);
    vec![w1, w2, w3, w4, w5, w6, w7]
}

/// Resize of a 7×7 map: nearest up (asymmetric, floor), down (half_pixel, round_prefer_ceil)
/// and tf_half_pixel_for_nn (round_prefer_floor; with ceil it would move every scale-1 axis,
/// the batch included, one index up, so a batched run would mix samples); linear with
/// half_pixel, align_corners, pytorch_half_pixel (to one row), asymmetric and
/// half_pixel_symmetric.
pub fn resizing(b: &mut Builder) -> Vec<ValueRef> {
    let c = b.conv("rs_c", 3, 0);
    // Mode, coordinate transformation, rounding, output H and W, scales (else sizes / 7).
    type Row = (
        ResizeMode,
        CoordMode,
        NearestMode,
        [usize; 2],
        Option<[f32; 2]>,
    );
    let rows: [Row; 8] = [
        (
            ResizeMode::Nearest,
            CoordMode::Asymmetric,
            NearestMode::Floor,
            [14, 14],
            None,
        ),
        (
            ResizeMode::Nearest,
            CoordMode::HalfPixel,
            NearestMode::RoundPreferCeil,
            [5, 4],
            None,
        ),
        (
            ResizeMode::Nearest,
            CoordMode::TfHalfPixelForNn,
            NearestMode::RoundPreferFloor,
            [10, 3],
            None,
        ),
        (
            ResizeMode::Linear,
            CoordMode::HalfPixel,
            NearestMode::Floor,
            [13, 11],
            None,
        ),
        (
            ResizeMode::Linear,
            CoordMode::AlignCorners,
            NearestMode::Floor,
            [5, 9],
            None,
        ),
        (
            ResizeMode::Linear,
            CoordMode::PytorchHalfPixel,
            NearestMode::Floor,
            [1, 12],
            None,
        ),
        (
            ResizeMode::Linear,
            CoordMode::Asymmetric,
            NearestMode::Floor,
            [17, 3],
            Some([2.5, 0.5]),
        ),
        (
            ResizeMode::Linear,
            CoordMode::HalfPixelSymmetric,
            NearestMode::Floor,
            [9, 9],
            Some([1.3, 1.3]),
        ),
    ];
    let mut outs = Vec::new();
    for (i, (mode, coord, nearest, [h, w], scales)) in rows.into_iter().enumerate() {
        let [sh, sw] = scales.unwrap_or([h as f32 / 7.0, w as f32 / 7.0]);
        let r = Resize {
            mode,
            coord,
            nearest,
            scales: vec![1.0, 1.0, sh, sw],
            sizes: vec![0, 0, h, w],
        };
        outs.push(b.op(&format!("rs_{i}"), Op::Resize(r), &[c]));
    }
    outs
}

/// A transformer block's float ops: LayerNorm over the last axis as PP-OCR exports it
/// (ReduceMean, Sub, Pow 2, ReduceMean, Add ε, Sqrt, Div), Pow with the other exact exponents
/// (3, −1, 0.5 of an absolute value, 1) and a general one (1.7 of an absolute value), a
/// constant base raised to an activation (`2^x`, the base broadcast); attention as per-head
/// MatMuls of activations (`Q·Kᵀ`, Softmax, `·V`), a MatMul broadcasting a one-head map over
/// four heads, and one by a constant `[9, 5]` matrix.
pub fn attention(b: &mut Builder) -> Vec<ValueRef> {
    let q = b.conv("at_q", 4, 1);
    let red = |axes: Vec<usize>| {
        Op::ReduceMean(Reduce {
            axes,
            keep_dims: true,
        })
    };
    let bin = |o| Op::Binary(o);
    let mean = b.op("at_ln_mean", red(vec![3]), &[q]);
    let d = b.op("at_ln_sub", bin(BinaryOp::Sub), &[q, mean]);
    let two = b.g.add_constant("at_two", Tensor::scalar_f32(2.0));
    let sq = b.op("at_ln_pow", bin(BinaryOp::Pow), &[d, two]);
    let var = b.op("at_ln_var", red(vec![3]), &[sq]);
    let eps = b.g.add_constant("at_eps", Tensor::scalar_f32(1e-5));
    let ve = b.op("at_ln_add", bin(BinaryOp::Add), &[var, eps]);
    let sd = b.op("at_ln_sqrt", Op::Unary(UnaryOp::Sqrt), &[ve]);
    let ln = b.op("at_ln_div", bin(BinaryOp::Div), &[d, sd]);
    let abs = b.op("at_abs", Op::Unary(UnaryOp::Abs), &[q]);
    let mut outs = vec![sq, ln];
    for (i, (e, base)) in [(3.0, q), (-1.0, q), (0.5, abs), (1.0, q), (1.7, abs)]
        .into_iter()
        .enumerate()
    {
        let k = b.g.add_constant(format!("at_e{i}"), Tensor::scalar_f32(e));
        outs.push(b.op(&format!("at_pow{i}"), bin(BinaryOp::Pow), &[base, k]));
    }
    let base = b.g.add_constant("at_base", Tensor::scalar_f32(2.0));
    outs.push(b.op("at_exp2", bin(BinaryOp::Pow), &[base, q]));
    let k = b.conv("at_k", 4, 1);
    let v = b.conv("at_v", 4, 1);
    let kt = b.op(
        "at_kt",
        Op::Transpose {
            perm: vec![0, 1, 3, 2],
        },
        &[k],
    );
    let s = b.op("at_qk", Op::MatMul, &[ln, kt]);
    let p = b.op(
        "at_softmax",
        Op::Softmax(Softmax {
            axis: 3,
            coerce_2d: false,
        }),
        &[s],
    );
    outs.push(b.op("at_pv", Op::MatMul, &[p, v]));
    let one_head = b.op("at_head_mean", red(vec![1]), &[k]);
    outs.push(b.op("at_bcast", Op::MatMul, &[one_head, v]));
    let w = b.konst("at_w", &[9, 5], 0.5, 0.0);
    outs.push(b.op("at_proj", Op::MatMul, &[v, w]));
    outs
}

/// Transposed convolutions of the `[N, 4, 7, 7]` conv map: kernel 3 stride 2 with output
/// padding, kernel 4 stride 2 in two groups, and a kernel 2 stride 2 one stacked on the first
/// (so a rewritten layer feeds another).
pub fn upsampling(b: &mut Builder) -> Vec<ValueRef> {
    let c = b.conv("up_c", 4, 0);
    let ct = |k: usize, p: usize, out_pad: usize, group: usize| {
        Op::ConvTranspose(ConvTranspose {
            kernel: vec![k, k],
            strides: vec![2, 2],
            pads: vec![p; 4],
            dilations: vec![1, 1],
            output_padding: vec![out_pad, out_pad],
            group,
            has_bias: true,
        })
    };
    let (w1, b1) = (
        b.konst("up1_w", &[4, 3, 3, 3], 0.4, 0.0),
        b.konst("up1_b", &[3], 0.1, 0.0),
    );
    let u1 = b.op("up1", ct(3, 1, 1, 1), &[c, w1, b1]);
    let (w2, b2) = (
        b.konst("up2_w", &[4, 2, 4, 4], 0.4, 0.0),
        b.konst("up2_b", &[4], 0.1, 0.0),
    );
    let u2 = b.op("up2", ct(4, 1, 0, 2), &[c, w2, b2]);
    let (w3, b3) = (
        b.konst("up3_w", &[3, 2, 2, 2], 0.4, 0.0),
        b.konst("up3_b", &[2], 0.1, 0.0),
    );
    let u3 = b.op("up3", ct(2, 0, 0, 1), &[u1, w3, b3]);
    vec![u2, u3]
}

/// 1-D windows (audio, sequences): the conv map read as 4 channels of 49 samples, a grouped,
/// strided, dilated and padded 1-D convolution (a bit-plane layer of its own), 1-D max and
/// average pooling with uneven pads, a 1-D convolution of a pooled sequence and a strided 1-D
/// transposed convolution of it; the backends run them as 2-D windows of height 1.
pub fn sequence_1d(b: &mut Builder) -> Vec<ValueRef> {
    let c = b.conv("sq_c", 4, 0);
    let reshape = Op::Reshape(strata_ir::ops::Reshape {
        shape: vec![0, 4, 49],
        allow_zero: false,
    });
    let seq = b.op("sq_seq", reshape, &[c]);
    let conv = |k: usize, stride: usize, pads: [usize; 2], dil: usize, group: usize| {
        Op::Conv(Conv {
            kernel: vec![k],
            strides: vec![stride],
            pads: pads.to_vec(),
            dilations: vec![dil],
            group,
            has_bias: true,
        })
    };
    let (w1, b1) = (
        b.konst("sq1_w", &[6, 2, 3], 0.5, 0.0),
        b.konst("sq1_b", &[6], 0.1, 0.0),
    );
    let c1 = b.op("sq_conv1", conv(3, 2, [2, 1], 2, 2), &[seq, w1, b1]);
    let pool = |k: usize, stride: usize, pads: [usize; 2]| Pool {
        kernel: vec![k],
        strides: vec![stride],
        pads: pads.to_vec(),
        dilations: vec![1],
        ceil_mode: false,
        count_include_pad: false,
    };
    let mx = b.op("sq_max", Op::MaxPool(pool(3, 2, [1, 0])), &[c1]);
    let av = b.op("sq_avg", Op::AveragePool(pool(2, 1, [0, 1])), &[c1]);
    let (w2, b2) = (
        b.konst("sq2_w", &[3, 6, 5], 0.4, 0.0),
        b.konst("sq2_b", &[3], 0.1, 0.0),
    );
    let c2 = b.op("sq_conv2", conv(5, 1, [2, 2], 1, 1), &[mx, w2, b2]);
    // A 1-D transposed convolution (an audio decoder's upsampling), stride 3 with an output
    // padding: `conv-transpose-to-conv` makes it bit-plane Convs and a 1-D pixel shuffle.
    let (w3, b3) = (
        b.konst("sq3_w", &[3, 2, 5], 0.4, 0.0),
        b.konst("sq3_b", &[2], 0.1, 0.0),
    );
    let up = Op::ConvTranspose(ConvTranspose {
        kernel: vec![5],
        strides: vec![3],
        pads: vec![2, 2],
        dilations: vec![1],
        output_padding: vec![1],
        group: 1,
        has_bias: true,
    });
    let u = b.op("sq_up", up, &[c2, w3, b3]);
    vec![av, c2, u]
}

/// One net per chain: (C prefix, float graph).
pub fn nets() -> Vec<(&'static str, Graph)> {
    type Chain = fn(&mut Builder) -> Vec<ValueRef>;
    let chains: [(&'static str, Chain); 8] = [
        ("op_move", movement),
        ("op_more", arithmetic),
        ("op_resize", resizing),
        ("op_attn", attention),
        ("op_lstm", recurrent),
        ("op_up", upsampling),
        ("op_seq", sequence_1d),
        ("op_sel", selecting),
    ];
    chains
        .into_iter()
        .map(|(name, chain)| {
            let mut b = Builder::new(name);
            let outs = chain(&mut b);
            (name, b.finish(&outs))
        })
        .collect()
}

/// Two stacked bidirectional LSTMs over the conv map read as a sequence (`[N, 4, 7, 7]` →
/// `[7, N, 28]`): the first with a bias, the second with peepholes and the first one's final
/// states as its initial states (activations, not constants); the second's `y`, `y_h` and
/// `y_c` are results; and two GRUs over the same sequence (see below), whose outputs are too.
pub fn recurrent(b: &mut Builder) -> Vec<ValueRef> {
    let c = b.conv("rn_c", 4, 0);
    let reshape = |shape: Vec<i64>| {
        Op::Reshape(strata_ir::ops::Reshape {
            shape,
            allow_zero: false,
        })
    };
    let r = b.op("rn_rows", reshape(vec![0, 28, 7]), &[c]);
    let seq = b.op(
        "rn_seq",
        Op::Transpose {
            perm: vec![2, 0, 1],
        },
        &[r],
    );
    let lstm = |has_bias, has_initial, has_peepholes| {
        Op::Lstm(Lstm {
            direction: Direction::Bidirectional,
            hidden: 5,
            has_bias,
            has_initial_h: has_initial,
            has_initial_c: has_initial,
            has_peepholes,
        })
    };
    let w1 = b.konst("rn_w1", &[2, 20, 28], 0.3, 0.0);
    let r1 = b.konst("rn_r1", &[2, 20, 5], 0.5, 0.0);
    let b1 = b.konst("rn_b1", &[2, 40], 0.3, 0.1);
    let names = |p: &str| vec![format!("{p}_y"), format!("{p}_yh"), format!("{p}_yc")];
    let id =
        b.g.add_op_inferred(
            "rn_lstm1",
            lstm(true, false, false),
            &[seq, w1, r1, b1],
            names("rn1"),
        )
        .unwrap();
    let out = |output| ValueRef { node: id, output };
    let (y1, h1, c1) = (out(0), out(1), out(2));
    // [7, 2, N, 5] → [7, N, 2, 5] → [7, N, 10].
    let y1t = b.op(
        "rn_y1t",
        Op::Transpose {
            perm: vec![0, 2, 1, 3],
        },
        &[y1],
    );
    let x2 = b.op("rn_x2", reshape(vec![7, 0, 10]), &[y1t]);
    let w2 = b.konst("rn_w2", &[2, 20, 10], 0.4, 0.0);
    let r2 = b.konst("rn_r2", &[2, 20, 5], 0.5, 0.0);
    let p2 = b.konst("rn_p2", &[2, 15], 0.5, 0.0);
    let id =
        b.g.add_op_inferred(
            "rn_lstm2",
            lstm(false, true, true),
            &[x2, w2, r2, h1, c1, p2],
            names("rn2"),
        )
        .unwrap();
    let out = |output| ValueRef { node: id, output };
    let y = b.op(
        "rn_y",
        Op::Transpose {
            perm: vec![2, 0, 1, 3],
        },
        &[out(0)],
    );
    let yh = b.op(
        "rn_yh",
        Op::Transpose {
            perm: vec![1, 0, 2],
        },
        &[out(1)],
    );
    let yc = b.op(
        "rn_yc",
        Op::Transpose {
            perm: vec![1, 0, 2],
        },
        &[out(2)],
    );
    // Two GRUs over the same sequence: bidirectional with a bias and the reset gate before
    // the recurrent product (the ONNX default), then a reverse one with
    // `linear_before_reset` (what PyTorch exports) whose initial state is the first one's
    // backward final state (an activation).
    let gru = |direction, has_bias, has_initial_h, linear_before_reset| {
        Op::Gru(Gru {
            direction,
            hidden: 4,
            has_bias,
            has_initial_h,
            linear_before_reset,
        })
    };
    let gw1 = b.konst("rn_gw1", &[2, 12, 28], 0.3, 0.0);
    let gr1 = b.konst("rn_gr1", &[2, 12, 4], 0.6, 0.0);
    let gb1 = b.konst("rn_gb1", &[2, 24], 0.3, 0.1);
    let id =
        b.g.add_op_inferred(
            "rn_gru1",
            gru(Direction::Bidirectional, true, false, false),
            &[seq, gw1, gr1, gb1],
            vec!["rn_g1_y".into(), "rn_g1_yh".into()],
        )
        .unwrap();
    let out = |output| ValueRef { node: id, output };
    let (gy1, gh1) = (out(0), out(1));
    let back = b.op(
        "rn_g1_back",
        Op::Slice(Slice {
            starts: vec![1],
            ends: vec![2],
            axes: vec![0],
            steps: vec![1],
        }),
        &[gh1],
    );
    let gw2 = b.konst("rn_gw2", &[1, 12, 28], 0.3, 0.0);
    let gr2 = b.konst("rn_gr2", &[1, 12, 4], 0.6, 0.0);
    let gb2 = b.konst("rn_gb2", &[1, 24], 0.3, -0.1);
    let id =
        b.g.add_op_inferred(
            "rn_gru2",
            gru(Direction::Reverse, true, true, true),
            &[seq, gw2, gr2, gb2, back],
            vec!["rn_g2_y".into(), "rn_g2_yh".into()],
        )
        .unwrap();
    let out = |output| ValueRef { node: id, output };
    let gyt = b.op(
        "rn_g1_yt",
        Op::Transpose {
            perm: vec![2, 0, 1, 3],
        },
        &[gy1],
    );
    let g2yt = b.op(
        "rn_g2_yt",
        Op::Transpose {
            perm: vec![2, 0, 1, 3],
        },
        &[out(0)],
    );
    let g2h = b.op(
        "rn_g2_ht",
        Op::Transpose {
            perm: vec![1, 0, 2],
        },
        &[out(1)],
    );
    vec![y, yh, yc, gyt, g2yt, g2h]
}

/// The LSTM chain as its own net (kept out of `op_new`, which had to run without it when the
/// MLIR backend refused LSTM; both backends now run it).
pub fn lstm_net() -> Graph {
    let mut b = Builder::new("op_lstm");
    let outs = recurrent(&mut b);
    b.finish(&outs)
}

/// Every chain in one net.
pub fn combined() -> Graph {
    let mut b = Builder::new("op_new");
    let mut outs = movement(&mut b);
    outs.extend(arithmetic(&mut b));
    outs.extend(resizing(&mut b));
    outs.extend(attention(&mut b));
    outs.extend(sequence_1d(&mut b));
    outs.extend(selecting(&mut b));
    b.finish(&outs)
}
