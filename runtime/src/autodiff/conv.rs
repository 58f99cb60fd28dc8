//! Conv gradient (N-d, grouped, strided, dilated, padded) with im2col + GEMM, as in the
//! forward kernel: per image and group, `dW += dY·colᵀ` and `dcol = Wᵀ·dY` scattered back
//! by col2im. Images are processed in parallel in fixed chunks whose weight-gradient
//! partials are summed in chunk order, so results do not depend on the thread count.

use rayon::prelude::*;
use strata_ir::ops::Conv;
use strata_ir::Tensor;

use super::{f32_tensor, f32s};
use crate::kernels::checked_numel;
use crate::kernels::linear::{gemm_block, MatRef};
use crate::RuntimeError;

const OP: &str = "conv";
/// Images per parallel work item (and per weight-gradient partial).
const CHUNK: usize = 4;
/// Marks a kernel tap that falls into the padding.
const PAD: usize = usize::MAX;

fn shape_err(reason: String) -> RuntimeError {
    RuntimeError::Shape { op: OP, reason }
}

/// For kernel tap `kk` and output position `o`: the flat input spatial index, or [`PAD`].
fn tap_table(
    c: &Conv,
    in_sp: &[usize],
    kernel: &[usize],
    out_sp: &[usize],
) -> Result<Vec<usize>, RuntimeError> {
    let d = in_sp.len();
    let kprod: usize = kernel.iter().product();
    let p_out: usize = out_sp.iter().product();
    let len = checked_numel(OP, &[kprod, p_out])?;
    let mut tab = Vec::with_capacity(len);
    let (mut kidx, mut oidx) = (vec![0usize; d], vec![0usize; d]);
    for kk in 0..kprod {
        let mut rem = kk;
        for j in (0..d).rev() {
            kidx[j] = rem % kernel[j];
            rem /= kernel[j];
        }
        for o in 0..p_out {
            let mut rem = o;
            for j in (0..d).rev() {
                oidx[j] = rem % out_sp[j];
                rem /= out_sp[j];
            }
            let mut flat = 0usize;
            let mut inside = true;
            for j in 0..d {
                let ix = (oidx[j] * c.strides[j] + kidx[j] * c.dilations[j]) as isize
                    - c.pads[j] as isize;
                if ix < 0 || ix as usize >= in_sp[j] {
                    inside = false;
                    break;
                }
                flat = flat * in_sp[j] + ix as usize;
            }
            tab.push(if inside { flat } else { PAD });
        }
    }
    Ok(tab)
}

