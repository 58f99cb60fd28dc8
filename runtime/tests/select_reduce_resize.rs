//! Kernels of the ops added for real-model imports: math functions, Pow, comparisons and
//! Where, ReduceMax/ReduceSum/ArgMax, Expand, Pad's copying modes, Resize and QDQ. Expected
//! values are worked out by hand from the ONNX definitions.

use strata_ir::ops::*;
use strata_ir::{Op, Tensor, TensorData};
use strata_runtime::RuntimeError;
use strata_test_support::*;

fn bools(t: &Tensor) -> Vec<bool> {
    match t.data() {
        TensorData::Bool(v) => v.clone(),
        other => panic!("not bool: {other:?}"),
    }
}

#[test]
fn math_functions() {
    let x = f32t(&[4], &[-1.5, 0.25, 1.0, 4.0]);
    let un = |u| eval1(&Op::Unary(u), &[&x]);
    assert_close(&un(UnaryOp::Neg), &[4], &[1.5, -0.25, -1.0, -4.0], 0.0);
    assert_close(&un(UnaryOp::Abs), &[4], &[1.5, 0.25, 1.0, 4.0], 0.0);
    assert_close(&un(UnaryOp::Floor), &[4], &[-2.0, 0.0, 1.0, 4.0], 0.0);
    assert_close(&un(UnaryOp::Ceil), &[4], &[-1.0, 1.0, 1.0, 4.0], 0.0);
    assert_close(
        &un(UnaryOp::Reciprocal),
        &[4],
        &[-1.0 / 1.5, 4.0, 1.0, 0.25],
        1e-7,
    );
    let y = un(UnaryOp::Sqrt);
    assert!(y.as_f32().unwrap()[0].is_nan());
    assert_eq!(&y.as_f32().unwrap()[1..], &[0.5, 1.0, 2.0]);
    assert_close(
        &un(UnaryOp::Exp),
        &[4],
        &[0.22313016, 1.2840254, 2.7182817, 54.59815],
        1e-5,
    );
    let y = un(UnaryOp::Log);
    assert!(y.as_f32().unwrap()[0].is_nan());
    let y = eval1(&Op::Unary(UnaryOp::Log), &[&f32t(&[2], &[1.0, 0.0])]);
    assert_eq!(y.as_f32(), Some(&[0.0, f32::NEG_INFINITY][..]));
    // Integers: Neg and Abs wrap like numpy; Exp refuses them.
    let i = Tensor::new(vec![3], TensorData::I8(vec![-128, -3, 5])).unwrap();
    let y = eval1(&Op::Unary(UnaryOp::Neg), &[&i]);
    assert_eq!(y.data(), &TensorData::I8(vec![-128, 3, -5]));
    let y = eval1(&Op::Unary(UnaryOp::Abs), &[&i]);
    assert_eq!(y.data(), &TensorData::I8(vec![-128, 3, 5]));
    assert!(matches!(
        eval_err(&Op::Unary(UnaryOp::Exp), &[&i]),
        RuntimeError::UnsupportedDType { .. }
    ));
}

#[test]
fn pow_broadcasts_and_integers() {
    let pow = Op::Binary(BinaryOp::Pow);
    let a = f32t(&[2, 2], &[2.0, 4.0, 9.0, -2.0]);
    let b = f32t(&[2], &[0.5, 2.0]);
    assert_close(
        &eval1(&pow, &[&a, &b]),
        &[2, 2],
        &[std::f32::consts::SQRT_2, 16.0, 3.0, 4.0],
        1e-6,
    );
    let a = i64t(&[5], &[2, 3, -1, 1, 2]);
    let b = i64t(&[5], &[10, 0, -3, -5, -1]);
    assert_eq!(
        eval1(&pow, &[&a, &b]).as_i64(),
        Some(&[1024i64, 1, -1, 1, 0][..])
    );
}

