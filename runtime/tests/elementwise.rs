#![allow(clippy::excessive_precision)]
use strata_ir::ops::{BinaryOp, Clip, UnaryOp, VariadicOp};
use strata_ir::{Op, TensorData};
use strata_runtime::RuntimeError;
use strata_test_support::*;

fn bin(op: BinaryOp) -> Op {
    Op::Binary(op)
}

#[test]
fn max_min_broadcast_every_input_and_propagate_nan() {
    let (max, min) = (Op::Variadic(VariadicOp::Max), Op::Variadic(VariadicOp::Min));
    let a = f32t(&[2, 1], &[1., 5.]);
    let b = f32t(&[3], &[0., 3., f32::NAN]);
    let c = f32t(&[], &[2.]);
    let y = eval1(&max, &[&a, &b, &c]);
    assert_close(&y, &[2, 3], &[2., 3., f32::NAN, 5., 5., f32::NAN], 0.0);
    let y = eval1(&min, &[&a, &b, &c]);
    assert_close(&y, &[2, 3], &[0., 1., f32::NAN, 0., 2., f32::NAN], 0.0);
    // One input is the identity; integers compare exactly.
    assert_close(&eval1(&max, &[&a]), &[2, 1], &[1., 5.], 0.0);
    let i = tensor(&[3], TensorData::U8(vec![200, 3, 7]));
    let j = tensor(&[1], TensorData::U8(vec![5]));
    let y = eval1(&max, &[&i, &j]);
    assert_eq!(y.data(), &TensorData::U8(vec![200, 5, 7]));
    let y = eval1(&min, &[&i, &j]);
    assert_eq!(y.data(), &TensorData::U8(vec![5, 3, 5]));
}

#[test]
fn max_min_reject_bad_inputs() {
    let max = Op::Variadic(VariadicOp::Max);
    let a = f32t(&[2], &[1., 2.]);
    assert!(matches!(eval_err(&max, &[]), RuntimeError::Arity { .. }));
    assert!(matches!(
        eval_err(&max, &[&a, &f32t(&[3], &[1., 2., 3.])]),
        RuntimeError::Shape { .. }
    ));
    assert!(matches!(
        eval_err(&max, &[&a, &i64t(&[2], &[1, 2])]),
        RuntimeError::DTypeMismatch { input: 1, .. }
    ));
    let flags = tensor(&[1], TensorData::Bool(vec![true]));
    assert!(matches!(
        eval_err(&max, &[&flags]),
        RuntimeError::UnsupportedDType { .. }
    ));
}

#[test]
fn add_broadcasts_row_vector() {
    let a = f32t(&[2, 3], &[1., 2., 3., 4., 5., 6.]);
    let b = f32t(&[3], &[10., 20., 30.]);
    let y = eval1(&bin(BinaryOp::Add), &[&a, &b]);
    assert_close(&y, &[2, 3], &[11., 22., 33., 14., 25., 36.], 0.0);
}

#[test]
fn sub_broadcasts_both_sides() {
    let a = f32t(&[2, 1], &[1., 2.]);
    let b = f32t(&[1, 3], &[10., 20., 30.]);
    let y = eval1(&bin(BinaryOp::Sub), &[&a, &b]);
    assert_close(&y, &[2, 3], &[-9., -19., -29., -8., -18., -28.], 0.0);
}

#[test]
fn mul_by_scalar_on_either_side() {
    let a = f32t(&[3], &[1., 2., 3.]);
    let s = f32t(&[], &[2.0]);
    assert_close(
        &eval1(&bin(BinaryOp::Mul), &[&a, &s]),
        &[3],
        &[2., 4., 6.],
        0.0,
    );
    assert_close(
        &eval1(&bin(BinaryOp::Mul), &[&s, &a]),
        &[3],
        &[2., 4., 6.],
        0.0,
    );
}

#[test]
fn float_div_follows_ieee() {
    let a = f32t(&[3], &[1., -1., 0.]);
    let b = f32t(&[3], &[0., 0., 0.]);
    let y = eval1(&bin(BinaryOp::Div), &[&a, &b]);
    let v = y.as_f32().unwrap();
    assert!(v[0].is_infinite() && v[0] > 0.0);
    assert!(v[1].is_infinite() && v[1] < 0.0);
    assert!(v[2].is_nan());
}

