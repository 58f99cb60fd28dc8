#![allow(clippy::excessive_precision)]
use strata_ir::ops::{BatchNorm, ReduceMean, Softmax};
use strata_ir::{DType, Op, TensorData};
use strata_runtime::RuntimeError;
use strata_test_support::*;

#[test]
fn batch_norm_per_channel() {
    let x = f32t(&[1, 2, 1, 2], &[1., 2., 3., 4.]);
    let scale = f32t(&[2], &[1., 2.]);
    let bias = f32t(&[2], &[0., 1.]);
    let mean = f32t(&[2], &[1., 3.]);
    let var = f32t(&[2], &[4., 1.]);
    let op = Op::BatchNorm(BatchNorm { epsilon: 0.0 });
    let y = eval1(&op, &[&x, &scale, &bias, &mean, &var]);
    assert_close(&y, &[1, 2, 1, 2], &[0., 0.5, 1., 3.], 1e-6);
    let bad = f32t(&[3], &[1., 1., 1.]);
    let e = eval_err(&op, &[&x, &scale, &bias, &mean, &bad]);
    assert!(e.to_string().contains("`var`"), "{e}");
    let wrong = f64t(&[2], &[1., 1.]);
    assert!(matches!(
        eval_err(&op, &[&x, &scale, &wrong, &mean, &var]),
        RuntimeError::DTypeMismatch { input: 2, .. }
    ));
    let flat = f32t(&[2], &[1., 2.]);
    assert!(matches!(
        eval_err(&op, &[&flat, &scale, &bias, &mean, &var]),
        RuntimeError::Shape { .. }
    ));
}

fn softmax(axis: usize, coerce_2d: bool) -> Op {
    Op::Softmax(Softmax { axis, coerce_2d })
}

#[test]
fn softmax_per_axis_and_coerced() {
    let x = f32t(&[2, 3], &[1., 2., 3., 1., 1., 1.]);
    let y = eval1(&softmax(1, false), &[&x]);
    assert_close(
        &y,
        &[2, 3],
        &[
            0.09003057,
            0.24472847,
            0.66524096,
            1. / 3.,
            1. / 3.,
            1. / 3.,
        ],
        1e-6,
    );
    let y = eval1(&softmax(0, false), &[&x]);
    assert_close(
        &y,
        &[2, 3],
        &[0.5, 0.7310586, 0.8807971, 0.5, 0.26894142, 0.11920292],
        1e-6,
    );
    // Legacy semantics: axis 0 with coerce_2d normalises over all six elements.
    let y = eval1(&softmax(0, true), &[&x]);
    let total: f32 = y.as_f32().unwrap().iter().sum();
    assert!((total - 1.0).abs() < 1e-6);
    let x3 = f32t(&[1, 2, 2], &[1., 2., 3., 4.]);
    let y = eval1(&softmax(1, true), &[&x3]);
    let e: Vec<f32> = [1f32, 2., 3., 4.].iter().map(|v| v.exp()).collect();
    let s: f32 = e.iter().sum();
    assert_close(
        &y,
        &[1, 2, 2],
        &e.iter().map(|v| v / s).collect::<Vec<_>>(),
        1e-6,
    );
}

#[test]
fn softmax_is_stable_and_checks_axis() {
    let x = f32t(&[3], &[1000., 1000., -1000.]);
    let y = eval1(&softmax(0, false), &[&x]);
    assert_close(&y, &[3], &[0.5, 0.5, 0.], 1e-6);
    assert!(matches!(
        eval_err(&softmax(1, false), &[&x]),
        RuntimeError::Attribute { attr: "axis", .. }
    ));
    let xi = i64t(&[1], &[1]);
    assert!(matches!(
        eval_err(&softmax(0, false), &[&xi]),
        RuntimeError::UnsupportedDType { .. }
    ));
}

#[test]
fn reduce_mean_axes_and_keep_dims() {
    let x = f32t(&[2, 2, 2], &[1., 2., 3., 4., 5., 6., 7., 8.]);
    let r = |axes: &[usize], keep| {
        Op::ReduceMean(ReduceMean {
            axes: axes.to_vec(),
            keep_dims: keep,
        })
    };
    assert_close(
        &eval1(&r(&[1], true), &[&x]),
        &[2, 1, 2],
        &[2., 3., 6., 7.],
        0.0,
    );
    assert_close(&eval1(&r(&[0, 2], false), &[&x]), &[2], &[3.5, 5.5], 0.0);
    assert_close(&eval1(&r(&[0, 1, 2], false), &[&x]), &[], &[4.5], 0.0);
    let xi = tensor(&[3], TensorData::I32(vec![1, 2, 4]));
    assert_eq!(
        eval1(&r(&[0], false), &[&xi]).data(),
        &TensorData::I32(vec![2])
    );
    assert_eq!(bad_attr(&r(&[3], false), &[&x]), "axes");
    let b = tensor(&[1], TensorData::Bool(vec![true]));
    assert!(matches!(
        eval_err(&r(&[0], false), &[&b]),
        RuntimeError::UnsupportedDType {
            dtype: DType::Bool,
            ..
        }
    ));
}

#[test]
fn cast_follows_onnx_semantics() {
    let cast = |to| Op::Cast { to };
    let x = f32t(&[5], &[-1.7, -0.2, 0.0, 2.9, 300.0]);
    assert_eq!(
        eval1(&cast(DType::I32), &[&x]).data(),
        &TensorData::I32(vec![-1, 0, 0, 2, 300])
    );
    assert_eq!(
        eval1(&cast(DType::Bool), &[&x]).data(),
        &TensorData::Bool(vec![true, true, false, true, true])
    );
    assert_eq!(
        eval1(&cast(DType::U8), &[&x]).data(),
        &TensorData::U8(vec![0, 0, 0, 2, 255])
    );
    let b = tensor(&[2], TensorData::Bool(vec![true, false]));
    assert_eq!(
        eval1(&cast(DType::F64), &[&b]).data(),
        &TensorData::F64(vec![1.0, 0.0])
    );
    assert_eq!(
        eval1(&cast(DType::I8), &[&b]).data(),
        &TensorData::I8(vec![1, 0])
    );
    let i = i64t(&[3], &[-1, 256, 1 << 40]);
    assert_eq!(
        eval1(&cast(DType::U8), &[&i]).data(),
        &TensorData::U8(vec![255, 0, 0])
    );
    assert_eq!(
        eval1(&cast(DType::F32), &[&i]).data(),
        &TensorData::F32(vec![-1.0, 256.0, (1u64 << 40) as f32])
    );
    assert_eq!(
        eval1(&cast(DType::Bool), &[&i]).data(),
        &TensorData::Bool(vec![true, true, true])
    );
    let y = eval1(&cast(DType::I64), &[&i]);
    assert_eq!(y, i);
    for to in DType::ALL {
        for from in DType::ALL {
            let t = eval1(&cast(from), &[&x]);
            let out = eval1(&cast(to), &[&t]);
            assert_eq!(out.dtype(), to);
            assert_eq!(out.shape(), &[5]);
        }
    }
}
