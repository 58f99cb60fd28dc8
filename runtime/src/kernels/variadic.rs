//! Max and Min over any number of inputs, all broadcast together (numpy rules).

use strata_ir::ops::VariadicOp;
use strata_ir::{DType, Tensor};

use super::elementwise::broadcast_apply;
use super::{make, same_dtype, with_elem, Elem};
use crate::RuntimeError;

fn name(op: VariadicOp) -> &'static str {
    match op {
        VariadicOp::Max => "max",
        VariadicOp::Min => "min",
    }
}

/// Folds the inputs left to right. NaN propagates (`x != x` is true only for NaN), as in
/// numpy's `maximum`/`minimum`, which the ONNX reference uses.
pub fn variadic(op: VariadicOp, inputs: &[&Tensor]) -> Result<Tensor, RuntimeError> {
    let op_name = name(op);
    let first = inputs.first().ok_or(RuntimeError::Arity {
        op: op_name,
        expected: "at least 1".into(),
        got: 0,
    })?;
    let dtype = first.dtype();
    if dtype == DType::Bool {
        return Err(RuntimeError::unsupported(op_name, 0, dtype));
    }
    let mut acc = (*first).clone();
    for (i, t) in inputs.iter().enumerate().skip(1) {
        same_dtype(op_name, first, i, t)?;
        acc = with_elem!(dtype, pair(op, &acc, t))?;
    }
    Ok(acc)
}

fn pair<T: Elem + PartialOrd>(
    op: VariadicOp,
    a: &Tensor,
    b: &Tensor,
) -> Result<Tensor, RuntimeError> {
    let op_name = name(op);
    let (Some(x), Some(y)) = (T::slice(a.data()), T::slice(b.data())) else {
        return Err(RuntimeError::DTypeMismatch {
            op: op_name,
            input: 1,
            expected: a.dtype(),
            got: b.dtype(),
        });
    };
    #[allow(clippy::eq_op)]
    let (shape, data) = match op {
        VariadicOp::Max => broadcast_apply(op_name, x, a.shape(), y, b.shape(), |p: T, q: T| {
            if p > q || p != p {
                p
            } else {
                q
            }
        })?,
        VariadicOp::Min => broadcast_apply(op_name, x, a.shape(), y, b.shape(), |p: T, q: T| {
            if p < q || p != p {
                p
            } else {
                q
            }
        })?,
    };
    make(op_name, shape, T::wrap(data))
}