#[test]
fn comparisons_and_where() {
    let a = f32t(&[2, 2], &[1.0, 2.0, 3.0, f32::NAN]);
    let b = f32t(&[2], &[2.0, 2.0]);
    let cmp = |c| bools(&eval1(&Op::Compare(c), &[&a, &b]));
    assert_eq!(cmp(CompareOp::Equal), [false, true, false, false]);
    assert_eq!(cmp(CompareOp::Greater), [false, false, true, false]);
    assert_eq!(cmp(CompareOp::Less), [true, false, false, false]);
    assert_eq!(cmp(CompareOp::GreaterOrEqual), [false, true, true, false]);
    assert_eq!(cmp(CompareOp::LessOrEqual), [true, true, false, false]);
    let c = Tensor::new(vec![2, 1], TensorData::Bool(vec![true, false])).unwrap();
    let x = f32t(&[3], &[1.0, 2.0, 3.0]);
    let y = f32t(&[1], &[-1.0]);
    assert_close(
        &eval1(&Op::Where, &[&c, &x, &y]),
        &[2, 3],
        &[1.0, 2.0, 3.0, -1.0, -1.0, -1.0],
        0.0,
    );
    assert!(matches!(
        eval_err(&Op::Where, &[&x, &x, &y]),
        RuntimeError::UnsupportedDType { .. }
    ));
    let bad = f32t(&[2], &[0.0, 0.0]);
    assert!(matches!(
        eval_err(&Op::Compare(CompareOp::Less), &[&a, &f32t(&[3], &[0.0; 3])]),
        RuntimeError::Shape { .. }
    ));
    assert!(matches!(
        eval_err(&Op::Compare(CompareOp::Less), &[&bad, &i64t(&[2], &[0, 0])]),
        RuntimeError::DTypeMismatch { .. }
    ));
}

#[test]
fn reductions_and_arg_max() {
    let x = f32t(&[2, 3], &[1.0, 5.0, 2.0, 7.0, -1.0, 7.0]);
    let r = |axes: Vec<usize>, keep_dims| Reduce { axes, keep_dims };
    assert_close(
        &eval1(&Op::ReduceMax(r(vec![1], false)), &[&x]),
        &[2],
        &[5.0, 7.0],
        0.0,
    );
    assert_close(
        &eval1(&Op::ReduceSum(r(vec![0], true)), &[&x]),
        &[1, 3],
        &[8.0, 4.0, 9.0],
        0.0,
    );
    let empty = f32t(&[2, 0], &[]);
    assert_close(
        &eval1(&Op::ReduceSum(r(vec![1], false)), &[&empty]),
        &[2],
        &[0.0, 0.0],
        0.0,
    );
    let y = eval1(&Op::ReduceMax(r(vec![1], false)), &[&empty]);
    assert_eq!(y.as_f32(), Some(&[f32::NEG_INFINITY; 2][..]));
    let am = |axis, last| {
        Op::ArgMax(ArgMax {
            axis,
            keep_dims: false,
            select_last_index: last,
        })
    };
    assert_eq!(eval1(&am(1, false), &[&x]).as_i64(), Some(&[1i64, 0][..]));
    assert_eq!(eval1(&am(1, true), &[&x]).as_i64(), Some(&[1i64, 2][..]));
    assert_eq!(
        eval1(&am(0, false), &[&x]).as_i64(),
        Some(&[1i64, 0, 1][..])
    );
    assert!(matches!(
        eval_err(&am(1, false), &[&empty]),
        RuntimeError::Shape { .. }
    ));
    let b = Tensor::new(
        vec![2, 2],
        TensorData::Bool(vec![false, true, false, false]),
    )
    .unwrap();
    let any = eval1(&Op::ReduceMax(r(vec![1], false)), &[&b]);
    assert_eq!(bools(&any), [true, false]);
}

#[test]
fn expand_and_copying_pads() {
    let x = f32t(&[3, 1], &[1.0, 2.0, 3.0]);
    let y = eval1(
        &Op::Expand {
            shape: vec![2, 1, 2],
        },
        &[&x],
    );
    assert_close(
        &y,
        &[2, 3, 2],
        &[1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0],
        0.0,
    );
    let row = f32t(&[1, 3], &[1.0, 2.0, 3.0]);
    let pad = |mode| {
        Op::Pad(Pad {
            pads: vec![0, 2, 0, 3],
            value: 0.0,
            mode,
        })
    };
    assert_close(
        &eval1(&pad(PadMode::Edge), &[&row]),
        &[1, 8],
        &[1., 1., 1., 2., 3., 3., 3., 3.],
        0.0,
    );
    assert_close(
        &eval1(&pad(PadMode::Reflect), &[&row]),
        &[1, 8],
        &[3., 2., 1., 2., 3., 2., 1., 2.],
        0.0,
    );
    assert_close(
        &eval1(&pad(PadMode::Wrap), &[&row]),
        &[1, 8],
        &[2., 3., 1., 2., 3., 1., 2., 3.],
        0.0,
    );
    assert_close(
        &eval1(&pad(PadMode::Constant), &[&row]),
        &[1, 8],
        &[0., 0., 1., 2., 3., 0., 0., 0.],
        0.0,
    );
    let empty = f32t(&[1, 0], &[]);
    assert!(matches!(
        eval_err(&pad(PadMode::Edge), &[&empty]),
        RuntimeError::Attribute { .. }
    ));
}

