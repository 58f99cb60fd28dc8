//! Gradients of the data-movement ops: relabelling ops pass the gradient through with the
//! input's shape, Transpose applies the inverse permutation, Concat slices the gradient.

use strata_ir::ops::Slice;
use strata_ir::Tensor;

use super::f32s;
use crate::kernels::layout as fwd;
use crate::RuntimeError;

/// Flatten, Reshape, Squeeze, Unsqueeze, Identity: same elements, the input's shape.
pub(super) fn relabel(
    op: &'static str,
    x: &Tensor,
    grad: &Tensor,
) -> Result<Vec<Option<Tensor>>, RuntimeError> {
    f32s(op, x, 0)?;
    let g = grad
        .clone()
        .reshaped(x.shape().to_vec())
        .map_err(|e| RuntimeError::Shape {
            op,
            reason: format!(
                "output gradient {:?} does not fit the input {:?}: {e}",
                grad.shape(),
                x.shape()
            ),
        })?;
    Ok(vec![Some(g)])
}

pub(super) fn transpose(
    perm: &[usize],
    x: &Tensor,
    grad: &Tensor,
) -> Result<Vec<Option<Tensor>>, RuntimeError> {
    const OP: &str = "transpose";
    f32s(OP, x, 0)?;
    let rank = x.rank();
    let perm: Vec<usize> = if perm.is_empty() {
        (0..rank).rev().collect()
    } else {
        perm.to_vec()
    };
    let mut inv = vec![usize::MAX; rank];
    for (i, &p) in perm.iter().enumerate() {
        if p >= rank || perm.len() != rank || inv[p] != usize::MAX {
            return Err(RuntimeError::Attribute {
                op: OP,
                attr: "perm",
                reason: format!("{perm:?} is not a permutation of {rank} axes"),
            });
        }
        inv[p] = i;
    }
    let g = fwd::transpose(&inv, grad)?;
    if g.shape() != x.shape() {
        return Err(RuntimeError::Shape {
            op: OP,
            reason: format!(
                "output gradient {:?} does not fit the input {:?}",
                grad.shape(),
                x.shape()
            ),
        });
    }
    Ok(vec![Some(g)])
}

pub(super) fn concat(
    axis: usize,
    inputs: &[&Tensor],
    grad: &Tensor,
) -> Result<Vec<Option<Tensor>>, RuntimeError> {
    const OP: &str = "concat";
    let mut start = 0usize;
    let mut out = Vec::with_capacity(inputs.len());
    for (i, x) in inputs.iter().enumerate() {
        if x.as_f32().is_none() {
            // Non-float pieces (e.g. shape arithmetic) carry no gradient.
            out.push(None);
            start += x.shape().get(axis).copied().unwrap_or(0);
            continue;
        }
        let len = *x.shape().get(axis).ok_or(RuntimeError::Attribute {
            op: OP,
            attr: "axis",
            reason: format!(
                "{axis} is out of range for input {i} of shape {:?}",
                x.shape()
            ),
        })?;
        let s = Slice {
            starts: vec![start as i64],
            ends: vec![(start + len) as i64],
            axes: vec![axis],
            steps: vec![1],
        };
        let g = fwd::slice(&s, grad)?;
        if g.shape() != x.shape() {
            return Err(RuntimeError::Shape {
                op: OP,
                reason: format!(
                    "output gradient {:?} does not fit input {i} {:?}",
                    grad.shape(),
                    x.shape()
                ),
            });
        }
        out.push(Some(g));
        start += len;
    }
    Ok(out)
}
