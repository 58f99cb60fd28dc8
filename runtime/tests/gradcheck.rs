//! Gradient checks: every reverse-mode rule in `strata_runtime::autodiff` against central
//! finite differences of the forward kernels (f32 evaluation, f64 accumulation), the losses
//! likewise, the fake-quant estimators against their written definition, and a whole
//! conv→relu→pool→flatten→gemm network through the tape.

use strata_test_support::*;

use strata_ir::ops::{
    BatchNorm, BinaryOp, Clip, GlobalPoolKind, Reshape, Softmax, UnaryOp, VariadicOp,
};
use strata_ir::{DType, Dim, Graph, Op, Shape, Tensor, TensorType, ValueRef};
use strata_runtime::autodiff::fake_quant::{lsq_grad_scale, ActFakeQuant, WeightFakeQuant};
use strata_runtime::autodiff::loss::{kl_distillation, softmax_cross_entropy};
use strata_runtime::autodiff::{backward_op, forward_with_tape};
use strata_runtime::{eval_op, run, RuntimeError};

const EPS: f32 = 1e-3;
const RTOL: f64 = 1e-2;
const ATOL: f64 = 1e-3;

/// `Σ r·y` in f64.
fn weighted(y: &Tensor, r: &[f32]) -> f64 {
    y.as_f32()
        .unwrap()
        .iter()
        .zip(r)
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum()
}

#[track_caller]
fn assert_grad(what: &str, analytic: &[f32], numeric: &[f64]) {
    assert_eq!(analytic.len(), numeric.len(), "{what}: length");
    for (i, (&a, &n)) in analytic.iter().zip(numeric).enumerate() {
        let ok = (a as f64 - n).abs() <= ATOL + RTOL * n.abs();
        assert!(ok, "{what}: element {i}: analytic {a}, numeric {n}");
    }
}

/// Checks the VJP of `op` for every f32 input against finite differences of
/// `L = Σ r·op(inputs)` with random `r`.
/// Seeded tensors of `shapes`, with seeds `seed`, `seed + 1`, ….
fn seeded(shapes: &[&[usize]], seed: u64) -> Vec<Tensor> {
    (0..)
        .zip(shapes)
        .map(|(i, s)| rand_tensor(s, seed + i))
        .collect()
}

/// [`check_op`] for several ops of one input: `(what, op, seed)` each.
fn check_each<const K: usize>(x: &Tensor, cases: [(&str, Op, u64); K]) {
    for (what, op, seed) in cases {
        check_op(what, &op, std::slice::from_ref(x), seed);
    }
}

fn check_op(what: &str, op: &Op, inputs: &[Tensor], seed: u64) {
    let refs: Vec<&Tensor> = inputs.iter().collect();
    let y = eval_op(op, &refs).unwrap().remove(0);
    let r = values(y.len(), seed ^ 0xABCD);
    let rt = f32t(y.shape(), &r);
    let grads = backward_op(op, &refs, &y, &rt).unwrap();
    assert_eq!(
        grads.len(),
        inputs.len(),
        "{what}: one gradient slot per input"
    );
    for (slot, g) in grads.iter().enumerate() {
        let Some(g) = g else {
            assert_ne!(
                inputs[slot].dtype(),
                DType::F32,
                "{what}: f32 input {slot} got no gradient"
            );
            continue;
        };
        assert_eq!(
            g.shape(),
            inputs[slot].shape(),
            "{what}: gradient shape of input {slot}"
        );
        let numeric = central_fd(&inputs[slot], |t| {
            let mut p = refs.clone();
            p[slot] = t;
            weighted(&eval_op(op, &p).unwrap()[0], &r)
        });
        assert_grad(
            &format!("{what}, input {slot}"),
            g.as_f32().unwrap(),
            &numeric,
        );
    }
}

/// Random values in [-scale, scale] kept at least `gap` away from every kink.
fn away(shape: &[usize], seed: u64, scale: f32, kinks: &[f32], gap: f32) -> Tensor {
    let v = values(shape.iter().product(), seed)
        .into_iter()
        .map(|x| {
            let mut x = x * scale;
            for &k in kinks {
                if (x - k).abs() < gap {
                    x = if x >= k { k + gap } else { k - gap };
                }
            }
            x
        })
        .collect::<Vec<_>>();
    f32t(shape, &v)
}

