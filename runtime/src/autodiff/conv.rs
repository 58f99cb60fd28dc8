//! Conv gradient (N-d, grouped, strided, dilated, padded) with the forward kernel's im2col +
//! GEMM: per image and group, `dW += dY·colᵀ` and `dcol = Wᵀ·dY` scattered back by im2col's
//! adjoint, col2im. Images are processed in parallel in fixed chunks whose weight-gradient
//! partials are summed in chunk order, so results do not depend on the thread count.

use rayon::prelude::*;
use strata_ir::ops::Conv;

use super::{Ctx, Grads};
use crate::kernels::checked_numel;
use crate::kernels::conv::conv_geometry;
use crate::kernels::linear::{gemm_into, MatRef};
use crate::RuntimeError;

/// Images per parallel work item (and per weight-gradient partial).
const CHUNK: usize = 4;
/// Gradients of `y = conv(x, w) + b` for x, w and (if present) b. The operands are checked
/// by the forward kernel's rules.
pub(super) fn conv(c: &Conv, cx: &Ctx) -> Grads {
    let op = cx.op;
    let (x, w) = (cx.inputs[0], cx.inputs[1]);
    let (xv, wv, gv) = (cx.x(0)?, cx.x(1)?, cx.dy);
    let (g, want) = conv_geometry(op, c, x, w)?;
    cx.grad_fits("the output shape", &want)?;
    let (batch, group, m) = (g.batch, g.group, g.m);
    let (p_in, p_out, kprod, cg, mg) = (g.p_in, g.p_out, g.kprod, g.cg, g.mg);
    let kc = cg * kprod;
    let img_in = g.in_ch * p_in;
    let img_out = m * p_out;
    let col_len = checked_numel(op, &[kc, p_out])?;
    let mut dx = vec![0f32; xv.len()];
    let partials: Vec<Result<Vec<f32>, RuntimeError>> = if img_in == 0 || batch == 0 {
        Vec::new()
    } else {
        dx.par_chunks_mut(CHUNK * img_in)
            .enumerate()
            .map(|(chunk, dx_chunk)| {
                let mut dw = vec![0f32; wv.len()];
                let mut col = vec![0f32; col_len];
                let mut dcol = vec![0f32; col_len];
                for (i, dxn) in dx_chunk.chunks_mut(img_in).enumerate() {
                    let n = chunk * CHUNK + i;
                    for gi in 0..group {
                        g.im2col(g.group_input(xv, n, gi), &mut col);
                        let dyg =
                            &gv[n * img_out + gi * mg * p_out..n * img_out + (gi + 1) * mg * p_out];
                        let dym = MatRef::of(dyg, p_out, false);
                        let wt = MatRef::of(&wv[gi * mg * kc..(gi + 1) * mg * kc], kc, true);
                        let colt = MatRef::of(&col, p_out, true);
                        let dwg = &mut dw[gi * mg * kc..(gi + 1) * mg * kc];
                        // dW_g [mg, kc] += dY_g [mg, p_out] · colᵀ [p_out, kc]
                        gemm_into(op, false, mg, p_out, kc, 1.0, dym, colt, 1.0, dwg)?;
                        // dcol [kc, p_out] = W_gᵀ [kc, mg] · dY_g [mg, p_out]
                        gemm_into(op, false, kc, mg, p_out, 1.0, wt, dym, 0.0, &mut dcol)?;
                        g.col2im_add(&dcol, &mut dxn[gi * cg * p_in..(gi + 1) * cg * p_in]);
                    }
                }
                Ok(dw)
            })
            .collect()
    };
    let mut dw = vec![0f32; wv.len()];
    for p in partials {
        for (a, b) in dw.iter_mut().zip(p?) {
            *a += b;
        }
    }
    let mut out = vec![cx.entry(x.shape(), dx)?, cx.entry(w.shape(), dw)?];
    if c.has_bias {
        let b = cx.inputs[2];
        cx.x(2)?;
        if b.shape() != [m] {
            let reason = format!("bias shape {:?} must be [{m}]", b.shape());
            return Err(RuntimeError::shape(op, reason));
        }
        let mut db = vec![0f32; m];
        for img in gv.chunks(img_out.max(1)) {
            for (mi, row) in img.chunks(p_out.max(1)).enumerate().take(m) {
                db[mi] += row.iter().sum::<f32>();
            }
        }
        out.push(cx.entry(b.shape(), db)?);
    }
    Ok(out)
}
