//! Pooling kernels: windowed max/average (1-D to 3-D, pads, strides, dilations, ceil_mode,
//! count_include_pad) and global pooling, parallel over `N × C` planes.
//!
//! Semantics follow the ONNX reference: in ceil mode a last window that would start in the
//! end padding is dropped; MaxPool ignores padding; AveragePool divides by the number of
//! real input elements, or with `count_include_pad` by the number of taps inside the
//! explicitly padded input (taps past the end padding, which ceil mode can add, never count).

use rayon::prelude::*;
use strata_ir::ops::{GlobalPoolKind, Pool};
use strata_ir::{Tensor, TensorData};

use super::elementwise::Real;
use super::{checked_numel, make};
use crate::RuntimeError;

/// Element types MaxPool accepts, with the identity of `max`.
trait MaxElem: Copy + PartialOrd + Send + Sync {
    const LOWEST: Self;
}
impl MaxElem for f32 {
    const LOWEST: Self = f32::NEG_INFINITY;
}
impl MaxElem for f64 {
    const LOWEST: Self = f64::NEG_INFINITY;
}
impl MaxElem for i8 {
    const LOWEST: Self = i8::MIN;
}
impl MaxElem for u8 {
    const LOWEST: Self = u8::MIN;
}

/// Pool geometry lifted to exactly three spatial axes (missing leading axes have size 1).
struct Win {
    planes: usize,
    ins: [usize; 3],
    outs: [usize; 3],
    k: [usize; 3],
    s: [usize; 3],
    d: [usize; 3],
    pb: [usize; 3],
    pe: [usize; 3],
}

impl Win {
    /// Valid kernel taps `[lo, hi)` on axis `j` for output index `o`.
    #[inline]
    fn taps(&self, j: usize, o: usize) -> (usize, usize) {
        let start = (o * self.s[j]) as isize - self.pb[j] as isize;
        let dil = self.d[j] as isize;
        let lo = if start >= 0 {
            0
        } else {
            ((-start) as usize).div_ceil(self.d[j])
        };
        let limit = self.ins[j] as isize - start; // need kk*dil < limit
        let hi = if limit <= 0 {
            0
        } else {
            ((limit as usize).div_ceil(dil as usize)).min(self.k[j])
        };
        (lo.min(hi), hi)
    }
    #[inline]
    fn origin(&self, j: usize, o: usize) -> isize {
        (o * self.s[j]) as isize - self.pb[j] as isize
    }
}

fn geometry(op: &'static str, p: &Pool, x: &Tensor) -> Result<(Win, Vec<usize>), RuntimeError> {
    if x.rank() < 3 {
        return Err(RuntimeError::Shape {
            op,
            reason: format!(
                "input must be [N, C, spatial...] with at least one spatial axis, got {:?}",
                x.shape()
            ),
        });
    }
    let nd = x.rank() - 2;
    if nd > 3 {
        return Err(RuntimeError::Shape {
            op,
            reason: format!(
                "pooling supports 1 to 3 spatial axes, got {nd} (shape {:?})",
                x.shape()
            ),
        });
    }
    let or_default = |v: &[usize], n: usize, dflt: usize| {
        if v.is_empty() {
            vec![dflt; n]
        } else {
            v.to_vec()
        }
    };
    let strides = or_default(&p.strides, nd, 1);
    let dilations = or_default(&p.dilations, nd, 1);
    let pads = or_default(&p.pads, 2 * nd, 0);
    for (attr, v, want) in [
        ("kernel", &p.kernel, nd),
        ("strides", &strides, nd),
        ("dilations", &dilations, nd),
        ("pads", &pads, 2 * nd),
    ] {
        if v.len() != want {
            return Err(RuntimeError::Attribute {
                op,
                attr,
                reason: format!("has {} values, expected {want}", v.len()),
            });
        }
        if v.iter().any(|&x| x > 1 << 31) {
            return Err(RuntimeError::Attribute {
                op,
                attr,
                reason: format!("{v:?} exceeds {}", 1u64 << 31),
            });
        }
        if attr != "pads" && v.contains(&0) {
            return Err(RuntimeError::Attribute {
                op,
                attr,
                reason: "values must be positive".into(),
            });
        }
    }
    let in_sp = &x.shape()[2..];
    let mut out_sp = Vec::with_capacity(nd);
    for j in 0..nd {
        let span = (p.kernel[j] - 1)
            .saturating_mul(dilations[j])
            .saturating_add(1);
        let padded = in_sp[j]
            .saturating_add(pads[j])
            .saturating_add(pads[nd + j]);
        if padded < span {
            return Err(RuntimeError::Shape {
                op,
                reason: format!("spatial axis {j}: padded input size {padded} is smaller than the dilated kernel {span}"),
            });
        }
        let mut o = if p.ceil_mode {
            (padded - span).div_ceil(strides[j]) + 1
        } else {
            (padded - span) / strides[j] + 1
        };
        if p.ceil_mode && (o - 1).saturating_mul(strides[j]) >= in_sp[j].saturating_add(pads[j]) {
            o -= 1;
        }
        out_sp.push(o);
    }
    let lift = |v: &[usize], fill: usize| {
        let mut a = [fill; 3];
        a[3 - v.len()..].copy_from_slice(v);
        a
    };
    let win = Win {
        planes: x.shape()[0] * x.shape()[1],
        ins: lift(in_sp, 1),
        outs: lift(&out_sp, 1),
        k: lift(&p.kernel, 1),
        s: lift(&strides, 1),
        d: lift(&dilations, 1),
        pb: lift(&pads[..nd], 0),
        pe: lift(&pads[nd..], 0),
    };
    let mut out_shape = x.shape()[..2].to_vec();
    out_shape.extend(out_sp);
    checked_numel(op, &out_shape)?;
    Ok((win, out_shape))
}

