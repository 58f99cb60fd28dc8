//! Convolution kernels: N-d Conv via im2col + GEMM, ConvTranspose via GEMM + col2im.
//! Both are parallel over the batch; each worker reuses one column buffer, so memory stays
//! at one image's columns per thread however large the batch.

use rayon::prelude::*;
use strata_ir::ops::{Conv, ConvTranspose};
use strata_ir::{Tensor, TensorData};

use super::linear::{gemm_block, gemm_strided, GemmElem, MatRef};
use super::{checked_numel, make, strides_of};
use crate::RuntimeError;

/// Largest stride, dilation, pad or group accepted; real models are many orders below it.
const ATTR_LIMIT: usize = 1 << 31;

/// Validated geometry shared by both convolutions.
struct Geometry {
    batch: usize,
    in_ch: usize,
    in_sp: Vec<usize>,
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    pads_begin: Vec<usize>,
    pads_end: Vec<usize>,
    group: usize,
}

#[allow(clippy::too_many_arguments)]
fn geometry(
    op: &'static str,
    x: &Tensor,
    w: &Tensor,
    kernel: &[usize],
    strides: &[usize],
    pads: &[usize],
    dilations: &[usize],
    group: usize,
) -> Result<Geometry, RuntimeError> {
    if x.rank() < 3 {
        return Err(RuntimeError::Shape {
            op,
            reason: format!(
                "input must be [N, C, spatial...] with at least one spatial axis, got {:?}",
                x.shape()
            ),
        });
    }
    let d = x.rank() - 2;
    if w.rank() != x.rank() {
        return Err(RuntimeError::Shape {
            op,
            reason: format!(
                "weight rank {} differs from input rank {} (weight {:?})",
                w.rank(),
                x.rank(),
                w.shape()
            ),
        });
    }
    let wk = w.shape()[2..].to_vec();
    if !kernel.is_empty() && kernel != wk.as_slice() {
        return Err(RuntimeError::Attribute {
            op,
            attr: "kernel",
            reason: format!("{kernel:?} differs from the weight's spatial shape {wk:?}"),
        });
    }
    let check_len = |attr: &'static str, v: &[usize], want: usize| {
        if v.len() != want {
            Err(RuntimeError::Attribute {
                op,
                attr,
                reason: format!("has {} values, expected {want}", v.len()),
            })
        } else {
            Ok(())
        }
    };
    check_len("strides", strides, d)?;
    check_len("dilations", dilations, d)?;
    check_len("pads", pads, 2 * d)?;
    if strides.contains(&0) {
        return Err(RuntimeError::Attribute {
            op,
            attr: "strides",
            reason: "must be positive".into(),
        });
    }
    if dilations.contains(&0) {
        return Err(RuntimeError::Attribute {
            op,
            attr: "dilations",
            reason: "must be positive".into(),
        });
    }
    if group == 0 {
        return Err(RuntimeError::Attribute {
            op,
            attr: "group",
            reason: "must be positive".into(),
        });
    }
    // Bounding the attributes keeps all index arithmetic far from overflow.
    for (attr, v) in [
        ("strides", strides),
        ("dilations", dilations),
        ("pads", pads),
        ("group", &[group][..]),
    ] {
        if v.iter().any(|&x| x > ATTR_LIMIT) {
            return Err(RuntimeError::Attribute {
                op,
                attr,
                reason: format!("{v:?} exceeds {ATTR_LIMIT}"),
            });
        }
    }
    Ok(Geometry {
        batch: x.shape()[0],
        in_ch: x.shape()[1],
        in_sp: x.shape()[2..].to_vec(),
        kernel: wk,
        strides: strides.to_vec(),
        dilations: dilations.to_vec(),
        pads_begin: pads[..d].to_vec(),
        pads_end: pads[d..].to_vec(),
        group,
    })
}

fn check_bias(
    op: &'static str,
    x: &Tensor,
    b: Option<&Tensor>,
    channels: usize,
) -> Result<(), RuntimeError> {
    if let Some(b) = b {
        if b.dtype() != x.dtype() {
            return Err(RuntimeError::DTypeMismatch {
                op,
                input: 2,
                expected: x.dtype(),
                got: b.dtype(),
            });
        }
        if b.shape() != [channels] {
            return Err(RuntimeError::Shape {
                op,
                reason: format!("bias shape {:?} must be [{channels}]", b.shape()),
            });
        }
    }
    Ok(())
}

