//! Tensor constructors and comparisons.

use strata_ir::{Tensor, TensorData};

pub fn f32t(shape: &[usize], data: &[f32]) -> Tensor {
    tensor(shape, TensorData::F32(data.to_vec()))
}

pub fn f64t(shape: &[usize], data: &[f64]) -> Tensor {
    tensor(shape, TensorData::F64(data.to_vec()))
}

pub fn i64t(shape: &[usize], data: &[i64]) -> Tensor {
    tensor(shape, TensorData::I64(data.to_vec()))
}

/// A tensor whose data must match the shape (the test is wrong otherwise).
#[track_caller]
pub fn tensor(shape: &[usize], data: TensorData) -> Tensor {
    Tensor::new(shape.to_vec(), data).expect("data length matches the shape")
}

/// Rows `range` of a batch-first f32 tensor.
pub fn rows(t: &Tensor, range: std::ops::Range<usize>) -> Tensor {
    let per: usize = t.shape()[1..].iter().product();
    let mut shape = t.shape().to_vec();
    shape[0] = range.len();
    let data = t.as_f32().expect("an f32 tensor")[range.start * per..range.end * per].to_vec();
    tensor(&shape, TensorData::F32(data))
}

/// Asserts shape and values, each within `tol` relative to `1 + |expected|` (NaN matches NaN).
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

/// Runs one single-output op on the reference runtime.
#[cfg(feature = "runtime")]
#[track_caller]
pub fn eval1(op: &strata_ir::Op, inputs: &[&Tensor]) -> Tensor {
    let mut out = strata_runtime::eval_op(op, inputs).unwrap();
    assert_eq!(out.len(), 1);
    out.remove(0)
}

/// Runs one op on the reference runtime, expecting an error.
#[cfg(feature = "runtime")]
#[track_caller]
pub fn eval_err(op: &strata_ir::Op, inputs: &[&Tensor]) -> strata_runtime::RuntimeError {
    match strata_runtime::eval_op(op, inputs) {
        Ok(out) => panic!("expected an error, got {out:?}"),
        Err(e) => e,
    }
}

/// The attribute an op's evaluation refuses (any other outcome fails the test).
#[cfg(feature = "runtime")]
#[track_caller]
pub fn bad_attr(op: &strata_ir::Op, inputs: &[&Tensor]) -> &'static str {
    match eval_err(op, inputs) {
        strata_runtime::RuntimeError::Attribute { attr, .. } => attr,
        e => panic!("expected an attribute error, got {e:?}"),
    }
}

/// A hand-computed case: an op, its input, the expected shape and values.
#[cfg(feature = "runtime")]
pub type Case<'a> = (strata_ir::Op, &'a Tensor, &'a [usize], &'a [f32]);

/// Runs every case of a table, each within `tol` (see [`assert_close`]).
#[cfg(feature = "runtime")]
#[track_caller]
pub fn expect_all(tol: f32, cases: &[Case]) {
    for (op, x, shape, want) in cases {
        assert_close(&eval1(op, &[x]), shape, want, tol);
    }
}