/// Runs `f(plane_input, plane_output)` over every `N × C` plane, in parallel when large.
fn per_plane<T: Copy + Send + Sync + Default>(
    x: &[T],
    w: &Win,
    f: impl Fn(&[T], &mut [T]) + Sync + Send,
) -> Vec<T> {
    let pin: usize = w.ins.iter().product();
    let pout: usize = w.outs.iter().product();
    let mut out = vec![T::default(); w.planes * pout];
    if pout == 0 || pin == 0 {
        return out;
    }
    if out.len() >= 1 << 14 {
        out.par_chunks_mut(pout)
            .zip(x.par_chunks(pin))
            .for_each(|(o, i)| f(i, o));
    } else {
        out.chunks_mut(pout)
            .zip(x.chunks(pin))
            .for_each(|(o, i)| f(i, o));
    }
    out
}

/// Per-axis table of `(first tap, end tap, window origin)` for every output index, so the
/// inner loops do no window arithmetic.
/// The fourth field counts the taps inside the padded input (`count_include_pad` divisor).
type Taps = [Vec<(usize, usize, isize, usize)>; 3];

fn tap_tables(w: &Win) -> Taps {
    let axis = |j: usize| {
        (0..w.outs[j])
            .map(|o| {
                let (lo, hi) = w.taps(j, o);
                let origin = w.origin(j, o);
                // Taps with origin + kk·d < in + pad_end; origin >= -pad_begin always holds.
                let limit = w.ins[j] as isize + w.pe[j] as isize - origin;
                let padded = if limit <= 0 {
                    0
                } else {
                    (limit as usize).div_ceil(w.d[j]).min(w.k[j])
                };
                (lo, hi, origin, padded)
            })
            .collect()
    };
    [axis(0), axis(1), axis(2)]
}

fn max_plane<T: MaxElem>(w: &Win, t: &Taps, x: &[T], y: &mut [T]) {
    let (h_in, w_in) = (w.ins[1], w.ins[2]);
    let mut idx = 0;
    for &(d0, d1, bd, _) in &t[0] {
        for &(h0, h1, bh, _) in &t[1] {
            for &(w0, w1, bw, _) in &t[2] {
                let mut best = T::LOWEST;
                for kd in d0..d1 {
                    let id = (bd + (kd * w.d[0]) as isize) as usize;
                    for kh in h0..h1 {
                        let ih = (bh + (kh * w.d[1]) as isize) as usize;
                        let row = (id * h_in + ih) * w_in;
                        for kw in w0..w1 {
                            let iw = (bw + (kw * w.d[2]) as isize) as usize;
                            let v = x[row + iw];
                            if v > best {
                                best = v;
                            }
                        }
                    }
                }
                y[idx] = best;
                idx += 1;
            }
        }
    }
}

