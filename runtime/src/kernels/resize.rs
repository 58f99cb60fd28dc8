//! Resize: nearest and linear interpolation, one axis at a time (separable, so an N-D linear
//! resize is the product of 1-D ones, as in the ONNX reference).

use strata_ir::ops::{CoordMode, NearestMode, Resize, ResizeMode};
use strata_ir::{Tensor, TensorData};

use super::{checked_numel, make};
use crate::RuntimeError;

const OP: &str = "resize";

/// Where output index `x` of an axis samples the input: ONNX's coordinate transformations,
/// as the reference implements them (`n`: input length; `m`: output length; `s`: the axis's
/// scale; `s·n`, the unrounded output length, is what align_corners and pytorch_half_pixel
/// divide by).
pub fn source_coord(coord: CoordMode, x: usize, s: f64, n: usize, m: usize) -> f64 {
    let (x, n, m) = (x as f64, n as f64, m as f64);
    let width = s * n;
    match coord {
        CoordMode::HalfPixel => (x + 0.5) / s - 0.5,
        CoordMode::HalfPixelSymmetric => {
            let adjustment = m / width;
            let center = n / 2.0;
            center * (1.0 - adjustment) + (x + 0.5) / s - 0.5
        }
        CoordMode::PytorchHalfPixel if width == 1.0 => -0.5,
        CoordMode::PytorchHalfPixel => (x + 0.5) / s - 0.5,
        CoordMode::AlignCorners if width == 1.0 => 0.0,
        CoordMode::AlignCorners => x * (n - 1.0) / (width - 1.0),
        CoordMode::Asymmetric => x / s,
        CoordMode::TfHalfPixelForNn => (x + 0.5) / s,
    }
}

/// The input index nearest mode picks for coordinate `c`, clamped into `0..n` (the
/// reference pads the input with its edge values).
pub fn nearest_index(mode: NearestMode, c: f64, n: usize) -> usize {
    let f = c.floor();
    let frac = c - f;
    let i = if frac == 0.0 {
        f
    } else {
        match mode {
            NearestMode::RoundPreferFloor if frac <= 0.5 => f,
            NearestMode::RoundPreferCeil if frac < 0.5 => f,
            NearestMode::Floor => f,
            _ => f + 1.0,
        }
    };
    i.clamp(0.0, (n - 1) as f64) as usize
}

/// How one output index of an axis is made: `(i0, i1, w)` → `(1 − w)·x[i0] + w·x[i1]` (only
/// `x[i0]` when `w` is 0). Public so that code generators interpolate with the very same taps.
pub fn taps(r: &Resize, axis: usize, n: usize, m: usize) -> Vec<(usize, usize, f64)> {
    let s = r.scales[axis] as f64;
    (0..m)
        .map(|x| {
            let c = source_coord(r.coord, x, s, n, m);
            match r.mode {
                ResizeMode::Nearest => {
                    let i = nearest_index(r.nearest, c, n);
                    (i, i, 0.0)
                }
                ResizeMode::Linear => {
                    let c = c.clamp(0.0, (n - 1) as f64);
                    let i0 = c.floor() as usize;
                    let i1 = (i0 + 1).min(n - 1);
                    (i0, i1, c - i0 as f64)
                }
            }
        })
        .collect()
}

/// Resizes axis `axis` of `v` (row-major over `shape`) to `m` elements.
fn resize_axis(r: &Resize, v: &[f64], shape: &[usize], axis: usize, m: usize) -> Vec<f64> {
    let n = shape[axis];
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    let taps = taps(r, axis, n, m);
    let mut out = Vec::with_capacity(outer * m * inner);
    for o in 0..outer {
        for &(i0, i1, w) in &taps {
            let (a, b) = ((o * n + i0) * inner, (o * n + i1) * inner);
            for i in 0..inner {
                out.push(if w == 0.0 {
                    v[a + i]
                } else {
                    (1.0 - w) * v[a + i] + w * v[b + i]
                });
            }
        }
    }
    out
}

/// Resize per [`Resize`]: an axis with scale 1 keeps its size, any other gets `sizes[i]`.
pub fn resize(r: &Resize, t: &Tensor) -> Result<Tensor, RuntimeError> {
    let rank = t.rank();
    for (attr, len) in [("scales", r.scales.len()), ("sizes", r.sizes.len())] {
        if len != rank {
            let reason = format!("has {len} values for an input of rank {rank}");
            return Err(RuntimeError::attribute(OP, attr, reason));
        }
    }
    if let Some(s) = r.scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        let reason = format!("{s} is not a positive finite scale");
        return Err(RuntimeError::attribute(OP, "scales", reason));
    }
    let mut shape = t.shape().to_vec();
    let out_shape: Vec<usize> = (0..rank)
        .map(|i| {
            if r.scales[i] == 1.0 {
                shape[i]
            } else {
                r.sizes[i]
            }
        })
        .collect();
    checked_numel(OP, &out_shape)?;
    if let Some(i) = (0..rank).find(|&i| shape[i] == 0 && out_shape[i] > 0) {
        let reason = format!("axis {i} of {shape:?} is empty and cannot be resized");
        return Err(RuntimeError::Shape { op: OP, reason });
    }
    let mut v = t.to_f64_vec();
    for axis in 0..rank {
        // A scale-1 axis is the identity under every transformation but tf_half_pixel_for_nn.
        let identity = r.scales[axis] == 1.0 && r.coord != CoordMode::TfHalfPixelForNn;
        if identity || out_shape[axis] == 0 || v.is_empty() {
            shape[axis] = out_shape[axis];
            if out_shape[axis] == 0 {
                v.clear();
            }
            continue;
        }
        v = resize_axis(r, &v, &shape, axis, out_shape[axis]);
        shape[axis] = out_shape[axis];
    }
    let data = match t.data() {
        TensorData::F32(_) => TensorData::F32(v.into_iter().map(|x| x as f32).collect()),
        TensorData::F64(_) => TensorData::F64(v),
        _ => return Err(RuntimeError::unsupported(OP, 0, t.dtype())),
    };
    make(OP, out_shape, data)
}