#[test]
fn integer_div_truncates_toward_zero() {
    let a = tensor(&[4], TensorData::I32(vec![7, -7, 7, -7]));
    let b = tensor(&[4], TensorData::I32(vec![2, 2, -2, -2]));
    let y = eval1(&bin(BinaryOp::Div), &[&a, &b]);
    assert_eq!(y.data(), &TensorData::I32(vec![3, -3, -3, 3]));
    let a = i64t(&[2], &[-9, 9]);
    let b = i64t(&[1], &[4]);
    assert_eq!(
        eval1(&bin(BinaryOp::Div), &[&a, &b]).data(),
        &TensorData::I64(vec![-2, 2])
    );
}

#[test]
fn integer_arithmetic_wraps_like_numpy() {
    let a = tensor(&[2], TensorData::I8(vec![127, -128]));
    let b = tensor(&[2], TensorData::I8(vec![1, 1]));
    assert_eq!(
        eval1(&bin(BinaryOp::Add), &[&a, &b]).data(),
        &TensorData::I8(vec![-128, -127])
    );
    let a = tensor(&[1], TensorData::U8(vec![3]));
    let b = tensor(&[1], TensorData::U8(vec![5]));
    assert_eq!(
        eval1(&bin(BinaryOp::Sub), &[&a, &b]).data(),
        &TensorData::U8(vec![254])
    );
    let a = tensor(&[1], TensorData::I8(vec![-128]));
    let b = tensor(&[1], TensorData::I8(vec![-1]));
    assert_eq!(
        eval1(&bin(BinaryOp::Div), &[&a, &b]).data(),
        &TensorData::I8(vec![-128])
    );
    let a = f64t(&[2], &[1.5, 2.5]);
    let b = f64t(&[2], &[2.0, 4.0]);
    assert_eq!(
        eval1(&bin(BinaryOp::Mul), &[&a, &b]).data(),
        &TensorData::F64(vec![3.0, 10.0])
    );
}

#[test]
fn large_general_broadcast_matches_naive() {
    let a = rand_tensor(&[64, 1, 600], 1);
    let b = rand_tensor(&[3, 600], 2);
    let y = eval1(&bin(BinaryOp::Mul), &[&a, &b]);
    let (av, bv) = (a.as_f32().unwrap(), b.as_f32().unwrap());
    let mut expected = Vec::new();
    for i in 0..64 {
        for j in 0..3 {
            for k in 0..600 {
                expected.push(av[i * 600 + k] * bv[j * 600 + k]);
            }
        }
    }
    assert_close(&y, &[64, 3, 600], &expected, 0.0);
}

#[test]
fn binary_errors() {
    let a = f32t(&[2], &[1., 2.]);
    let b = i64t(&[2], &[1, 2]);
    assert!(matches!(
        eval_err(&bin(BinaryOp::Add), &[&a, &b]),
        RuntimeError::DTypeMismatch { op: "add", .. }
    ));
    let c = f32t(&[3], &[1., 2., 3.]);
    let e = eval_err(&bin(BinaryOp::Add), &[&a, &c]);
    assert!(matches!(e, RuntimeError::Shape { op: "add", .. }), "{e}");
    assert!(e.to_string().contains("[2]") && e.to_string().contains("[3]"));
    let t = tensor(&[1], TensorData::Bool(vec![true]));
    assert!(matches!(
        eval_err(&bin(BinaryOp::Mul), &[&t, &t]),
        RuntimeError::UnsupportedDType {
            op: "mul",
            dtype: strata_ir::DType::Bool,
            ..
        }
    ));
    let x = i64t(&[3], &[1, 2, 3]);
    let z = i64t(&[3], &[1, 0, 1]);
    assert_eq!(
        eval_err(&bin(BinaryOp::Div), &[&x, &z]),
        RuntimeError::DivisionByZero {
            op: "div",
            position: 1
        }
    );
    // Arity is checked before anything else.
    assert!(matches!(
        eval_err(&bin(BinaryOp::Add), &[&a]),
        RuntimeError::Arity { got: 1, .. }
    ));
}