fn avg_plane<T: Real>(w: &Win, t: &Taps, include_pad: bool, x: &[T], y: &mut [T]) {
    let (h_in, w_in) = (w.ins[1], w.ins[2]);
    let mut idx = 0;
    for &(d0, d1, bd, dp) in &t[0] {
        for &(h0, h1, bh, hp) in &t[1] {
            for &(w0, w1, bw, wp) in &t[2] {
                let mut sum = T::ZERO;
                for kd in d0..d1 {
                    let id = (bd + (kd * w.d[0]) as isize) as usize;
                    for kh in h0..h1 {
                        let ih = (bh + (kh * w.d[1]) as isize) as usize;
                        let row = (id * h_in + ih) * w_in;
                        for kw in w0..w1 {
                            let iw = (bw + (kw * w.d[2]) as isize) as usize;
                            sum = sum.add(x[row + iw]);
                        }
                    }
                }
                let count = if include_pad {
                    T::from_f64((dp * hp * wp) as f64)
                } else {
                    T::from_f64(((d1 - d0) * (h1 - h0) * (w1 - w0)) as f64)
                };
                y[idx] = sum.div(count);
                idx += 1;
            }
        }
    }
}

/// ONNX MaxPool (f32, f64, i8, u8).
pub fn max_pool(p: &Pool, x: &Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "max_pool";
    let (w, shape) = geometry(OP, p, x)?;
    let t = tap_tables(&w);
    let data = match x.data() {
        TensorData::F32(v) => TensorData::F32(per_plane(v, &w, |i, o| max_plane(&w, &t, i, o))),
        TensorData::F64(v) => TensorData::F64(per_plane(v, &w, |i, o| max_plane(&w, &t, i, o))),
        TensorData::I8(v) => TensorData::I8(per_plane(v, &w, |i, o| max_plane(&w, &t, i, o))),
        TensorData::U8(v) => TensorData::U8(per_plane(v, &w, |i, o| max_plane(&w, &t, i, o))),
        _ => {
            return Err(RuntimeError::UnsupportedDType {
                op: OP,
                input: 0,
                dtype: x.dtype(),
            })
        }
    };
    make(OP, shape, data)
}

/// ONNX AveragePool (f32, f64).
pub fn average_pool(p: &Pool, x: &Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "average_pool";
    let (w, shape) = geometry(OP, p, x)?;
    let inc = p.count_include_pad;
    let t = tap_tables(&w);
    let data = match x.data() {
        TensorData::F32(v) => {
            TensorData::F32(per_plane(v, &w, |i, o| avg_plane(&w, &t, inc, i, o)))
        }
        TensorData::F64(v) => {
            TensorData::F64(per_plane(v, &w, |i, o| avg_plane(&w, &t, inc, i, o)))
        }
        _ => {
            return Err(RuntimeError::UnsupportedDType {
                op: OP,
                input: 0,
                dtype: x.dtype(),
            })
        }
    };
    make(OP, shape, data)
}

/// GlobalAveragePool / GlobalMaxPool over every spatial axis → `[N, C, 1, …]` (f32, f64).
pub fn global_pool(kind: GlobalPoolKind, x: &Tensor) -> Result<Tensor, RuntimeError> {
    let op = match kind {
        GlobalPoolKind::Average => "global_average_pool",
        GlobalPoolKind::Max => "global_max_pool",
    };
    if x.rank() < 2 {
        return Err(RuntimeError::Shape {
            op,
            reason: format!("input must be [N, C, ...], got {:?}", x.shape()),
        });
    }
    let planes = x.shape()[0] * x.shape()[1];
    let area: usize = x.shape()[2..].iter().product();
    let mut shape = x.shape()[..2].to_vec();
    shape.extend(std::iter::repeat_n(1, x.rank() - 2));
    fn go<T: Real>(v: &[T], planes: usize, area: usize, kind: GlobalPoolKind) -> Vec<T> {
        if area == 0 {
            let fill = match kind {
                GlobalPoolKind::Average => T::ZERO.div(T::ZERO),
                GlobalPoolKind::Max => T::NEG_INF,
            };
            return vec![fill; planes];
        }
        v.chunks(area)
            .map(|c| match kind {
                GlobalPoolKind::Average => {
                    let s = c.iter().fold(0.0f64, |a, &b| a + b.to_f64());
                    T::from_f64(s / area as f64)
                }
                GlobalPoolKind::Max => c.iter().fold(T::NEG_INF, |a, &b| if b > a { b } else { a }),
            })
            .collect()
    }
    let data = match x.data() {
        TensorData::F32(v) => TensorData::F32(go(v, planes, area, kind)),
        TensorData::F64(v) => TensorData::F64(go(v, planes, area, kind)),
        _ => {
            return Err(RuntimeError::UnsupportedDType {
                op,
                input: 0,
                dtype: x.dtype(),
            })
        }
    };
    make(op, shape, data)
}