/// ONNX Conv (N-d, grouped, strided, dilated, padded) for f32 and f64.
pub fn conv(c: &Conv, inputs: &[&Tensor]) -> Result<Tensor, RuntimeError> {
    const OP: &str = "conv";
    let (x, w) = (inputs[0], inputs[1]);
    let bias = if c.has_bias {
        inputs.get(2).copied()
    } else {
        None
    };
    if w.dtype() != x.dtype() {
        return Err(RuntimeError::DTypeMismatch {
            op: OP,
            input: 1,
            expected: x.dtype(),
            got: w.dtype(),
        });
    }
    let g = geometry(
        OP,
        x,
        w,
        &c.kernel,
        &c.strides,
        &c.pads,
        &c.dilations,
        c.group,
    )?;
    let m = w.shape()[0];
    if g.in_ch % g.group != 0
        || m % g.group != 0
        || w.shape()[1].checked_mul(g.group) != Some(g.in_ch)
    {
        return Err(RuntimeError::Shape {
            op: OP,
            reason: format!(
                "input has {} channels, weight is {:?}, group {}: need C = group * weight[1] and M divisible by group",
                g.in_ch, w.shape(), g.group
            ),
        });
    }
    check_bias(OP, x, bias, m)?;
    let mut out_sp = Vec::with_capacity(g.in_sp.len());
    for j in 0..g.in_sp.len() {
        let span = g.kernel[j]
            .saturating_sub(1)
            .saturating_mul(g.dilations[j])
            .saturating_add(1);
        let padded = g.in_sp[j]
            .saturating_add(g.pads_begin[j])
            .saturating_add(g.pads_end[j]);
        if g.kernel[j] == 0 || padded < span {
            return Err(RuntimeError::Shape {
                op: OP,
                reason: format!(
                    "spatial axis {j}: padded input size {padded} is smaller than the dilated kernel {span}"
                ),
            });
        }
        out_sp.push((padded - span) / g.strides[j] + 1);
    }
    let mut out_shape = vec![g.batch, m];
    out_shape.extend(&out_sp);
    let total = checked_numel(OP, &out_shape)?;
    // The per-thread column buffer must be allocatable too.
    checked_numel(OP, &[w.len() / m.max(1), out_sp.iter().product()])?;
    let data = match (x.data(), w.data()) {
        (TensorData::F32(xv), TensorData::F32(wv)) => {
            let bv = match bias.map(|b| b.data()) {
                Some(TensorData::F32(v)) => Some(v.as_slice()),
                _ => None,
            };
            TensorData::F32(conv_typed(&g, xv, wv, bv, m, &out_sp, total)?)
        }
        (TensorData::F64(xv), TensorData::F64(wv)) => {
            let bv = match bias.map(|b| b.data()) {
                Some(TensorData::F64(v)) => Some(v.as_slice()),
                _ => None,
            };
            TensorData::F64(conv_typed(&g, xv, wv, bv, m, &out_sp, total)?)
        }
        _ => {
            return Err(RuntimeError::UnsupportedDType {
                op: OP,
                input: 0,
                dtype: x.dtype(),
            })
        }
    };
    make(OP, out_shape, data)
}

