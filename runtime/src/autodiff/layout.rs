//! Gradients of the data-movement ops: relabelling ops pass the gradient through with the
//! input's shape, Transpose applies the inverse permutation, Concat slices the gradient.

use strata_ir::ops::Slice;

use super::{Ctx, Grads};
use crate::kernels::layout as fwd;
use crate::RuntimeError;

/// Flatten, Reshape, Squeeze, Unsqueeze, Identity: same elements, the input's shape.
pub(super) fn relabel(cx: &Ctx) -> Grads {
    let x = cx.inputs[0];
    cx.x(0)?;
    let g = cx.grad.clone().reshaped(x.shape().to_vec());
    Ok(vec![Some(
        g.map_err(|_| cx.misfit("the input", x.shape()))?,
    )])
}

pub(super) fn transpose(perm: &[usize], cx: &Ctx) -> Grads {
    let x = cx.inputs[0];
    cx.x(0)?;
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
                op: cx.op,
                attr: "perm",
                reason: format!("{perm:?} is not a permutation of {rank} axes"),
            });
        }
        inv[p] = i;
    }
    let g = fwd::transpose(&inv, cx.grad)?;
    if g.shape() != x.shape() {
        return Err(cx.misfit("the input", x.shape()));
    }
    Ok(vec![Some(g)])
}

pub(super) fn concat(axis: usize, cx: &Ctx) -> Grads {
    let mut start = 0usize;
    let mut out = Vec::with_capacity(cx.inputs.len());
    for (i, x) in cx.inputs.iter().enumerate() {
        if x.as_f32().is_none() {
            // Non-float pieces (e.g. shape arithmetic) carry no gradient.
            out.push(None);
            start += x.shape().get(axis).copied().unwrap_or(0);
            continue;
        }
        let len = *x.shape().get(axis).ok_or(RuntimeError::Attribute {
            op: cx.op,
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
        let g = fwd::slice(&s, cx.grad)?;
        if g.shape() != x.shape() {
            return Err(cx.misfit(&format!("input {i}"), x.shape()));
        }
        out.push(Some(g));
        start += len;
    }
    Ok(out)
}