/// Distinct values (a shuffled ramp with step 0.05), so no max is within EPS of a tie.
fn distinct(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let keys = values(n, seed);
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| keys[a].total_cmp(&keys[b]));
    let mut v = vec![0f32; n];
    for (rank, &i) in idx.iter().enumerate() {
        v[i] = (rank as f32 - n as f32 / 2.0) * 0.05;
    }
    f32t(shape, &v)
}

#[test]
fn conv_grouped_strided_padded_dilated_with_bias() {
    let c = conv_attrs(&[3, 2], &[2, 1], &[1, 0, 0, 1], &[1, 2], 2, true);
    let inputs = seeded(&[&[2, 4, 5, 6], &[4, 2, 3, 2], &[4]], 1);
    check_op("conv", &Op::Conv(c), &inputs, 4);
}

#[test]
fn conv_batch_larger_than_a_chunk_and_1d() {
    let c = conv_attrs(&[3, 3], &[1, 1], &[1, 1, 1, 1], &[1, 1], 1, false);
    let inputs = seeded(&[&[6, 2, 4, 4], &[3, 2, 3, 3]], 5);
    check_op("conv 3x3", &Op::Conv(c), &inputs, 7);
    let c = conv_attrs(&[2], &[2], &[1, 1], &[1], 3, true);
    let inputs = seeded(&[&[2, 3, 7], &[3, 1, 2], &[3]], 8);
    check_op("conv 1-d depthwise", &Op::Conv(c), &inputs, 11);
}

#[test]
fn gemm_all_transpositions_with_broadcast_c() {
    for (i, (ta, tb)) in [(false, false), (true, false), (false, true), (true, true)]
        .into_iter()
        .enumerate()
    {
        let op = gemm(0.7, 1.3, ta, tb, true);
        let a = if ta {
            rand_tensor(&[4, 3], 20 + i as u64)
        } else {
            rand_tensor(&[3, 4], 20 + i as u64)
        };
        let b = if tb {
            rand_tensor(&[5, 4], 30 + i as u64)
        } else {
            rand_tensor(&[4, 5], 30 + i as u64)
        };
        check_op(
            &format!("gemm ta={ta} tb={tb}"),
            &op,
            &[a, b, rand_tensor(&[5], 40)],
            50,
        );
    }
    let op = gemm(1.0, 1.0, false, true, false);
    check_op(
        "gemm no c",
        &op,
        &[rand_tensor(&[2, 3], 51), rand_tensor(&[4, 3], 52)],
        53,
    );
}

#[test]
fn matmul_plain_batched_broadcast_and_vector() {
    check_op(
        "matmul 2d",
        &Op::MatMul,
        &[rand_tensor(&[3, 4], 60), rand_tensor(&[4, 2], 61)],
        62,
    );
    check_op(
        "matmul batched",
        &Op::MatMul,
        &[rand_tensor(&[2, 3, 4], 63), rand_tensor(&[4, 5], 64)],
        65,
    );
    check_op(
        "matmul broadcast",
        &Op::MatMul,
        &[rand_tensor(&[2, 1, 3, 4], 66), rand_tensor(&[3, 4, 2], 67)],
        68,
    );
    check_op(
        "matmul vector",
        &Op::MatMul,
        &[rand_tensor(&[4], 69), rand_tensor(&[4, 3], 70)],
        71,
    );
}

#[test]
fn binary_ops_with_broadcasting() {
    for (i, b) in [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul]
        .into_iter()
        .enumerate()
    {
        let op = Op::Binary(b);
        check_op(
            &format!("{b:?}"),
            &op,
            &[
                rand_tensor(&[2, 3, 4], 80 + i as u64),
                rand_tensor(&[3, 1], 90),
            ],
            91,
        );
        check_op(
            &format!("{b:?} same"),
            &op,
            &[rand_tensor(&[5], 92), rand_tensor(&[5], 93)],
            94,
        );
    }
    let denom = away(&[3, 1], 95, 2.0, &[0.0], 0.5);
    check_op(
        "div",
        &Op::Binary(BinaryOp::Div),
        &[rand_tensor(&[2, 3, 4], 96), denom],
        97,
    );
}