fn conv_typed<T: GemmElem>(
    g: &Geometry,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    m: usize,
    out_sp: &[usize],
    total: usize,
) -> Result<Vec<T>, RuntimeError> {
    let mut out = vec![T::ZERO; total];
    let p_out: usize = out_sp.iter().product();
    let p_in: usize = g.in_sp.iter().product();
    let cg = g.in_ch / g.group;
    let mg = m / g.group;
    let kprod: usize = g.kernel.iter().product();
    let kc = cg * kprod;
    let per_image = m * p_out;
    if per_image == 0 || g.batch == 0 {
        return Ok(out);
    }
    // A 1x1, stride-1, unpadded convolution needs no im2col: the image already is the matrix.
    let pointwise = kprod == 1
        && g.strides.iter().all(|&s| s == 1)
        && g.pads_begin.iter().chain(&g.pads_end).all(|&p| p == 0);
    let col_len = if pointwise { 0 } else { kc * p_out };
    let image = |(n, dst): (usize, &mut [T]), col: &mut Vec<T>| -> Result<(), RuntimeError> {
        if let Some(b) = bias {
            for (mi, row) in dst.chunks_mut(p_out).enumerate() {
                row.fill(b[mi]);
            }
        }
        let beta = if bias.is_some() { T::ONE } else { T::ZERO };
        for gi in 0..g.group {
            let xg = &x[(n * g.in_ch + gi * cg) * p_in..(n * g.in_ch + (gi + 1) * cg) * p_in];
            let cols: &[T] = if pointwise {
                xg
            } else {
                col.resize(col_len, T::ZERO);
                im2col(g, xg, cg, out_sp, col);
                col
            };
            let wg = &w[gi * mg * kc..(gi + 1) * mg * kc];
            let dst_g = &mut dst[gi * mg * p_out..(gi + 1) * mg * p_out];
            // With several images the batch loop is already parallel.
            let gemm = if g.batch > 1 {
                gemm_block::<T>
            } else {
                gemm_strided::<T>
            };
            gemm(
                "conv",
                mg,
                kc,
                p_out,
                T::ONE,
                MatRef {
                    data: wg,
                    rs: kc,
                    cs: 1,
                },
                MatRef {
                    data: cols,
                    rs: p_out,
                    cs: 1,
                },
                beta,
                dst_g,
                p_out,
            )?;
        }
        Ok(())
    };
    if g.batch == 1 {
        let mut col = Vec::new();
        image((0, &mut out[..]), &mut col)?;
    } else {
        out.par_chunks_mut(per_image)
            .enumerate()
            .try_for_each_init(Vec::new, |col, job| image(job, col))?;
    }
    Ok(out)
}

/// Fills `col` (`[cg * kprod, p_out]`, row-major) with the receptive fields of one group of
/// one image; positions in the padding are zero.
fn im2col<T: GemmElem>(g: &Geometry, xg: &[T], cg: usize, out_sp: &[usize], col: &mut [T]) {
    let d = g.in_sp.len();
    let p_out: usize = out_sp.iter().product();
    let p_in: usize = g.in_sp.iter().product();
    let kprod: usize = g.kernel.iter().product();
    let in_strides = strides_of(&g.in_sp);
    let last = d - 1;
    let (ow, iw, sw) = (out_sp[last], g.in_sp[last], g.strides[last]);
    let outer: usize = out_sp[..last].iter().product();
    let mut kidx = vec![0usize; d];
    let mut oidx = vec![0usize; d];
    for ci in 0..cg {
        let xc = &xg[ci * p_in..(ci + 1) * p_in];
        for kk in 0..kprod {
            // Decompose the kernel position.
            let mut rem = kk;
            for j in (0..d).rev() {
                kidx[j] = rem % g.kernel[j];
                rem /= g.kernel[j];
            }
            let row = &mut col[(ci * kprod + kk) * p_out..(ci * kprod + kk + 1) * p_out];
            // Valid output range on the last axis: 0 <= ox*sw + off < iw.
            let off = (kidx[last] * g.dilations[last]) as isize - g.pads_begin[last] as isize;
            let lo = if off >= 0 {
                0
            } else {
                ((-off) as usize).div_ceil(sw)
            };
            let hi = if (iw as isize) <= off {
                0
            } else {
                (((iw as isize - off) as usize).div_ceil(sw)).min(ow)
            };
            let lo = lo.min(hi);
            oidx[..last].fill(0);
            for seg in 0..outer {
                if seg > 0 {
                    for j in (0..last).rev() {
                        oidx[j] += 1;
                        if oidx[j] < out_sp[j] {
                            break;
                        }
                        oidx[j] = 0;
                    }
                }
                let dst = &mut row[seg * ow..(seg + 1) * ow];
                let mut base = 0usize;
                let mut inside = true;
                for j in 0..last {
                    let ix = (oidx[j] * g.strides[j] + kidx[j] * g.dilations[j]) as isize
                        - g.pads_begin[j] as isize;
                    if ix < 0 || ix as usize >= g.in_sp[j] {
                        inside = false;
                        break;
                    }
                    base += ix as usize * in_strides[j];
                }
                if !inside || lo >= hi {
                    dst.fill(T::ZERO);
                    continue;
                }
                dst[..lo].fill(T::ZERO);
                dst[hi..].fill(T::ZERO);
                let start = (lo * sw) as isize + off;
                let src_base = base + start as usize;
                if sw == 1 {
                    dst[lo..hi].copy_from_slice(&xc[src_base..src_base + (hi - lo)]);
                } else {
                    for (t, o) in dst[lo..hi].iter_mut().enumerate() {
                        *o = xc[src_base + t * sw];
                    }
                }
            }
        }
    }
}