#[test]
fn activations_match_hand_values() {
    let x = f32t(&[5], &[-2., -0.5, 0., 0.5, 2.]);
    let x6 = f32t(&[4], &[-4., -1., 1., 4.]);
    let un = |u| Op::Unary(u);
    let hard_sigmoid = un(UnaryOp::HardSigmoid {
        alpha: 0.2,
        beta: 0.5,
    });
    expect_all(
        0.0,
        &[(un(UnaryOp::Relu), &x, &[5], &[0., 0., 0., 0.5, 2.])],
    );
    let leaky = un(UnaryOp::LeakyRelu { alpha: 0.1 });
    expect_all(1e-7, &[(leaky, &x, &[5], &[-0.2, -0.05, 0., 0.5, 2.])]);
    #[rustfmt::skip]
    let cases = [
        (un(UnaryOp::Sigmoid), &x, &[5][..], &[0.11920292, 0.37754067, 0.5, 0.62245933, 0.88079708][..]),
        (hard_sigmoid, &x, &[5], &[0.1, 0.4, 0.5, 0.6, 0.9]),
        (un(UnaryOp::HardSwish), &x6, &[4], &[0., -1.0 / 3.0, 2.0 / 3.0, 4.]),
        (un(UnaryOp::Tanh), &x, &[5], &[-0.96402758, -0.46211716, 0., 0.46211716, 0.96402758]),
        (un(UnaryOp::Erf), &x, &[5], &[-0.99532227, -0.52049988, 0., 0.52049988, 0.99532227]),
    ];
    expect_all(1e-6, &cases);
}

#[test]
fn sigmoid_is_stable_for_extreme_inputs() {
    let x = f32t(&[2], &[-1000., 1000.]);
    let y = eval1(&Op::Unary(UnaryOp::Sigmoid), &[&x]);
    assert_close(&y, &[2], &[0., 1.], 0.0);
    let x = f64t(&[1], &[-800.0]);
    let y = eval1(&Op::Unary(UnaryOp::Sigmoid), &[&x]);
    assert_eq!(y.data(), &TensorData::F64(vec![0.0]));
}

#[test]
fn relu_keeps_nan_and_supports_integers() {
    let x = f32t(&[2], &[f32::NAN, -1.0]);
    let y = eval1(&Op::Unary(UnaryOp::Relu), &[&x]);
    assert!(y.as_f32().unwrap()[0].is_nan());
    let x = tensor(&[3], TensorData::I32(vec![-5, 0, 5]));
    assert_eq!(
        eval1(&Op::Unary(UnaryOp::Relu), &[&x]).data(),
        &TensorData::I32(vec![0, 0, 5])
    );
    let e = eval_err(&Op::Unary(UnaryOp::Tanh), &[&x]);
    assert!(matches!(
        e,
        RuntimeError::UnsupportedDType {
            op: "tanh",
            dtype: strata_ir::DType::I32,
            ..
        }
    ));
    assert!(e.to_string().contains("tanh") && e.to_string().contains("i32"));
}

#[test]
fn prelu_broadcasts_slope_per_channel() {
    let x = f32t(&[2, 3], &[-1., 2., -3., 4., -5., 6.]);
    let slope = f32t(&[3], &[0.1, 0.2, 0.3]);
    let y = eval1(&Op::PRelu, &[&x, &slope]);
    assert_close(&y, &[2, 3], &[-0.1, 2., -0.9, 4., -1.0, 6.], 1e-6);
    // Slope must broadcast *to* x, not enlarge it.
    let big = f32t(&[2, 2, 3], &[0.0; 12]);
    assert!(matches!(
        eval_err(&Op::PRelu, &[&x, &big]),
        RuntimeError::Shape { op: "prelu", .. }
    ));
    let wrong = i64t(&[3], &[1, 2, 3]);
    assert!(matches!(
        eval_err(&Op::PRelu, &[&x, &wrong]),
        RuntimeError::DTypeMismatch { .. }
    ));
}