#[test]
fn max_min_route_to_the_supplying_input() {
    // Distinct values over all inputs, so no two broadcast elements tie within EPS.
    let all = distinct(&[24 + 3 + 4], 98);
    let v = all.as_f32().unwrap();
    let inputs = [
        f32t(&[2, 3, 4], &v[..24]),
        f32t(&[3, 1], &v[24..27]),
        f32t(&[4], &v[27..]),
    ];
    for (i, op) in [VariadicOp::Max, VariadicOp::Min].into_iter().enumerate() {
        let op = Op::Variadic(op);
        check_op(&format!("{op:?}"), &op, &inputs, 99 + i as u64);
        check_op(&format!("{op:?} one input"), &op, &inputs[..1], 101);
    }
    // On a tie the first input takes the whole gradient.
    let (a, b) = (f32t(&[2], &[1.0, 2.0]), f32t(&[2], &[1.0, 0.0]));
    let op = Op::Variadic(VariadicOp::Max);
    let y = eval_op(&op, &[&a, &b]).unwrap().remove(0);
    let g = backward_op(&op, &[&a, &b], &y, &f32t(&[2], &[3.0, 4.0])).unwrap();
    assert_eq!(g[0].as_ref().unwrap().as_f32().unwrap(), &[3.0, 4.0]);
    assert_eq!(g[1].as_ref().unwrap().as_f32().unwrap(), &[0.0, 0.0]);
}

#[test]
fn activations() {
    let cases: Vec<(UnaryOp, Vec<f32>)> = vec![
        (UnaryOp::Relu, vec![0.0]),
        (UnaryOp::LeakyRelu { alpha: 0.1 }, vec![0.0]),
        (UnaryOp::Sigmoid, vec![]),
        (
            UnaryOp::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            vec![-2.5, 2.5],
        ),
        (UnaryOp::HardSwish, vec![-3.0, 3.0]),
        (UnaryOp::Tanh, vec![]),
        (UnaryOp::Erf, vec![]),
    ];
    for (i, (u, kinks)) in cases.into_iter().enumerate() {
        let x = away(&[3, 17], 100 + i as u64, 4.0, &kinks, 0.05);
        check_op(&format!("{u:?}"), &Op::Unary(u), &[x], 110 + i as u64);
    }
}

#[test]
fn clip_passes_inside_and_routes_outside_to_the_bounds() {
    let op = Op::Clip(Clip {
        has_min: true,
        has_max: true,
    });
    let x = away(&[4, 5], 120, 2.0, &[-0.5, 0.8], 0.05);
    check_op(
        "clip",
        &op,
        &[x.clone(), f32t(&[], &[-0.5]), f32t(&[], &[0.8])],
        121,
    );
    let only_max = Op::Clip(Clip {
        has_min: false,
        has_max: true,
    });
    check_op("clip max", &only_max, &[x, f32t(&[], &[0.8])], 122);
}

#[test]
fn pools() {
    let x = distinct(&[2, 3, 5, 6], 130);
    let overlapping = pool_attrs(&[3, 3], &[2, 2], &[1, 1, 1, 1], &[1, 1], true, false);
    check_each(
        &x,
        [
            ("max_pool 2x2", max_pool(2), 131),
            (
                "max_pool 3x3 overlapping padded ceil",
                Op::MaxPool(overlapping),
                132,
            ),
            ("global_max_pool", Op::GlobalPool(GlobalPoolKind::Max), 137),
        ],
    );
    for include in [false, true] {
        let p = pool_attrs(&[3, 2], &[2, 1], &[1, 0, 1, 1], &[1, 1], true, include);
        let x = rand_tensor(&[2, 2, 5, 4], 133);
        check_op(
            &format!("average_pool include_pad={include}"),
            &Op::AveragePool(p),
            &[x],
            134,
        );
    }
    let x = rand_tensor(&[2, 3, 4, 5], 135);
    check_op(
        "global_average_pool",
        &Op::GlobalPool(GlobalPoolKind::Average),
        &[x],
        136,
    );
}