/// ONNX ConvTranspose (N-d, grouped, strided, dilated, padded, output_padding) for f32/f64.
pub fn conv_transpose(c: &ConvTranspose, inputs: &[&Tensor]) -> Result<Tensor, RuntimeError> {
    const OP: &str = "conv_transpose";
    let (x, w) = (inputs[0], inputs[1]);
    let bias = if c.has_bias {
        inputs.get(2).copied()
    } else {
        None
    };
    if w.dtype() != x.dtype() {
        return Err(RuntimeError::DTypeMismatch {
            op: OP,
            input: 1,
            expected: x.dtype(),
            got: w.dtype(),
        });
    }
    let g = geometry(
        OP,
        x,
        w,
        &c.kernel,
        &c.strides,
        &c.pads,
        &c.dilations,
        c.group,
    )?;
    let d = g.in_sp.len();
    let out_pad: Vec<usize> = if c.output_padding.is_empty() {
        vec![0; d]
    } else {
        c.output_padding.clone()
    };
    if out_pad.len() != d {
        return Err(RuntimeError::Attribute {
            op: OP,
            attr: "output_padding",
            reason: format!("has {} values, expected {d}", out_pad.len()),
        });
    }
    if g.in_ch % g.group != 0 || w.shape()[0] != g.in_ch {
        return Err(RuntimeError::Shape {
            op: OP,
            reason: format!(
                "input has {} channels, weight is {:?}, group {}: need weight[0] = C and C divisible by group",
                g.in_ch, w.shape(), g.group
            ),
        });
    }
    let m = w.shape()[1]
        .checked_mul(g.group)
        .ok_or_else(|| RuntimeError::Shape {
            op: OP,
            reason: format!("weight {:?} times group {} overflows", w.shape(), g.group),
        })?;
    check_bias(OP, x, bias, m)?;
    let mut out_sp = Vec::with_capacity(d);
    #[allow(clippy::needless_range_loop)]
    for j in 0..d {
        let full = (g.in_sp[j].saturating_sub(1) as u128) * g.strides[j] as u128
            + out_pad[j] as u128
            + (g.kernel[j].saturating_sub(1) as u128) * g.dilations[j] as u128
            + 1;
        let crop = g.pads_begin[j] as u128 + g.pads_end[j] as u128;
        if g.in_sp[j] == 0 || g.kernel[j] == 0 || full < crop || full - crop > usize::MAX as u128 {
            return Err(RuntimeError::Shape {
                op: OP,
                reason: format!("spatial axis {j}: output size would be negative or empty (input {:?}, pads {:?})", g.in_sp, c.pads),
            });
        }
        out_sp.push((full - crop) as usize);
    }
    let mut out_shape = vec![g.batch, m];
    out_shape.extend(&out_sp);
    let total = checked_numel(OP, &out_shape)?;
    checked_numel(
        OP,
        &[
            w.shape()[1],
            w.shape()[2..].iter().product(),
            g.in_sp.iter().product(),
        ],
    )?;
    let data = match (x.data(), w.data()) {
        (TensorData::F32(xv), TensorData::F32(wv)) => {
            let bv = match bias.map(|b| b.data()) {
                Some(TensorData::F32(v)) => Some(v.as_slice()),
                _ => None,
            };
            TensorData::F32(conv_transpose_typed(&g, xv, wv, bv, m, &out_sp, total)?)
        }
        (TensorData::F64(xv), TensorData::F64(wv)) => {
            let bv = match bias.map(|b| b.data()) {
                Some(TensorData::F64(v)) => Some(v.as_slice()),
                _ => None,
            };
            TensorData::F64(conv_transpose_typed(&g, xv, wv, bv, m, &out_sp, total)?)
        }
        _ => {
            return Err(RuntimeError::UnsupportedDType {
                op: OP,
                input: 0,
                dtype: x.dtype(),
            })
        }
    };
    make(OP, out_shape, data)
}

