//! Softmax gradient: `dx = y ⊙ (dy − Σ_axis dy·y)`, written in terms of the forward output.

use strata_ir::ops::Softmax;
use strata_ir::Tensor;

use super::{f32_tensor, f32s};
use crate::RuntimeError;

pub(super) fn softmax(
    sm: &Softmax,
    y: &Tensor,
    grad: &Tensor,
) -> Result<Vec<Option<Tensor>>, RuntimeError> {
    const OP: &str = "softmax";
    let (yv, gv) = (f32s(OP, y, usize::MAX)?, f32s(OP, grad, usize::MAX)?);
    let rank = y.rank();
    if sm.axis >= rank.max(1) {
        return Err(RuntimeError::Attribute {
            op: OP,
            attr: "axis",
            reason: format!("{} is out of range for rank {rank}", sm.axis),
        });
    }
    let shape = y.shape();
    let (len, inner) = if sm.coerce_2d || rank == 0 {
        (shape[sm.axis.min(rank)..].iter().product::<usize>(), 1)
    } else {
        (
            shape[sm.axis],
            shape[sm.axis + 1..].iter().product::<usize>(),
        )
    };
    let mut dx = vec![0f32; yv.len()];
    let block = len * inner;
    if block > 0 {
        for ((d, yb), gb) in dx
            .chunks_mut(block)
            .zip(yv.chunks(block))
            .zip(gv.chunks(block))
        {
            for i in 0..inner {
                let dot: f32 = (0..len)
                    .map(|j| yb[j * inner + i] * gb[j * inner + i])
                    .sum();
                for j in 0..len {
                    let k = j * inner + i;
                    d[k] = yb[k] * (gb[k] - dot);
                }
            }
        }
    }
    Ok(vec![Some(f32_tensor(OP, shape, dx)?)])
}