#[test]
fn layout_ops() {
    let x = rand_tensor(&[2, 3, 4], 140);
    let reshape = Reshape {
        shape: vec![4, -1],
        allow_zero: false,
    };
    check_each(
        &x,
        [
            ("flatten", Op::Flatten { axis: 1 }, 141),
            ("reshape", Op::Reshape(reshape), 142),
            (
                "transpose",
                Op::Transpose {
                    perm: vec![2, 0, 1],
                },
                143,
            ),
            ("transpose default", Op::Transpose { perm: vec![] }, 144),
        ],
    );
    let (y, z) = (rand_tensor(&[2, 1, 4], 145), rand_tensor(&[2, 2, 4], 146));
    check_op("concat", &Op::Concat { axis: 1 }, &[x, y, z], 147);
}

#[test]
fn softmax_both_semantics() {
    let x = rand_tensor(&[2, 3, 4], 150);
    let softmax = |axis, coerce_2d| Op::Softmax(Softmax { axis, coerce_2d });
    check_each(
        &x,
        [
            ("softmax axis 1", softmax(1, false), 151),
            ("softmax axis 2", softmax(2, false), 152),
            ("softmax coerce_2d", softmax(1, true), 153),
        ],
    );
}

/// Central finite differences of a scalar function of `z`, one element at a time (±EPS):
/// the numeric side of every check in this file.
fn central_fd(z: &Tensor, f: impl Fn(&Tensor) -> f64) -> Vec<f64> {
    (0..z.len())
        .map(|i| {
            let mut l = [0f64; 2];
            for (s, sign) in [(0, 1.0f32), (1, -1.0)] {
                let mut p = z.clone();
                if let strata_ir::TensorData::F32(v) = p.data_mut() {
                    v[i] += sign * EPS;
                }
                l[s] = f(&p);
            }
            (l[0] - l[1]) / (2.0 * EPS as f64)
        })
        .collect()
}

/// Finite differences of a scalar loss of the logits.
fn loss_fd(z: &Tensor, f: impl Fn(&Tensor) -> f32) -> Vec<f64> {
    central_fd(z, |p| f(p) as f64)
}

#[test]
fn cross_entropy_value_and_gradient() {
    let z = f32t(&[2, 3], &[1.0, 2.0, 3.0, 0.5, 0.5, -1.0]);
    let labels = i64t(&[2], &[2, 0]);
    let (loss, g) = softmax_cross_entropy(&z, &labels).unwrap();
    let lse = |r: &[f64]| r.iter().map(|v| v.exp()).sum::<f64>().ln();
    let expected = ((lse(&[1.0, 2.0, 3.0]) - 3.0) + (lse(&[0.5, 0.5, -1.0]) - 0.5)) / 2.0;
    assert!(
        (loss as f64 - expected).abs() < 1e-6,
        "{loss} vs {expected}"
    );
    let z = rand_tensor(&[4, 5], 160);
    let labels = i64t(&[4], &[0, 4, 2, 2]);
    let (_, g2) = softmax_cross_entropy(&z, &labels).unwrap();
    let numeric = loss_fd(&z, |p| softmax_cross_entropy(p, &labels).unwrap().0);
    assert_grad("cross-entropy", g2.as_f32().unwrap(), &numeric);
    // Each row of the gradient sums to zero.
    for row in g.as_f32().unwrap().chunks(3) {
        assert!(row.iter().sum::<f32>().abs() < 1e-6);
    }
}

#[test]
fn kl_distillation_value_and_gradient() {
    let s = rand_tensor(&[3, 4], 170);
    let t = rand_tensor(&[3, 4], 171);
    let (same, _) = kl_distillation(&t, &t, 2.0).unwrap();
    assert!(
        same.abs() < 1e-6,
        "KL of a distribution with itself is 0, got {same}"
    );
    for temp in [1.0f32, 4.0] {
        let (loss, g) = kl_distillation(&s, &t, temp).unwrap();
        assert!(loss > 0.0);
        let numeric = loss_fd(&s, |p| kl_distillation(p, &t, temp).unwrap().0);
        assert_grad(&format!("kl T={temp}"), g.as_f32().unwrap(), &numeric);
    }
}

