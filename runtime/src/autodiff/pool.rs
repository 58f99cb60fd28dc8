//! Pooling gradients: MaxPool routes each output gradient to the first maximal tap of its
//! window (ties broken like the forward scan), AveragePool spreads it over the window with
//! the forward divisor, global pools over the whole plane. Parallel over `N × C` planes.

use rayon::prelude::*;
use strata_ir::ops::{GlobalPoolKind, Pool};
use strata_ir::Tensor;

use super::{f32_tensor, f32s};
use crate::kernels::checked_numel;
use crate::RuntimeError;

/// Per output position: the flat input indices of its real (non-padding) taps, in kernel
/// order, and the AveragePool divisor.
struct Windows {
    taps: Vec<Vec<usize>>,
    divisor: Vec<f32>,
    p_in: usize,
    p_out: usize,
}

fn windows(op: &'static str, p: &Pool, x: &Tensor, grad: &Tensor) -> Result<Windows, RuntimeError> {
    if x.rank() < 3 || grad.rank() != x.rank() || grad.shape()[..2] != x.shape()[..2] {
        return Err(RuntimeError::Shape {
            op,
            reason: format!(
                "input {:?} and output gradient {:?} must be [N, C, spatial...] with equal N, C",
                x.shape(),
                grad.shape()
            ),
        });
    }
    let nd = x.rank() - 2;
    let or = |v: &[usize], n: usize, dflt: usize| {
        if v.is_empty() {
            vec![dflt; n]
        } else {
            v.to_vec()
        }
    };
    let (s, dl, pads) = (
        or(&p.strides, nd, 1),
        or(&p.dilations, nd, 1),
        or(&p.pads, 2 * nd, 0),
    );
    if p.kernel.len() != nd || s.len() != nd || dl.len() != nd || pads.len() != 2 * nd {
        return Err(RuntimeError::Attribute {
            op,
            attr: "kernel/strides/dilations/pads",
            reason: format!("lengths must match {nd} spatial axes"),
        });
    }
    let (in_sp, out_sp) = (&x.shape()[2..], &grad.shape()[2..]);
    let p_in: usize = in_sp.iter().product();
    let p_out = checked_numel(op, out_sp)?;
    let kprod = checked_numel(op, &p.kernel)?;
    checked_numel(op, &[p_out, kprod])?;
    let mut taps = Vec::with_capacity(p_out);
    let mut divisor = Vec::with_capacity(p_out);
    let (mut oi, mut ki) = (vec![0usize; nd], vec![0usize; nd]);
    for o in 0..p_out {
        let mut rem = o;
        for j in (0..nd).rev() {
            oi[j] = rem % out_sp[j];
            rem /= out_sp[j];
        }
        let (mut list, mut padded_count) = (Vec::new(), 0usize);
        for kk in 0..kprod {
            let mut rem = kk;
            for j in (0..nd).rev() {
                ki[j] = rem % p.kernel[j];
                rem /= p.kernel[j];
            }
            let (mut flat, mut real, mut in_padded) = (0usize, true, true);
            for j in 0..nd {
                let ix = (oi[j] * s[j] + ki[j] * dl[j]) as isize - pads[j] as isize;
                if ix < -(pads[j] as isize) || ix >= (in_sp[j] + pads[nd + j]) as isize {
                    in_padded = false;
                }
                if ix < 0 || ix as usize >= in_sp[j] {
                    real = false;
                } else {
                    flat = flat * in_sp[j] + ix as usize;
                }
            }
            padded_count += in_padded as usize;
            if real {
                list.push(flat);
            }
        }
        let count = if p.count_include_pad {
            padded_count
        } else {
            list.len()
        };
        divisor.push(count.max(1) as f32);
        taps.push(list);
    }
    Ok(Windows {
        taps,
        divisor,
        p_in,
        p_out,
    })
}

/// Runs `f(plane_x, plane_grad, plane_dx)` over every `N × C` plane.
fn per_plane<F>(
    op: &'static str,
    x: &Tensor,
    grad: &Tensor,
    w: &Windows,
    f: F,
) -> Result<Tensor, RuntimeError>
where
    F: Fn(&[f32], &[f32], &mut [f32]) + Sync,
{
    let (xv, gv) = (f32s(op, x, 0)?, f32s(op, grad, usize::MAX)?);
    let mut dx = vec![0f32; xv.len()];
    if w.p_in > 0 && w.p_out > 0 {
        dx.par_chunks_mut(w.p_in)
            .zip(xv.par_chunks(w.p_in))
            .zip(gv.par_chunks(w.p_out))
            .for_each(|((d, xp), gp)| f(xp, gp, d));
    }
    f32_tensor(op, x.shape(), dx)
}

pub(super) fn max_pool(
    p: &Pool,
    x: &Tensor,
    _output: &Tensor,
    grad: &Tensor,
) -> Result<Vec<Option<Tensor>>, RuntimeError> {
    const OP: &str = "max_pool";
    let w = windows(OP, p, x, grad)?;
    let dx = per_plane(OP, x, grad, &w, |xp, gp, d| {
        for (o, list) in w.taps.iter().enumerate() {
            let mut best: Option<usize> = None;
            for &t in list {
                if best.is_none_or(|b| xp[t] > xp[b]) {
                    best = Some(t);
                }
            }
            if let Some(b) = best {
                d[b] += gp[o];
            }
        }
    })?;
    Ok(vec![Some(dx)])
}

pub(super) fn average_pool(
    p: &Pool,
    x: &Tensor,
    grad: &Tensor,
) -> Result<Vec<Option<Tensor>>, RuntimeError> {
    const OP: &str = "average_pool";
    let w = windows(OP, p, x, grad)?;
    let dx = per_plane(OP, x, grad, &w, |_, gp, d| {
        for (o, list) in w.taps.iter().enumerate() {
            let share = gp[o] / w.divisor[o];
            for &t in list {
                d[t] += share;
            }
        }
    })?;
    Ok(vec![Some(dx)])
}

pub(super) fn global_pool(
    kind: GlobalPoolKind,
    x: &Tensor,
    grad: &Tensor,
) -> Result<Vec<Option<Tensor>>, RuntimeError> {
    const OP: &str = "global_pool";
    let (xv, gv) = (f32s(OP, x, 0)?, f32s(OP, grad, usize::MAX)?);
    if x.rank() < 2
        || grad.shape().len() != x.rank()
        || grad.shape()[..2] != x.shape()[..2]
        || grad.shape()[2..].iter().any(|&d| d != 1)
    {
        return Err(RuntimeError::Shape {
            op: OP,
            reason: format!(
                "input {:?} and output gradient {:?} must be [N, C, ...] and [N, C, 1, ...]",
                x.shape(),
                grad.shape()
            ),
        });
    }
    let p: usize = x.shape()[2..].iter().product();
    let mut dx = vec![0f32; xv.len()];
    if p > 0 {
        for ((d, xp), &g) in dx.chunks_mut(p).zip(xv.chunks(p)).zip(gv) {
            match kind {
                GlobalPoolKind::Average => d.iter_mut().for_each(|v| *v = g / p as f32),
                GlobalPoolKind::Max => {
                    let mut best = 0;
                    for (i, &v) in xp.iter().enumerate() {
                        if v > xp[best] {
                            best = i;
                        }
                    }
                    d[best] = g;
                }
            }
        }
    }
    Ok(vec![Some(f32_tensor(OP, x.shape(), dx)?)])
}