fn resize(mode: ResizeMode, coord: CoordMode, nearest: NearestMode, scale: f32, size: usize) -> Op {
    Op::Resize(Resize {
        mode,
        coord,
        nearest,
        scales: vec![1.0, scale],
        sizes: vec![0, size],
    })
}

#[test]
fn resize_nearest_and_linear() {
    let x = f32t(&[1, 2], &[1.0, 3.0]);
    // Nearest, asymmetric, floor: each element repeated.
    let up = resize(
        ResizeMode::Nearest,
        CoordMode::Asymmetric,
        NearestMode::Floor,
        2.0,
        4,
    );
    assert_close(&eval1(&up, &[&x]), &[1, 4], &[1.0, 1.0, 3.0, 3.0], 0.0);
    // Linear, half_pixel: source coordinates −0.25, 0.25, 0.75, 1.25 (clamped at the edges).
    let lin = resize(
        ResizeMode::Linear,
        CoordMode::HalfPixel,
        NearestMode::RoundPreferFloor,
        2.0,
        4,
    );
    assert_close(&eval1(&lin, &[&x]), &[1, 4], &[1.0, 1.5, 2.5, 3.0], 1e-6);
    // Linear, align_corners to 3: 1, 2, 3.
    let ac = resize(
        ResizeMode::Linear,
        CoordMode::AlignCorners,
        NearestMode::RoundPreferFloor,
        1.5,
        3,
    );
    assert_close(&eval1(&ac, &[&x]), &[1, 3], &[1.0, 2.0, 3.0], 1e-6);
    // Nearest half_pixel downsampling by 2: coordinates 0.5 and 2.5, a tie each, which the
    // nearest mode breaks.
    let x4 = f32t(&[1, 4], &[1.0, 2.0, 3.0, 4.0]);
    let down = |n| resize(ResizeMode::Nearest, CoordMode::HalfPixel, n, 0.5, 2);
    assert_close(
        &eval1(&down(NearestMode::RoundPreferCeil), &[&x4]),
        &[1, 2],
        &[2.0, 4.0],
        0.0,
    );
    assert_close(
        &eval1(&down(NearestMode::RoundPreferFloor), &[&x4]),
        &[1, 2],
        &[1.0, 3.0],
        0.0,
    );
    let bad = resize(
        ResizeMode::Nearest,
        CoordMode::Asymmetric,
        NearestMode::Floor,
        0.0,
        2,
    );
    assert!(matches!(
        eval_err(&bad, &[&x]),
        RuntimeError::Attribute { .. }
    ));
    assert!(matches!(
        eval_err(&up, &[&f32t(&[1, 0], &[])]),
        RuntimeError::Shape { .. }
    ));
}

#[test]
fn quantize_and_dequantize() {
    let x = f32t(&[2, 3], &[0.25, 0.35, -300.0, 1.0, f32::NAN, 2.5]);
    let per_tensor = f32t(&[], &[0.1]);
    let zp = Tensor::new(vec![], TensorData::I8(vec![1])).unwrap();
    let q = eval1(
        &Op::QuantizeLinear(Qdq { axis: 0 }),
        &[&x, &per_tensor, &zp],
    );
    // 2.5 → 2 (half to even) + 1; 3.5 → 4 + 1; saturate; NaN → 0 + … → the zero point's 0.
    assert_eq!(q.data(), &TensorData::I8(vec![3, 5, -128, 11, 0, 26]));
    let s = f32t(&[2], &[1.0, 0.5]);
    let zu = Tensor::new(vec![2], TensorData::U8(vec![10, 0])).unwrap();
    let qu = Tensor::new(vec![2, 2], TensorData::U8(vec![12, 0, 3, 255])).unwrap();
    let dq = eval1(&Op::DequantizeLinear(Qdq { axis: 0 }), &[&qu, &s, &zu]);
    assert_close(&dq, &[2, 2], &[2.0, -10.0, 1.5, 127.5], 0.0);
    let wrong = f32t(&[3], &[1.0; 3]);
    let zw = Tensor::new(vec![3], TensorData::U8(vec![0; 3])).unwrap();
    assert!(matches!(
        eval_err(&Op::DequantizeLinear(Qdq { axis: 0 }), &[&qu, &wrong, &zw]),
        RuntimeError::Shape { .. }
    ));
}
