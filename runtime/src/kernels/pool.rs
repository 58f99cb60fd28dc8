//! Pooling kernels: windowed max/average (1-D to 3-D, pads, strides, dilations, ceil_mode,
//! count_include_pad) and global pooling, parallel over `N × C` planes.
//!
//! Semantics follow the ONNX reference: in ceil mode a last window that would start in the
//! end padding is dropped; MaxPool ignores padding; AveragePool divides by the number of
//! real input elements, or with `count_include_pad` by the number of taps inside the
//! explicitly padded input (taps past the end padding, which ceil mode can add, never count).

use strata_ir::ops::{GlobalPoolKind, Pool};
use strata_ir::Tensor;

use super::elementwise::Real;
use super::window::{check_attr, spatial_axes, valid_range, window_slack};
use super::{checked_numel, for_each_chunk, make, map_data};
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
        valid_range(self.origin(j, o), self.d[j], self.ins[j], self.k[j])
    }
    #[inline]
    fn origin(&self, j: usize, o: usize) -> isize {
        (o * self.s[j]) as isize - self.pb[j] as isize
    }
}

fn geometry(op: &'static str, p: &Pool, x: &Tensor) -> Result<(Win, Vec<usize>), RuntimeError> {
    let nd = spatial_axes(op, x)?;
    if nd > 3 {
        return Err(RuntimeError::shape(
            op,
            format!(
                "pooling supports 1 to 3 spatial axes, got {nd} (shape {:?})",
                x.shape()
            ),
        ));
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
    check_attr(op, "kernel", &p.kernel, nd, true)?;
    check_attr(op, "strides", &strides, nd, true)?;
    check_attr(op, "dilations", &dilations, nd, true)?;
    check_attr(op, "pads", &pads, 2 * nd, false)?;
    let in_sp = &x.shape()[2..];
    let mut out_sp = Vec::with_capacity(nd);
    for j in 0..nd {
        let both = (pads[j], pads[nd + j]);
        let slack = window_slack(op, j, in_sp[j], p.kernel[j], dilations[j], both)?;
        let mut o = if p.ceil_mode {
            slack.div_ceil(strides[j]) + 1
        } else {
            slack / strides[j] + 1
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
    let par = out.len() >= 1 << 14;
    for_each_chunk(&mut out, pout, par, |i, o| f(&x[i * pin..(i + 1) * pin], o));
    out
}

/// Per-axis table of `(first tap, end tap, window origin)` for every output index, so the
/// inner loops do no window arithmetic.
/// The fourth field counts the taps inside the padded input (`count_include_pad` divisor).
type Tap = (usize, usize, isize, usize);
type Taps = [Vec<Tap>; 3];

fn tap_tables(w: &Win) -> Taps {
    let axis = |j: usize| {
        (0..w.outs[j])
            .map(|o| {
                let (lo, hi) = w.taps(j, o);
                let origin = w.origin(j, o);
                // Taps with origin + kk·d < in + pad_end; origin >= -pad_begin always holds.
                let (_, padded) = valid_range(origin, w.d[j], w.ins[j] + w.pe[j], w.k[j]);
                (lo, hi, origin, padded)
            })
            .collect()
    };
    [axis(0), axis(1), axis(2)]
}

/// Folds `step` over the real input taps of every output window of one plane (from `init`,
/// in kernel order) and stores `finish(acc, window)`; shared by max and average pooling.
fn pool_plane<T: Copy>(
    w: &Win,
    t: &Taps,
    (x, y): (&[T], &mut [T]),
    init: T,
    step: impl Fn(T, T) -> T,
    finish: impl Fn(T, [&Tap; 3]) -> T,
) {
    let (h_in, w_in) = (w.ins[1], w.ins[2]);
    let mut idx = 0;
    for td in &t[0] {
        for th in &t[1] {
            for tw in &t[2] {
                let (&(d0, d1, bd, _), &(h0, h1, bh, _), &(w0, w1, bw, _)) = (td, th, tw);
                let mut acc = init;
                for kd in d0..d1 {
                    let id = (bd + (kd * w.d[0]) as isize) as usize;
                    for kh in h0..h1 {
                        let ih = (bh + (kh * w.d[1]) as isize) as usize;
                        let row = (id * h_in + ih) * w_in;
                        for kw in w0..w1 {
                            let iw = (bw + (kw * w.d[2]) as isize) as usize;
                            acc = step(acc, x[row + iw]);
                        }
                    }
                }
                y[idx] = finish(acc, [td, th, tw]);
                idx += 1;
            }
        }
    }
}

fn max_plane<T: MaxElem>(w: &Win, t: &Taps, x: &[T], y: &mut [T]) {
    let max = |best, v| if v > best { v } else { best };
    if is_2x2_stride_2(w) {
        // The CNN pool: no tap tables, no index arithmetic per tap, the same comparisons in the
        // same order (row 0 then row 1, left then right), so the same result, NaN included.
        let (w_in, w_out) = (w.ins[2], w.outs[2]);
        for (oh, row) in y.chunks_exact_mut(w_out).enumerate() {
            let r0 = &x[2 * oh * w_in..][..2 * w_out];
            let r1 = &x[(2 * oh + 1) * w_in..][..2 * w_out];
            for ((o, a), b) in row
                .iter_mut()
                .zip(r0.chunks_exact(2))
                .zip(r1.chunks_exact(2))
            {
                *o = max(max(max(max(T::LOWEST, a[0]), a[1]), b[0]), b[1]);
            }
        }
        return;
    }
    pool_plane(w, t, (x, y), T::LOWEST, max, |best, _| best);
}

/// A 2-D 2×2 window at stride 2, undilated and unpadded, whose every window lies inside the
/// input (so ceil mode added no partial window).
fn is_2x2_stride_2(w: &Win) -> bool {
    w.ins[0] == 1
        && w.k == [1, 2, 2]
        && w.s == [1, 2, 2]
        && w.d == [1, 1, 1]
        && w.pb == [0; 3]
        && w.pe == [0; 3]
        && 2 * w.outs[1] <= w.ins[1]
        && 2 * w.outs[2] <= w.ins[2]
}

fn avg_plane<T: Real>(w: &Win, t: &Taps, include_pad: bool, x: &[T], y: &mut [T]) {
    pool_plane(w, t, (x, y), T::ZERO, T::add, |sum, [d, h, w]| {
        let count = if include_pad {
            T::from_f64((d.3 * h.3 * w.3) as f64)
        } else {
            T::from_f64(((d.1 - d.0) * (h.1 - h.0) * (w.1 - w.0)) as f64)
        };
        sum.div(count)
    });
}

/// ONNX MaxPool (f32, f64, i8, u8).
pub fn max_pool(p: &Pool, x: &Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "max_pool";
    let (w, shape) = geometry(OP, p, x)?;
    let t = tap_tables(&w);
    let data = map_data!(OP, x, [F32, F64, I8, U8], |v| {
        per_plane(v, &w, |i, o| max_plane(&w, &t, i, o))
    })?;
    make(OP, shape, data)
}

/// ONNX AveragePool (f32, f64).
pub fn average_pool(p: &Pool, x: &Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "average_pool";
    let (w, shape) = geometry(OP, p, x)?;
    let inc = p.count_include_pad;
    let t = tap_tables(&w);
    let data = map_data!(OP, x, [F32, F64], |v| {
        per_plane(v, &w, |i, o| avg_plane(&w, &t, inc, i, o))
    })?;
    make(OP, shape, data)
}

/// GlobalAveragePool / GlobalMaxPool over every spatial axis → `[N, C, 1, …]` (f32, f64).
pub fn global_pool(kind: GlobalPoolKind, x: &Tensor) -> Result<Tensor, RuntimeError> {
    let op = match kind {
        GlobalPoolKind::Average => "global_average_pool",
        GlobalPoolKind::Max => "global_max_pool",
    };
    if x.rank() < 2 {
        return Err(RuntimeError::shape(
            op,
            format!("input must be [N, C, ...], got {:?}", x.shape()),
        ));
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
    let data = map_data!(op, x, [F32, F64], |v| go(v, planes, area, kind))?;
    make(op, shape, data)
}