#[test]
fn weight_fake_quant_values_and_ste() {
    // One row, B = 4 (codes -8..=7), k = 2: q_k = q_B >> 2.
    let w = f32t(&[1, 5], &[0.7, -0.7, 0.3, 0.05, -0.26]);
    let q = WeightFakeQuant::midpoint(&w, 4, 2).unwrap();
    let s = 0.7 / 7.0;
    assert!((q.scale[0] - s).abs() < 1e-7);
    assert!((q.alpha[0] - 4.0 * s).abs() < 1e-7 && (q.beta[0] - 1.5 * s).abs() < 1e-7);
    // q_B = [7, -7, 3, 1 (0.5 rounds away), -3]; q_2 = [1, -2, 0, 0, -1].
    let y = q.forward(&w).unwrap();
    let expected: Vec<f32> = [1.0f32, -2.0, 0.0, 0.0, -1.0]
        .iter()
        .map(|&k| q.alpha[0] * k + q.beta[0])
        .collect();
    assert_close(&y, &[1, 5], &expected, 1e-6);
    // STE at the midpoint table: gradient 1 inside the clamp range; alpha gets Σ g·q_k.
    let g = f32t(&[1, 5], &[1.0, 2.0, 3.0, 4.0, 5.0]);
    let gr = q.backward(&w, &g).unwrap();
    assert_close(&gr.w, &[1, 5], &[1.0, 2.0, 3.0, 4.0, 5.0], 1e-6);
    assert!((gr.alpha[0] - (1.0 - 4.0 - 5.0)).abs() < 1e-6);
    assert!((gr.beta[0] - 15.0).abs() < 1e-6);
    // Weights that drifted outside the clamp range (fixed scale) get no gradient; a refined
    // alpha scales the STE by alpha / (s·2^(B-k)).
    let mut q2 = q.clone();
    q2.alpha[0] *= 0.5;
    let w2 = f32t(&[1, 3], &[0.95, -0.85, 0.2]);
    let gr2 = q2.backward(&w2, &f32t(&[1, 3], &[1.0, 1.0, 1.0])).unwrap();
    assert_close(&gr2.w, &[1, 3], &[0.0, 0.0, 0.5], 1e-6);
}

#[test]
fn weight_fake_quant_full_planes_matches_codes() {
    let w = rand_tensor(&[3, 8], 180);
    let q = WeightFakeQuant::midpoint(&w, 8, 8).unwrap();
    let y = q.forward(&w).unwrap();
    let (codes, scales) = strata_ir::quant::quantize_rows(w.as_f32().unwrap(), 3, 8, 8).unwrap();
    let expected: Vec<f32> = codes
        .iter()
        .enumerate()
        .map(|(i, &c)| scales[i / 8] * c as f32)
        .collect();
    assert_close(&y, &[3, 8], &expected, 1e-6);
}