#[test]
fn clip_bounds_in_every_combination() {
    let x = f32t(&[5], &[-3., -1., 0., 1., 3.]);
    let lo = f32t(&[], &[-1.5]);
    let hi = f32t(&[1], &[2.0]);
    let clip = |has_min, has_max| Op::Clip(Clip { has_min, has_max });
    let both = clip(true, true);
    let y = eval1(&both, &[&x, &lo, &hi]);
    assert_close(&y, &[5], &[-1.5, -1., 0., 1., 2.], 0.0);
    let y = eval1(&clip(false, true), &[&x, &hi]);
    assert_close(&y, &[5], &[-3., -1., 0., 1., 2.], 0.0);
    let y = eval1(&clip(false, false), &[&x]);
    assert_close(&y, &[5], &[-3., -1., 0., 1., 3.], 0.0);
    // min > max gives max everywhere, like numpy.clip.
    let lo2 = f32t(&[], &[5.0]);
    assert_close(&eval1(&both, &[&x, &lo2, &hi]), &[5], &[2.; 5], 0.0);
    let xi = tensor(&[3], TensorData::U8(vec![0, 100, 250]));
    let loi = tensor(&[], TensorData::U8(vec![10]));
    let hii = tensor(&[], TensorData::U8(vec![200]));
    assert_eq!(
        eval1(&both, &[&xi, &loi, &hii]).data(),
        &TensorData::U8(vec![10, 100, 200])
    );
    let nan = f32t(&[1], &[f32::NAN]);
    assert!(eval1(&both, &[&nan, &lo, &hi]).as_f32().unwrap()[0].is_nan());
}

#[test]
fn clip_errors() {
    let x = f32t(&[2], &[1., 2.]);
    let both = Op::Clip(Clip {
        has_min: true,
        has_max: true,
    });
    let vec_bound = f32t(&[2], &[0., 1.]);
    let s = f32t(&[], &[1.0]);
    assert!(matches!(
        eval_err(&both, &[&x, &vec_bound, &s]),
        RuntimeError::Shape { op: "clip", .. }
    ));
    let wrong = i64t(&[], &[1]);
    assert!(matches!(
        eval_err(&both, &[&x, &s, &wrong]),
        RuntimeError::DTypeMismatch {
            op: "clip",
            input: 2,
            ..
        }
    ));
    assert!(matches!(
        eval_err(&both, &[&x, &s]),
        RuntimeError::Arity { .. }
    ));
}

/// Pow's exact exponents give their IEEE sequences (so every backend agrees bit for bit),
/// with `powf`'s special cases; other exponents are the C library's `powf`.
#[test]
fn pow_uses_exact_sequences_for_common_exponents() {
    use strata_runtime::kernels::elementwise::pow_f32;
    let xs = [
        0.0f32,
        -0.0,
        1.5,
        -2.25,
        3.1e-3,
        7.77e17,
        -1.0e30,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        f32::MIN_POSITIVE / 3.0,
    ];
    let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
    for x in xs {
        assert!(same(pow_f32(x, 1.0), x), "{x}^1");
        assert!(same(pow_f32(x, 2.0), x * x), "{x}^2");
        assert!(same(pow_f32(x, 3.0), x * x * x), "{x}^3");
        assert!(same(pow_f32(x, -1.0), 1.0 / x), "{x}^-1");
        assert!(same(pow_f32(x, 1.7), x.powf(1.7)), "{x}^1.7");
        // √ where powf and sqrt agree; powf's value at ±0 and −∞.
        let half = match x {
            _ if x == 0.0 => 0.0,
            f32::NEG_INFINITY => f32::INFINITY,
            _ => x.sqrt(),
        };
        assert!(same(pow_f32(x, 0.5), half), "{x}^0.5");
    }
    // The special cases agree with powf's (C99 Annex F) where the sequences could differ.
    for (x, e) in [
        (-0.0f32, 0.5f32),
        (f32::NEG_INFINITY, 0.5),
        (-0.0, 3.0),
        (-0.0, -1.0),
    ] {
        assert!(same(pow_f32(x, e), x.powf(e)), "{x}^{e}");
    }
    // The kernel applies it per element, the exponent broadcast.
    let x = f32t(&[3], &[1.1, -0.3, 4.0]);
    let e = f32t(&[], &[2.0]);
    let y = eval1(&bin(BinaryOp::Pow), &[&x, &e]);
    let want: Vec<u32> = [1.1f32 * 1.1, -0.3f32 * -0.3, 16.0]
        .iter()
        .map(|v| v.to_bits())
        .collect();
    let got: Vec<u32> = y.as_f32().unwrap().iter().map(|v| v.to_bits()).collect();
    assert_eq!(got, want);
}
