//! Pooling gradients: MaxPool routes each output gradient to the first maximal tap of its
//! window (ties broken like the forward scan), AveragePool spreads it over the window with
//! the forward divisor, global pools over the whole plane. Parallel over `N × C` planes.

use rayon::prelude::*;
use strata_ir::ops::{GlobalPoolKind, Pool};

use super::{Ctx, Grads};
use crate::kernels::checked_numel;
use crate::kernels::index::unravel;
use crate::RuntimeError;

/// Per output position: the flat input indices of its real (non-padding) taps, in kernel
/// order, and the AveragePool divisor.
struct Windows {
    taps: Vec<Vec<usize>>,
    divisor: Vec<f32>,
    p_in: usize,
    p_out: usize,
}

fn windows(p: &Pool, cx: &Ctx) -> Result<Windows, RuntimeError> {
    let (op, x, grad) = (cx.op, cx.inputs[0], cx.grad);
    if x.rank() < 3 || grad.rank() != x.rank() || grad.shape()[..2] != x.shape()[..2] {
        return Err(RuntimeError::shape(
            op,
            format!(
                "input {:?} and output gradient {:?} must be [N, C, spatial...] with equal N, C",
                x.shape(),
                grad.shape()
            ),
        ));
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
        unravel(o, out_sp, &mut oi);
        let (mut list, mut padded_count) = (Vec::new(), 0usize);
        for kk in 0..kprod {
            unravel(kk, &p.kernel, &mut ki);
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

/// The input gradient, from `f(plane_x, plane_grad, plane_dx)` run on every `N × C` plane.
fn per_plane<F>(cx: &Ctx, w: &Windows, f: F) -> Grads
where
    F: Fn(&[f32], &[f32], &mut [f32]) + Sync,
{
    let (xv, gv) = (cx.x(0)?, cx.dy);
    let mut dx = vec![0f32; xv.len()];
    if w.p_in > 0 && w.p_out > 0 {
        dx.par_chunks_mut(w.p_in)
            .zip(xv.par_chunks(w.p_in))
            .zip(gv.par_chunks(w.p_out))
            .for_each(|((d, xp), gp)| f(xp, gp, d));
    }
    Ok(vec![cx.entry(cx.inputs[0].shape(), dx)?])
}

pub(super) fn max_pool(p: &Pool, cx: &Ctx) -> Grads {
    let w = windows(p, cx)?;
    per_plane(cx, &w, |xp, gp, d| {
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
    })
}

pub(super) fn average_pool(p: &Pool, cx: &Ctx) -> Grads {
    let w = windows(p, cx)?;
    per_plane(cx, &w, |_, gp, d| {
        for (o, list) in w.taps.iter().enumerate() {
            let share = gp[o] / w.divisor[o];
            for &t in list {
                d[t] += share;
            }
        }
    })
}

pub(super) fn global_pool(kind: GlobalPoolKind, cx: &Ctx) -> Grads {
    let (x, grad) = (cx.inputs[0], cx.grad);
    let (xv, gv) = (cx.x(0)?, cx.dy);
    if x.rank() < 2
        || grad.shape().len() != x.rank()
        || grad.shape()[..2] != x.shape()[..2]
        || grad.shape()[2..].iter().any(|&d| d != 1)
    {
        return Err(RuntimeError::shape(
            cx.op,
            format!(
                "input {:?} and output gradient {:?} must be [N, C, ...] and [N, C, 1, ...]",
                x.shape(),
                grad.shape()
            ),
        ));
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
    Ok(vec![cx.entry(x.shape(), dx)?])
}