#[test]
fn activation_fake_quant_values_and_lsq() {
    let q = ActFakeQuant {
        bits: 4,
        scale: 0.5,
        zero: 2.0,
    }; // codes -8..=7 → x in [-5, 2.5]
    let x = f32t(&[6], &[0.3, -0.74, 1.25, 3.0, -6.0, 0.75]);
    let y = q.forward(&x).unwrap();
    // round_half_even(x/s): 0.6→1, -1.48→-1, 2.5→2, 6→6 (+2 = 8 > 7, clamp → 2.5), -12 (clamp → -5), 1.5→2.
    assert_close(&y, &[6], &[0.5, -0.5, 1.0, 2.5, -5.0, 1.0], 1e-6);
    let g = f32t(&[6], &[1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
    let gr = q.backward(&x, &g).unwrap();
    assert_close(&gr.x, &[6], &[1.0, 1.0, 1.0, 0.0, 0.0, 1.0], 0.0);
    // Inside: round(u) - u = 0.4, 0.48, -0.5, 0.5; high clamp: 7 - 2 = 5; low: -8 - 2 = -10.
    let ds = 0.4 + 0.48 - 0.5 + 0.5 + 5.0 - 10.0;
    assert!((gr.scale - ds).abs() < 1e-5, "{} vs {ds}", gr.scale);
    assert!((gr.zero - (-0.5 - 0.5)).abs() < 1e-6);
    assert!((lsq_grad_scale(100, 8) - 1.0 / (100.0f32 * 127.0).sqrt()).abs() < 1e-9);
}

#[test]
fn fake_quant_rejects_bad_parameters() {
    let w = rand_tensor(&[2, 3], 190);
    for (bits, k) in [(1, 1), (9, 2), (4, 0), (4, 5)] {
        assert!(
            matches!(
                WeightFakeQuant::midpoint(&w, bits, k),
                Err(RuntimeError::Attribute { .. })
            ),
            "{bits} {k}"
        );
    }
    let mut q = WeightFakeQuant::midpoint(&w, 8, 4).unwrap();
    q.alpha.pop();
    assert!(matches!(
        q.forward(&w),
        Err(RuntimeError::Attribute { attr: "alpha", .. })
    ));
    let mut q = WeightFakeQuant::midpoint(&w, 8, 4).unwrap();
    q.scale[1] = -1.0;
    assert!(matches!(
        q.forward(&w),
        Err(RuntimeError::Attribute { attr: "scale", .. })
    ));
    let q = WeightFakeQuant::midpoint(&w, 8, 4).unwrap();
    assert!(matches!(
        q.forward(&rand_tensor(&[6], 1)),
        Err(RuntimeError::Shape { .. })
    ));
    assert!(matches!(
        q.backward(&w, &rand_tensor(&[3, 2], 1)),
        Err(RuntimeError::Shape { .. })
    ));
    let x = rand_tensor(&[4], 191);
    for bad in [
        ActFakeQuant {
            bits: 8,
            scale: 0.0,
            zero: 0.0,
        },
        ActFakeQuant {
            bits: 8,
            scale: f32::NAN,
            zero: 0.0,
        },
        ActFakeQuant {
            bits: 8,
            scale: 0.1,
            zero: 0.5,
        },
        ActFakeQuant {
            bits: 1,
            scale: 0.1,
            zero: 0.0,
        },
    ] {
        assert!(
            matches!(bad.forward(&x), Err(RuntimeError::Attribute { .. })),
            "{bad:?}"
        );
    }
    let i = i64t(&[4], &[1, 2, 3, 4]);
    let ok = ActFakeQuant {
        bits: 8,
        scale: 0.1,
        zero: 0.0,
    };
    assert!(matches!(
        ok.forward(&i),
        Err(RuntimeError::UnsupportedDType { .. })
    ));
}

#[test]
fn loss_errors() {
    let z = rand_tensor(&[2, 3], 200);
    let e = softmax_cross_entropy(&z, &i64t(&[2], &[0, 3])).unwrap_err();
    assert!(
        matches!(
            e,
            RuntimeError::IndexOutOfRange {
                index: 3,
                position: 1,
                ..
            }
        ),
        "{e}"
    );
    let e = softmax_cross_entropy(&z, &i64t(&[2], &[-1, 0])).unwrap_err();
    assert!(
        matches!(
            e,
            RuntimeError::IndexOutOfRange {
                index: -1,
                position: 0,
                ..
            }
        ),
        "{e}"
    );
    assert!(matches!(
        softmax_cross_entropy(&z, &i64t(&[3], &[0, 0, 0])),
        Err(RuntimeError::Shape { .. })
    ));
    assert!(matches!(
        softmax_cross_entropy(&z, &z),
        Err(RuntimeError::UnsupportedDType { .. })
    ));
    assert!(matches!(
        softmax_cross_entropy(&rand_tensor(&[6], 1), &i64t(&[6], &[0; 6])),
        Err(RuntimeError::Shape { .. })
    ));
    for t in [0.0, -1.0, f32::INFINITY, f32::NAN] {
        assert!(matches!(
            kl_distillation(&z, &z, t),
            Err(RuntimeError::Attribute {
                attr: "temperature",
                ..
            })
        ));
    }
    assert!(matches!(
        kl_distillation(&z, &rand_tensor(&[2, 4], 1), 1.0),
        Err(RuntimeError::Shape { .. })
    ));
}

#[test]
fn backward_op_errors() {
    let x = rand_tensor(&[2, 3], 210);
    let relu = Op::Unary(UnaryOp::Relu);
    let y = eval1(&relu, &[&x]);
    let e = backward_op(&relu, &[&x], &y, &rand_tensor(&[3, 2], 1)).unwrap_err();
    assert!(matches!(e, RuntimeError::Shape { .. }), "{e}");
    let e = backward_op(&relu, &[&x, &x], &y, &y).unwrap_err();
    assert!(matches!(e, RuntimeError::Arity { got: 2, .. }), "{e}");
    let bn = Op::BatchNorm(BatchNorm { epsilon: 1e-5 });
    let p = rand_tensor(&[3], 2);
    let e = backward_op(&bn, &[&x, &p, &p, &p, &p], &x, &x).unwrap_err();
    assert!(
        matches!(e, RuntimeError::NoGradient { op: "batch_norm" }),
        "{e}"
    );
    let xd = f64t(&[2], &[1.0, 2.0]);
    let e = backward_op(&relu, &[&xd], &xd, &xd).unwrap_err();
    assert!(matches!(e, RuntimeError::UnsupportedDType { .. }), "{e}");
    // A gradient that does not match the op's geometry is refused, not mis-indexed.
    let c = conv_attrs(&[2], &[1], &[0, 0], &[1], 1, false);
    let conv = Op::Conv(c);
    let (xc, wc) = (rand_tensor(&[1, 1, 4], 3), rand_tensor(&[1, 1, 2], 4));
    let bogus = rand_tensor(&[1, 1, 4], 5);
    assert!(matches!(
        backward_op(&conv, &[&xc, &wc], &bogus, &bogus),
        Err(RuntimeError::Shape { .. })
    ));
    let gemm = gemm(1.0, 1.0, false, false, false);
    let (a, b) = (rand_tensor(&[2, 3], 6), rand_tensor(&[3, 2], 7));
    let bad = rand_tensor(&[2, 3], 8);
    assert!(matches!(
        backward_op(&gemm, &[&a, &b], &bad, &bad),
        Err(RuntimeError::Shape { .. })
    ));
}

fn ty(dims: &[Dim]) -> TensorType {
    TensorType::new(DType::F32, Shape(dims.to_vec()))
}

/// x [N,1,6,6] → conv 3x3 (2 ch, bias) → relu → max_pool 2x2 → flatten → gemm (→ 3).
fn tiny_net() -> (Graph, Vec<ValueRef>) {
    let mut g = Graph::new("tiny");
    let x = g.add_input(
        "x",
        ty(&[Dim::Batch, Dim::Known(1), Dim::Known(6), Dim::Known(6)]),
    );
    let w = g.add_constant("w", rand_tensor(&[2, 1, 3, 3], 300));
    let b = g.add_constant("b", rand_tensor(&[2], 301));
    let fw = g.add_constant("fw", rand_tensor(&[3, 8], 302));
    let fb = g.add_constant("fb", rand_tensor(&[3], 303));
    let c = op(&mut g, "conv", conv(3, 0, 1), &[x, w, b]);
    let r = op(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[c]);
    let p = op(&mut g, "pool", max_pool(2), &[r]);
    let f = op(&mut g, "flat", Op::Flatten { axis: 1 }, &[p]);
    let fc = gemm(1.0, 1.0, false, true, true);
    let y = op(&mut g, "fc", fc, &[f, fw, fb]);
    g.set_outputs(vec![y]);
    (g, vec![x, w, b, fw, fb])
}

#[test]
fn tape_gradients_of_a_tiny_cnn_match_finite_differences() {
    let (graph, values) = tiny_net();
    let x = rand_tensor(&[2, 1, 6, 6], 310);
    let labels = i64t(&[2], &[1, 2]);
    let (outs, tape) = forward_with_tape(&graph, std::slice::from_ref(&x)).unwrap();
    assert_eq!(outs, run(&graph, std::slice::from_ref(&x)).unwrap());
    let (_, seed) = softmax_cross_entropy(&outs[0], &labels).unwrap();
    let grads = tape.backward(&graph, &[seed]).unwrap();
    assert_eq!(grads.len(), 5, "one gradient per input and constant");
    // Finite differences of the whole network's loss, perturbing one value at a time.
    let loss_with = |which: ValueRef, t: &Tensor| -> f64 {
        let mut g2 = graph.clone();
        let input = if which == values[0] {
            t.clone()
        } else {
            let id = g2.add_constant("perturbed", t.clone());
            g2.replace_all_uses(which, id).unwrap();
            x.clone()
        };
        let out = run(&g2, &[input]).unwrap();
        softmax_cross_entropy(&out[0], &labels).unwrap().0 as f64
    };
    for &v in &values {
        let base = if v == values[0] {
            x.clone()
        } else {
            graph.constant_value(v).unwrap().as_ref().clone()
        };
        let numeric = central_fd(&base, |p| loss_with(v, p));
        let g = &grads[&v];
        assert_eq!(g.shape(), base.shape());
        assert_grad(
            &format!("tiny net value {v:?}"),
            g.as_f32().unwrap(),
            &numeric,
        );
    }
}

#[test]
fn tape_accumulates_fan_out_and_checks_seeds() {
    // y = x·x + x (x used three times): dy/dx = 2x + 1.
    let mut g = Graph::new("fanout");
    let x = g.add_input("x", ty(&[Dim::Known(3)]));
    let m = ValueRef::first(
        g.add_op_inferred("m", Op::Binary(BinaryOp::Mul), &[x, x], vec!["m".into()])
            .unwrap(),
    );
    let y = ValueRef::first(
        g.add_op_inferred("y", Op::Binary(BinaryOp::Add), &[m, x], vec!["y".into()])
            .unwrap(),
    );
    let unused = g.add_constant("unused", f32t(&[2], &[1.0, 2.0]));
    g.set_outputs(vec![y]);
    let xt = f32t(&[3], &[1.0, -2.0, 0.5]);
    let (_, tape) = forward_with_tape(&g, std::slice::from_ref(&xt)).unwrap();
    let grads = tape.backward(&g, &[f32t(&[3], &[1.0, 1.0, 1.0])]).unwrap();
    assert_close(&grads[&x], &[3], &[3.0, -3.0, 2.0], 0.0);
    assert_close(&grads[&unused], &[2], &[0.0, 0.0], 0.0);
    assert!(matches!(
        tape.backward(&g, &[]),
        Err(RuntimeError::Arity { .. })
    ));
    assert!(matches!(
        tape.backward(&g, &[f32t(&[2], &[1.0, 1.0])]),
        Err(RuntimeError::Shape { .. })
    ));
    assert!(matches!(
        forward_with_tape(&g, &[]),
        Err(RuntimeError::InputCount { .. })
    ));
}

#[test]
fn tape_reports_ops_without_gradient_by_node() {
    let mut g = Graph::new("bn");
    let x = g.add_input("x", ty(&[Dim::Known(1), Dim::Known(2), Dim::Known(2)]));
    let p = g.add_constant("p", f32t(&[2], &[1.0, 1.0]));
    let bn = g
        .add_op_inferred(
            "bn",
            Op::BatchNorm(BatchNorm { epsilon: 1e-5 }),
            &[x, p, p, p, p],
            vec!["bn".into()],
        )
        .unwrap();
    g.set_outputs(vec![ValueRef::first(bn)]);
    let xt = rand_tensor(&[1, 2, 2], 1);
    let (out, tape) = forward_with_tape(&g, &[xt]).unwrap();
    let e = tape.backward(&g, &out).unwrap_err();
    assert!(
        matches!(e, RuntimeError::Node { ref node, .. } if node == "bn"),
        "{e}"
    );
    assert!(matches!(
        e.root(),
        RuntimeError::NoGradient { op: "batch_norm" }
    ));
}
