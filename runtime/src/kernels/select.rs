//! Comparisons (bool out) and Where, all with numpy broadcasting.

use strata_ir::ops::CompareOp;
use strata_ir::{DType, Tensor, TensorData};

use super::elementwise::{broadcast_apply, broadcast_shape, broadcast_strides};
use super::index::next_index;
use super::{checked_numel, make, same_dtype, with_elem, Elem};
use crate::RuntimeError;

fn compare_name(op: CompareOp) -> &'static str {
    match op {
        CompareOp::Equal => "equal",
        CompareOp::Greater => "greater",
        CompareOp::Less => "less",
        CompareOp::GreaterOrEqual => "greater_equal",
        CompareOp::LessOrEqual => "less_equal",
    }
}

/// `a op b` element-wise over the broadcast of both shapes. Floats compare as IEEE does
/// (every comparison with NaN is false), as numpy and the ONNX reference do.
pub fn compare(op: CompareOp, a: &Tensor, b: &Tensor) -> Result<Tensor, RuntimeError> {
    let name = compare_name(op);
    same_dtype(name, a, 1, b)?;
    if a.dtype() == DType::Bool && op != CompareOp::Equal {
        return Err(RuntimeError::unsupported(name, 0, a.dtype()));
    }
    fn go<T: Elem + PartialOrd>(
        op: CompareOp,
        a: &Tensor,
        b: &Tensor,
    ) -> Result<(Vec<usize>, Vec<bool>), RuntimeError> {
        let name = compare_name(op);
        let (Some(x), Some(y)) = (T::slice(a.data()), T::slice(b.data())) else {
            return Err(RuntimeError::unsupported(name, 1, b.dtype()));
        };
        let (sa, sb) = (a.shape(), b.shape());
        match op {
            CompareOp::Equal => broadcast_apply(name, x, sa, y, sb, |p: T, q: T| p == q),
            CompareOp::Greater => broadcast_apply(name, x, sa, y, sb, |p: T, q: T| p > q),
            CompareOp::Less => broadcast_apply(name, x, sa, y, sb, |p: T, q: T| p < q),
            CompareOp::GreaterOrEqual => broadcast_apply(name, x, sa, y, sb, |p: T, q: T| p >= q),
            CompareOp::LessOrEqual => broadcast_apply(name, x, sa, y, sb, |p: T, q: T| p <= q),
        }
    }
    let (shape, data) = with_elem!(a.dtype(), go(op, a, b))?;
    make(name, shape, TensorData::Bool(data))
}

/// `cond ? x : y` over the broadcast of all three shapes.
pub fn where_(cond: &Tensor, x: &Tensor, y: &Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "where";
    let TensorData::Bool(c) = cond.data() else {
        return Err(RuntimeError::unsupported(OP, 0, cond.dtype()));
    };
    same_dtype(OP, x, 2, y)?;
    let shape = broadcast_shape(
        OP,
        &broadcast_shape(OP, cond.shape(), x.shape())?,
        y.shape(),
    )?;
    let n = checked_numel(OP, &shape)?;
    fn go<T: Elem>(
        c: &[bool],
        cond: &Tensor,
        x: &Tensor,
        y: &Tensor,
        shape: &[usize],
        n: usize,
    ) -> Result<TensorData, RuntimeError> {
        let (Some(xv), Some(yv)) = (T::slice(x.data()), T::slice(y.data())) else {
            return Err(RuntimeError::unsupported(OP, 2, y.dtype()));
        };
        let strides = [cond.shape(), x.shape(), y.shape()].map(|s| broadcast_strides(s, shape));
        let mut idx = vec![0usize; shape.len()];
        let mut out = Vec::with_capacity(n);
        for k in 0..n {
            if k > 0 {
                next_index(&mut idx, shape);
            }
            let at = |s: &[usize]| idx.iter().zip(s).map(|(i, s)| i * s).sum::<usize>();
            out.push(if c[at(&strides[0])] {
                xv[at(&strides[1])]
            } else {
                yv[at(&strides[2])]
            });
        }
        Ok(T::wrap(out))
    }
    let data = with_elem!(x.dtype(), go(c, cond, x, y, &shape, n))?;
    make(OP, shape, data)
}
