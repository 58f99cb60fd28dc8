//! Softmax gradient: `dx = y ⊙ (dy − Σ_axis dy·y)`, written in terms of the forward output.

use strata_ir::ops::Softmax;

use super::{f32s, Ctx, Grads};
use crate::kernels::normalization::softmax_blocks;

pub(super) fn softmax(sm: &Softmax, cx: &Ctx) -> Grads {
    let (y, gv) = (cx.output, cx.dy);
    let yv = f32s(cx.op, y, usize::MAX)?;
    let (_, len, inner) = softmax_blocks(cx.op, sm, y.shape())?;
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
    Ok(vec![cx.entry(y.shape(), dx)?])
}
