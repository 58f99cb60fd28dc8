//! Helpers shared by the kernel tests.
#![allow(dead_code)]

use strata_ir::{Op, Tensor, TensorData};
use strata_runtime::{eval_op, RuntimeError};

pub fn f32t(shape: &[usize], data: &[f32]) -> Tensor {
    Tensor::from_f32(shape.to_vec(), data.to_vec()).unwrap()
}

pub fn f64t(shape: &[usize], data: &[f64]) -> Tensor {
    Tensor::new(shape.to_vec(), TensorData::F64(data.to_vec())).unwrap()
}

pub fn i64t(shape: &[usize], data: &[i64]) -> Tensor {
    Tensor::from_i64(shape.to_vec(), data.to_vec()).unwrap()
}

pub fn tensor(shape: &[usize], data: TensorData) -> Tensor {
    Tensor::new(shape.to_vec(), data).unwrap()
}

/// Deterministic pseudo-random f32 values in [-1, 1).
pub fn rand_vec(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub fn rand_t(shape: &[usize], seed: u64) -> Tensor {
    f32t(shape, &rand_vec(shape.iter().product(), seed))
}

pub fn eval1(op: &Op, inputs: &[&Tensor]) -> Tensor {
    let mut out = eval_op(op, inputs).unwrap();
    assert_eq!(out.len(), 1);
    out.remove(0)
}

pub fn eval_err(op: &Op, inputs: &[&Tensor]) -> RuntimeError {
    match eval_op(op, inputs) {
        Ok(out) => panic!("expected an error, got {out:?}"),
        Err(e) => e,
    }
}

#[track_caller]
pub fn assert_close(t: &Tensor, shape: &[usize], expected: &[f32], tol: f32) {
    assert_eq!(t.shape(), shape, "shape");
    let v = t.as_f32().expect("f32 tensor");
    assert_eq!(v.len(), expected.len());
    for (i, (a, e)) in v.iter().zip(expected).enumerate() {
        let ok = (a - e).abs() <= tol * (1.0 + e.abs()) || (a.is_nan() && e.is_nan());
        assert!(ok, "element {i}: got {a}, expected {e} (all: {v:?})");
    }
}