/// Gradients of `y = conv(x, w) + b` for x, w and (if present) b.
pub(super) fn conv(
    c: &Conv,
    inputs: &[&Tensor],
    grad: &Tensor,
) -> Result<Vec<Option<Tensor>>, RuntimeError> {
    let (x, w) = (inputs[0], inputs[1]);
    let (xv, wv, gv) = (
        f32s(OP, x, 0)?,
        f32s(OP, w, 1)?,
        f32s(OP, grad, usize::MAX)?,
    );
    if x.rank() < 3 || w.rank() != x.rank() {
        return Err(shape_err(format!(
            "input {:?} and weight {:?} must be [N, C, spatial...] and [M, C/group, k...]",
            x.shape(),
            w.shape()
        )));
    }
    let d = x.rank() - 2;
    let (batch, in_ch, in_sp) = (x.shape()[0], x.shape()[1], &x.shape()[2..]);
    let (m, cg, kernel) = (w.shape()[0], w.shape()[1], &w.shape()[2..]);
    let group = c.group;
    if c.strides.len() != d || c.dilations.len() != d || c.pads.len() != 2 * d {
        return Err(RuntimeError::Attribute {
            op: OP,
            attr: "strides/dilations/pads",
            reason: format!("lengths must be {d}, {d} and {}", 2 * d),
        });
    }
    if c.strides.contains(&0) || c.dilations.contains(&0) || group == 0 {
        return Err(RuntimeError::Attribute {
            op: OP,
            attr: "strides/dilations/group",
            reason: "must be positive".into(),
        });
    }
    if cg * group != in_ch || m % group != 0 {
        return Err(shape_err(format!(
            "weight {:?} does not fit {in_ch} input channels in {group} groups",
            w.shape()
        )));
    }
    let mut out_sp = Vec::with_capacity(d);
    for j in 0..d {
        let span = (kernel[j] - 1)
            .saturating_mul(c.dilations[j])
            .saturating_add(1);
        let padded = in_sp[j]
            .saturating_add(c.pads[j])
            .saturating_add(c.pads[d + j]);
        if padded < span || kernel[j] == 0 {
            return Err(shape_err(format!(
                "spatial axis {j}: padded input {padded} is smaller than the dilated kernel {span}"
            )));
        }
        out_sp.push((padded - span) / c.strides[j] + 1);
    }
    let mut want = vec![batch, m];
    want.extend(&out_sp);
    if grad.shape() != want.as_slice() {
        return Err(shape_err(format!(
            "output gradient {:?} differs from the output shape {want:?}",
            grad.shape()
        )));
    }
    let tab = tap_table(c, in_sp, kernel, &out_sp)?;
    let p_in: usize = in_sp.iter().product();
    let p_out: usize = out_sp.iter().product();
    let kprod: usize = kernel.iter().product();
    let (mg, kc) = (m / group, cg * kprod);
    let img_in = in_ch * p_in;
    let img_out = m * p_out;
    let col_len = checked_numel(OP, &[kc, p_out])?;
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
                        let xg =
                            &xv[n * img_in + gi * cg * p_in..n * img_in + (gi + 1) * cg * p_in];
                        for ci in 0..cg {
                            let xc = &xg[ci * p_in..(ci + 1) * p_in];
                            let rows = &mut col[ci * kprod * p_out..(ci + 1) * kprod * p_out];
                            for (dst, &t) in rows.iter_mut().zip(tab.iter()) {
                                *dst = if t == PAD { 0.0 } else { xc[t] };
                            }
                        }
                        let dyg =
                            &gv[n * img_out + gi * mg * p_out..n * img_out + (gi + 1) * mg * p_out];
                        let wg = &wv[gi * mg * kc..(gi + 1) * mg * kc];
                        // dW_g [mg, kc] += dY_g [mg, p_out] · colᵀ [p_out, kc]
                        gemm_block(
                            OP,
                            mg,
                            p_out,
                            kc,
                            1.0,
                            MatRef {
                                data: dyg,
                                rs: p_out,
                                cs: 1,
                            },
                            MatRef {
                                data: &col,
                                rs: 1,
                                cs: p_out,
                            },
                            1.0,
                            &mut dw[gi * mg * kc..(gi + 1) * mg * kc],
                            kc,
                        )?;
                        // dcol [kc, p_out] = W_gᵀ [kc, mg] · dY_g [mg, p_out]
                        gemm_block(
                            OP,
                            kc,
                            mg,
                            p_out,
                            1.0,
                            MatRef {
                                data: wg,
                                rs: 1,
                                cs: kc,
                            },
                            MatRef {
                                data: dyg,
                                rs: p_out,
                                cs: 1,
                            },
                            0.0,
                            &mut dcol,
                            p_out,
                        )?;
                        let dxg = &mut dxn[gi * cg * p_in..(gi + 1) * cg * p_in];
                        for ci in 0..cg {
                            let dxc = &mut dxg[ci * p_in..(ci + 1) * p_in];
                            let rows = &dcol[ci * kprod * p_out..(ci + 1) * kprod * p_out];
                            for (v, &t) in rows.iter().zip(tab.iter()) {
                                if t != PAD {
                                    dxc[t] += v;
                                }
                            }
                        }
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
    let mut out = vec![
        Some(f32_tensor(OP, x.shape(), dx)?),
        Some(f32_tensor(OP, w.shape(), dw)?),
    ];
    if c.has_bias {
        let b = inputs[2];
        f32s(OP, b, 2)?;
        if b.shape() != [m] {
            return Err(shape_err(format!(
                "bias shape {:?} must be [{m}]",
                b.shape()
            )));
        }
        let mut db = vec![0f32; m];
        for img in gv.chunks(img_out.max(1)) {
            for (mi, row) in img.chunks(p_out.max(1)).enumerate().take(m) {
                db[mi] += row.iter().sum::<f32>();
            }
        }
        out.push(Some(f32_tensor(OP, b.shape(), db)?));
    }
    Ok(out)
}