fn conv_transpose_typed<T: GemmElem>(
    g: &Geometry,
    x: &[T],
    w: &[T],
    bias: Option<&[T]>,
    m: usize,
    out_sp: &[usize],
    total: usize,
) -> Result<Vec<T>, RuntimeError> {
    let mut out = vec![T::ZERO; total];
    let d = g.in_sp.len();
    let p_out: usize = out_sp.iter().product();
    let p_in: usize = g.in_sp.iter().product();
    let cg = g.in_ch / g.group;
    let mg = m / g.group;
    let kprod: usize = g.kernel.iter().product();
    let rows = mg * kprod;
    let per_image = m * p_out;
    if per_image == 0 || g.batch == 0 {
        return Ok(out);
    }
    let out_strides = strides_of(out_sp);
    let image = |(n, dst): (usize, &mut [T]), col: &mut Vec<T>| -> Result<(), RuntimeError> {
        if let Some(b) = bias {
            for (mi, row) in dst.chunks_mut(p_out).enumerate() {
                row.fill(b[mi]);
            }
        }
        col.resize(rows * p_in, T::ZERO);
        let mut kidx = vec![0usize; d];
        let mut iidx = vec![0usize; d];
        for gi in 0..g.group {
            let xg = &x[(n * g.in_ch + gi * cg) * p_in..(n * g.in_ch + (gi + 1) * cg) * p_in];
            let wg = &w[gi * cg * rows..(gi + 1) * cg * rows];
            // cols[rows, p_in] = W_g^T [rows, cg] · x_g [cg, p_in]
            let gemm = if g.batch > 1 {
                gemm_block::<T>
            } else {
                gemm_strided::<T>
            };
            gemm(
                "conv_transpose",
                rows,
                cg,
                p_in,
                T::ONE,
                MatRef {
                    data: wg,
                    rs: 1,
                    cs: rows,
                },
                MatRef {
                    data: xg,
                    rs: p_in,
                    cs: 1,
                },
                T::ZERO,
                col,
                p_in,
            )?;
            // col2im: scatter-add each column entry to its output position.
            for r in 0..rows {
                let mo = r / kprod;
                let mut rem = r % kprod;
                for j in (0..d).rev() {
                    kidx[j] = rem % g.kernel[j];
                    rem /= g.kernel[j];
                }
                let dst_c = &mut dst[(gi * mg + mo) * p_out..(gi * mg + mo + 1) * p_out];
                let src = &col[r * p_in..(r + 1) * p_in];
                iidx.fill(0);
                for (p, &v) in src.iter().enumerate() {
                    if p > 0 {
                        for j in (0..d).rev() {
                            iidx[j] += 1;
                            if iidx[j] < g.in_sp[j] {
                                break;
                            }
                            iidx[j] = 0;
                        }
                    }
                    let mut off = 0usize;
                    let mut inside = true;
                    for j in 0..d {
                        let o = (iidx[j] * g.strides[j] + kidx[j] * g.dilations[j]) as isize
                            - g.pads_begin[j] as isize;
                        if o < 0 || o as usize >= out_sp[j] {
                            inside = false;
                            break;
                        }
                        off += o as usize * out_strides[j];
                    }
                    if inside {
                        dst_c[off] = dst_c[off].add(v);
                    }
                }
            }
        }
        Ok(())
    };
    if g.batch == 1 {
        let mut col = Vec::new();
        image((0, &mut out[..]), &mut col)?;
    } else {
        out.par_chunks_mut(per_image)
            .enumerate()
            .try_for_each_init(Vec::new, |col, job| image(job, col))?;
    }
    Ok(out)
}
