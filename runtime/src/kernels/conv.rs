//! Convolution kernels: N-d Conv via im2col + GEMM, ConvTranspose via GEMM + col2im.
//! Both are parallel over the batch; each worker reuses one column buffer, so memory stays
//! at one image's columns per thread however large the batch.

use rayon::prelude::*;
use strata_ir::ops::{Conv, ConvTranspose};
use strata_ir::Tensor;

use super::elementwise::Arith;
use super::index::{next_index, offset_inside, unravel};
use super::linear::{gemm_into, GemmElem, MatRef};
use super::window::{check_attr, spatial_axes_of, valid_range, window_slack};
use super::{checked_numel, make, map_data, same_dtype, strides_of};
use crate::RuntimeError;

/// Validated geometry shared by both convolutions and the Conv gradient: the input side from
/// [`geometry`], the output side once the op has worked it out ([`Geometry::set_output`]).
pub(crate) struct Geometry {
    pub(crate) batch: usize,
    pub(crate) in_ch: usize,
    pub(crate) in_sp: Vec<usize>,
    pub(crate) kernel: Vec<usize>,
    pub(crate) strides: Vec<usize>,
    pub(crate) dilations: Vec<usize>,
    pub(crate) pads_begin: Vec<usize>,
    pub(crate) pads_end: Vec<usize>,
    pub(crate) group: usize,
    /// Elements of one input channel, taps of the kernel window, input channels per group.
    pub(crate) p_in: usize,
    pub(crate) kprod: usize,
    pub(crate) cg: usize,
    /// Output channels (in all, per group), spatial shape, elements per channel and in all.
    pub(crate) m: usize,
    pub(crate) mg: usize,
    pub(crate) out_sp: Vec<usize>,
    pub(crate) p_out: usize,
    pub(crate) total: usize,
}

/// A 2-D convolution's window, the common case, for which im2col and col2im spell the index
/// arithmetic out per output row (the N-d walk costs more than copying a 7–28 float row).
struct Plane {
    /// Input and output height and width.
    ih: usize,
    iw: usize,
    oh: usize,
    ow: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    dh: usize,
    dw: usize,
    ph: isize,
    pw: isize,
}

impl Plane {
    fn of(g: &Geometry) -> Option<Plane> {
        let [ih, iw] = g.in_sp[..] else {
            return None;
        };
        Some(Plane {
            ih,
            iw,
            oh: g.out_sp[0],
            ow: g.out_sp[1],
            kh: g.kernel[0],
            kw: g.kernel[1],
            sh: g.strides[0],
            sw: g.strides[1],
            dh: g.dilations[0],
            dw: g.dilations[1],
            ph: g.pads_begin[0] as isize,
            pw: g.pads_begin[1] as isize,
        })
    }

    /// For kernel tap `(ky, kx)`: the output rows `oy_lo..oy_hi` whose input row exists, the
    /// output columns `lo..hi` whose input column exists, and the input column of output
    /// column `lo` (valid when `lo < hi`).
    fn tap(&self, ky: usize, kx: usize) -> (usize, usize, usize, usize, usize) {
        let y0 = (ky * self.dh) as isize - self.ph;
        let (oy_lo, oy_hi) = valid_range(y0, self.sh, self.ih, self.oh);
        let x0 = (kx * self.dw) as isize - self.pw;
        let (lo, hi) = valid_range(x0, self.sw, self.iw, self.ow);
        let start = if lo < hi {
            ((lo * self.sw) as isize + x0) as usize
        } else {
            0
        };
        (oy_lo, oy_hi, lo, hi, start)
    }

    fn in_row(&self, ky: usize, oy: usize) -> usize {
        ((oy * self.sh + ky * self.dh) as isize - self.ph) as usize
    }

    fn im2col<T: Arith>(&self, cg: usize, xg: &[T], col: &mut [T], fill: T) {
        let (p_in, p_out, ow, iw, sw) = (
            self.ih * self.iw,
            self.oh * self.ow,
            self.ow,
            self.iw,
            self.sw,
        );
        let mut rows = col.chunks_exact_mut(p_out.max(1));
        for xc in xg.chunks_exact(p_in.max(1)).take(cg) {
            for ky in 0..self.kh {
                for kx in 0..self.kw {
                    let Some(row) = rows.next() else {
                        return;
                    };
                    let (oy_lo, oy_hi, lo, hi, start) = self.tap(ky, kx);
                    if lo >= hi || oy_lo >= oy_hi {
                        row.fill(fill);
                        continue;
                    }
                    row[..oy_lo * ow].fill(fill);
                    row[oy_hi * ow..].fill(fill);
                    if sw == 1 && self.sh == 1 && ow == iw {
                        // Stride 1 and rows as wide as the input's: the valid band is the
                        // input shifted by one offset, copied at once; the columns that wrap
                        // around between rows are the padding, zeroed after.
                        let (a, b) = (oy_lo * ow + lo, (oy_hi - 1) * ow + hi);
                        let src = self.in_row(ky, oy_lo) * iw + start;
                        row[a..b].copy_from_slice(&xc[src..src + (b - a)]);
                        for dst in row[oy_lo * ow..oy_hi * ow].chunks_exact_mut(ow) {
                            dst[..lo].fill(fill);
                            dst[hi..].fill(fill);
                        }
                        continue;
                    }
                    for oy in oy_lo..oy_hi {
                        let dst = &mut row[oy * ow..(oy + 1) * ow];
                        let src = &xc[self.in_row(ky, oy) * iw + start..];
                        dst[..lo].fill(fill);
                        dst[hi..].fill(fill);
                        if sw == 1 {
                            dst[lo..hi].copy_from_slice(&src[..hi - lo]);
                        } else {
                            for (d, v) in dst[lo..hi].iter_mut().zip(src.iter().step_by(sw)) {
                                *d = *v;
                            }
                        }
                    }
                }
            }
        }
    }

    fn col2im_add(&self, cg: usize, col: &[f32], dxg: &mut [f32]) {
        let (p_in, p_out, ow, iw, sw) = (
            self.ih * self.iw,
            self.oh * self.ow,
            self.ow,
            self.iw,
            self.sw,
        );
        let mut rows = col.chunks_exact(p_out.max(1));
        for dxc in dxg.chunks_exact_mut(p_in.max(1)).take(cg) {
            for ky in 0..self.kh {
                for kx in 0..self.kw {
                    let Some(row) = rows.next() else {
                        return;
                    };
                    let (oy_lo, oy_hi, lo, hi, start) = self.tap(ky, kx);
                    if lo >= hi {
                        continue;
                    }
                    for oy in oy_lo..oy_hi {
                        let src = &row[oy * ow + lo..oy * ow + hi];
                        let dst = &mut dxc[self.in_row(ky, oy) * iw + start..];
                        if sw == 1 {
                            for (d, v) in dst[..hi - lo].iter_mut().zip(src) {
                                *d += v;
                            }
                        } else {
                            for (d, v) in dst.iter_mut().step_by(sw).zip(src) {
                                *d += v;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Index scratch for walking the column matrix (see [`Geometry::tap_segments`]).
struct TapWalk {
    in_strides: Vec<usize>,
    kidx: Vec<usize>,
    oidx: Vec<usize>,
}

/// The window attributes both convolution ops carry: kernel, strides, pads, dilations, group.
trait Window {
    fn window(&self) -> (&[usize], &[usize], &[usize], &[usize], usize);
}

macro_rules! impl_window {
    ($($op:ty),*) => {$(
        impl Window for $op {
            fn window(&self) -> (&[usize], &[usize], &[usize], &[usize], usize) {
                (&self.kernel, &self.strides, &self.pads, &self.dilations, self.group)
            }
        }
    )*};
}
impl_window!(Conv, ConvTranspose);

type Out<T> = Result<Vec<T>, RuntimeError>;

/// The window geometry of input shape `x` and weight shape `w`.
fn geometry(
    op: &'static str,
    x: &[usize],
    w: &[usize],
    c: &impl Window,
) -> Result<Geometry, RuntimeError> {
    let (kernel, strides, pads, dilations, group) = c.window();
    let d = spatial_axes_of(op, x)?;
    if w.len() != x.len() {
        return Err(RuntimeError::shape(
            op,
            format!(
                "weight rank {} differs from input rank {} (weight {w:?})",
                w.len(),
                x.len(),
            ),
        ));
    }
    let wk = w[2..].to_vec();
    if !kernel.is_empty() && kernel != wk.as_slice() {
        return Err(RuntimeError::Attribute {
            op,
            attr: "kernel",
            reason: format!("{kernel:?} differs from the weight's spatial shape {wk:?}"),
        });
    }
    check_attr(op, "strides", strides, d, true)?;
    check_attr(op, "dilations", dilations, d, true)?;
    check_attr(op, "pads", pads, 2 * d, false)?;
    check_attr(op, "group", &[group], 1, true)?;
    let in_sp = &x[2..];
    Ok(Geometry {
        p_in: in_sp.iter().product(),
        kprod: wk.iter().product(),
        cg: x[1] / group,
        batch: x[0],
        in_ch: x[1],
        in_sp: in_sp.to_vec(),
        kernel: wk,
        strides: strides.to_vec(),
        dilations: dilations.to_vec(),
        pads_begin: pads[..d].to_vec(),
        pads_end: pads[d..].to_vec(),
        group,
        m: 0,
        mg: 0,
        out_sp: Vec::new(),
        p_out: 0,
        total: 0,
    })
}

impl Geometry {
    /// Records `m` output channels of spatial shape `out_sp` and returns the output shape
    /// `[N, M, out_sp...]`, refusing one too large to allocate.
    fn set_output(
        &mut self,
        op: &'static str,
        m: usize,
        out_sp: Vec<usize>,
    ) -> Result<Vec<usize>, RuntimeError> {
        let mut shape = vec![self.batch, m];
        shape.extend(&out_sp);
        self.total = checked_numel(op, &shape)?;
        self.p_out = out_sp.iter().product();
        (self.m, self.mg, self.out_sp) = (m, m / self.group, out_sp);
        Ok(shape)
    }

    /// Input position on spatial axis `j` of kernel tap `k` at output position `o` (negative
    /// or past the end in the padding).
    pub(crate) fn tap(&self, j: usize, o: usize, k: usize) -> isize {
        (o * self.strides[j] + k * self.dilations[j]) as isize - self.pads_begin[j] as isize
    }

    /// Whether this is a 1x1, stride-1, unpadded convolution, which needs no im2col: the
    /// image already is the matrix.
    pub(crate) fn is_pointwise(&self) -> bool {
        self.kprod == 1
            && self.strides.iter().all(|&s| s == 1)
            && self
                .pads_begin
                .iter()
                .chain(&self.pads_end)
                .all(|&p| p == 0)
    }

    /// The channels of group `gi` of image `n` of the input `x`.
    pub(crate) fn group_input<'a, T>(&self, x: &'a [T], n: usize, gi: usize) -> &'a [T] {
        let (cg, p_in) = (self.cg, self.p_in);
        &x[(n * self.in_ch + gi * cg) * p_in..(n * self.in_ch + (gi + 1) * cg) * p_in]
    }

    /// Whether each GEMM may split across threads: with several images the batch loop is
    /// already parallel, so each GEMM runs on one thread; a single image parallelises inside
    /// the GEMM instead.
    fn split_gemm(&self) -> bool {
        self.batch == 1
    }

    /// The output, computed by `image(n, output_of_image_n, scratch)` for every image after
    /// each output channel is filled with its bias (`bias` is of the output's type). Several
    /// images run in parallel, each worker reusing one scratch buffer.
    fn per_image<T: GemmElem>(
        &self,
        bias: Option<&Tensor>,
        image: impl Fn(usize, &mut [T], &mut Vec<T>) -> Result<(), RuntimeError> + Sync + Send,
    ) -> Out<T> {
        let mut out = vec![T::ZERO; self.total];
        if out.is_empty() {
            return Ok(out);
        }
        let bias = bias.and_then(|b| T::slice(b.data()));
        let job = |(n, dst): (usize, &mut [T]), col: &mut Vec<T>| {
            if let Some(b) = bias {
                for (mi, row) in dst.chunks_mut(self.p_out).enumerate() {
                    row.fill(b[mi]);
                }
            }
            image(n, dst, col)
        };
        if self.batch == 1 {
            job((0, &mut out), &mut Vec::new())?;
        } else {
            let per = out.len() / self.batch;
            out.par_chunks_mut(per)
                .enumerate()
                .try_for_each_init(Vec::new, |col, j| job(j, col))?;
        }
        Ok(out)
    }
}

/// The operands `x`, `w` and (when the op has one) the bias; `w` must share `x`'s type.
fn operands<'t>(
    op: &'static str,
    inputs: &[&'t Tensor],
    has_bias: bool,
) -> Result<(&'t Tensor, &'t Tensor, Option<&'t Tensor>), RuntimeError> {
    let (x, w) = (inputs[0], inputs[1]);
    same_dtype(op, x, 1, w)?;
    Ok((x, w, inputs.get(2).copied().filter(|_| has_bias)))
}

fn check_bias(
    op: &'static str,
    x: &Tensor,
    b: Option<&Tensor>,
    channels: usize,
) -> Result<(), RuntimeError> {
    if let Some(b) = b {
        same_dtype(op, x, 2, b)?;
        if b.shape() != [channels] {
            return Err(RuntimeError::shape(
                op,
                format!("bias shape {:?} must be [{channels}]", b.shape()),
            ));
        }
    }
    Ok(())
}

/// The validated geometry of a Conv, with its output side, and the output shape; the gradient
/// checks its operands with the same rules as the forward kernel.
pub(crate) fn conv_geometry(
    op: &'static str,
    c: &Conv,
    x: &Tensor,
    w: &Tensor,
) -> Result<(Geometry, Vec<usize>), RuntimeError> {
    conv_geometry_of(op, c, x.shape(), w.shape())
}

/// [`conv_geometry`] from the input and weight shapes alone, for kernels that convolve data
/// of another form than the tensors' (the packed integers of the bit-plane path).
pub(crate) fn conv_geometry_of(
    op: &'static str,
    c: &Conv,
    x: &[usize],
    w: &[usize],
) -> Result<(Geometry, Vec<usize>), RuntimeError> {
    let mut g = geometry(op, x, w, c)?;
    let m = w[0];
    if g.in_ch % g.group != 0 || m % g.group != 0 || w[1].checked_mul(g.group) != Some(g.in_ch) {
        return Err(RuntimeError::shape(
            op,
            format!(
                "input has {} channels, weight is {w:?}, group {}: need C = group * weight[1] and M divisible by group",
                g.in_ch, g.group
            ),
        ));
    }
    let mut out_sp = Vec::with_capacity(g.in_sp.len());
    for j in 0..g.in_sp.len() {
        let pads = (g.pads_begin[j], g.pads_end[j]);
        let slack = window_slack(op, j, g.in_sp[j], g.kernel[j], g.dilations[j], pads)?;
        out_sp.push(slack / g.strides[j] + 1);
    }
    let shape = g.set_output(op, m, out_sp)?;
    Ok((g, shape))
}

/// ONNX Conv (N-d, grouped, strided, dilated, padded) for f32 and f64.
pub fn conv(c: &Conv, inputs: &[&Tensor]) -> Result<Tensor, RuntimeError> {
    const OP: &str = "conv";
    let (x, w, bias) = operands(OP, inputs, c.has_bias)?;
    let (g, out_shape) = conv_geometry(OP, c, x, w)?;
    check_bias(OP, x, bias, g.m)?;
    // The per-thread column buffer must be allocatable too.
    checked_numel(OP, &[w.len() / g.m.max(1), g.p_out])?;
    let data = map_data!(OP, (x, w), [F32, F64], |xv, wv| g.conv(xv, wv, bias)?)?;
    make(OP, out_shape, data)
}

/// Output positions of Conv `c` on `x` with weight `w` (images × spatial positions): the
/// rows [`conv_patches`] can gather.
pub fn conv_output_positions(c: &Conv, x: &Tensor, w: &Tensor) -> Result<usize, RuntimeError> {
    let (g, _) = conv_geometry("conv_patches", c, x, w)?;
    Ok(g.p_out * g.batch)
}

/// Sampled im2col: the receptive fields of a few output positions of Conv `c` on the f32
/// input `x` with weight `w`, for fitting on a subset of a layer's outputs without computing
/// the others. For every `row` of `rows` (flat `image · positions + position`, the position
/// in row-major output order) and every group `g`, appends to `out[g]` that position's
/// `cg · kprod` input values in the weight's `[channel, taps…]` order, `map` applied to each
/// value read from `x` and zero in the padding (as [`conv`] pads its input).
pub fn conv_patches(
    c: &Conv,
    x: &Tensor,
    w: &Tensor,
    rows: &[usize],
    map: impl Fn(f32) -> f32,
    out: &mut [Vec<f32>],
) -> Result<(), RuntimeError> {
    let (g, _) = conv_geometry("conv_patches", c, x, w)?;
    if out.len() != g.group {
        return Err(RuntimeError::shape(
            "conv_patches",
            format!("{} output buffers for {} groups", out.len(), g.group),
        ));
    }
    for dst in out.iter_mut() {
        dst.reserve(rows.len() * g.cg * g.kprod);
    }
    conv_patches_each(c, x, w, rows, map, |gi, patch| {
        out[gi].extend_from_slice(patch)
    })
}

/// [`conv_patches`] handed over one patch at a time: `f(g, patch)` for each row of `rows` in
/// turn and each group `g`, the patch in a buffer reused for the next one. For consumers that
/// use each patch at once (a few dot products) and need no patch matrix.
pub fn conv_patches_each(
    c: &Conv,
    x: &Tensor,
    w: &Tensor,
    rows: &[usize],
    map: impl Fn(f32) -> f32,
    mut f: impl FnMut(usize, &[f32]),
) -> Result<(), RuntimeError> {
    const OP: &str = "conv_patches";
    let (g, _) = conv_geometry(OP, c, x, w)?;
    let xv = x.as_f32().ok_or(RuntimeError::UnsupportedDType {
        op: OP,
        input: 0,
        dtype: x.dtype(),
    })?;
    let positions = g.p_out * g.batch;
    if let Some(&r) = rows.iter().find(|&&r| r >= positions) {
        return Err(RuntimeError::shape(
            OP,
            format!("row {r} is past the {positions} output positions"),
        ));
    }
    let rank = g.in_sp.len();
    let in_strides = strides_of(&g.in_sp);
    // Each tap's position in the kernel window, and its offset from the window's origin (for
    // windows wholly inside the input).
    let mut taps = vec![0; g.kprod * rank];
    for kk in 0..g.kprod {
        unravel(kk, &g.kernel, &mut taps[kk * rank..(kk + 1) * rank]);
    }
    let tap = |kk: usize| &taps[kk * rank..(kk + 1) * rank];
    let tap_offsets: Vec<usize> = (0..g.kprod)
        .map(|kk| {
            (0..rank)
                .map(|j| tap(kk)[j] * g.dilations[j] * in_strides[j])
                .sum()
        })
        .collect();
    let mut opos = vec![0; rank];
    // Where a position's window reads: at fixed offsets from its origin when it is wholly
    // inside the input, else each tap's offset (`None` in the padding) from `start` in
    // `border`. Rows of many images share positions, so when the rows are at least as many
    // as the positions each position is located once (small maps are mostly border).
    #[derive(Clone, Copy)]
    enum Window {
        Inside(usize),
        Border(usize),
    }
    let mut locate = |o: usize, border: &mut Vec<Option<usize>>| {
        unravel(o, &g.out_sp, &mut opos);
        // A window whose first and last taps are inside is inside on every axis.
        let origin = offset_inside(&g.in_sp, &in_strides, |j| g.tap(j, opos[j], 0));
        let last = offset_inside(&g.in_sp, &in_strides, |j| {
            g.tap(j, opos[j], g.kernel[j].saturating_sub(1))
        });
        match (origin, last) {
            (Some(base), Some(_)) => Window::Inside(base),
            _ => {
                let start = border.len();
                border.extend((0..g.kprod).map(|kk| {
                    offset_inside(&g.in_sp, &in_strides, |j| g.tap(j, opos[j], tap(kk)[j]))
                }));
                Window::Border(start)
            }
        }
    };
    let cached = rows.len() >= g.p_out;
    let mut located: Vec<Option<Window>> = vec![None; if cached { g.p_out } else { 0 }];
    let mut border: Vec<Option<usize>> = Vec::new();
    let mut patch = vec![0.0f32; g.cg * g.kprod];
    for &r in rows {
        let (n, o) = (r / g.p_out, r % g.p_out);
        let at = if cached {
            *located[o].get_or_insert_with(|| locate(o, &mut border))
        } else {
            border.clear();
            locate(o, &mut border)
        };
        for gi in 0..g.group {
            let xg = g.group_input(xv, n, gi);
            let channels = xg.chunks_exact(g.p_in.max(1)).take(g.cg);
            // Windows wholly inside (most of them on large maps) read at fixed offsets from
            // their origin, and a 1×1 window is one value per channel.
            match at {
                Window::Inside(base) if g.kprod == 1 => {
                    for (d, xc) in patch.iter_mut().zip(channels) {
                        *d = map(xc[base]);
                    }
                }
                Window::Inside(base) => {
                    for (dc, xc) in patch.chunks_exact_mut(g.kprod).zip(channels) {
                        let xw = &xc[base..];
                        for (d, &t) in dc.iter_mut().zip(&tap_offsets) {
                            *d = map(xw[t]);
                        }
                    }
                }
                Window::Border(start) => {
                    let window = &border[start..start + g.kprod];
                    for (dc, xc) in patch.chunks_exact_mut(g.kprod).zip(channels) {
                        for (d, at) in dc.iter_mut().zip(window) {
                            *d = at.map_or(0.0, |i| map(xc[i]));
                        }
                    }
                }
            }
            f(gi, &patch);
        }
    }
    Ok(())
}

/// ONNX ConvTranspose (N-d, grouped, strided, dilated, padded, output_padding) for f32/f64.
pub fn conv_transpose(c: &ConvTranspose, inputs: &[&Tensor]) -> Result<Tensor, RuntimeError> {
    const OP: &str = "conv_transpose";
    let (x, w, bias) = operands(OP, inputs, c.has_bias)?;
    let mut g = geometry(OP, x.shape(), w.shape(), c)?;
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
        return Err(RuntimeError::shape(
            OP,
            format!(
                "input has {} channels, weight is {:?}, group {}: need weight[0] = C and C divisible by group",
                g.in_ch, w.shape(), g.group
            ),
        ));
    }
    let m = w.shape()[1].checked_mul(g.group).ok_or_else(|| {
        RuntimeError::shape(
            OP,
            format!("weight {:?} times group {} overflows", w.shape(), g.group),
        )
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
            return Err(RuntimeError::shape(
                OP,
                format!("spatial axis {j}: output size would be negative or empty (input {:?}, pads {:?})", g.in_sp, c.pads),
            ));
        }
        out_sp.push((full - crop) as usize);
    }
    let out_shape = g.set_output(OP, m, out_sp)?;
    // The per-thread column buffer must be allocatable too.
    checked_numel(OP, &[w.shape()[1], g.kprod, g.p_in])?;
    let data = map_data!(OP, (x, w), [F32, F64], |xv, wv| {
        g.conv_transpose(xv, wv, bias)?
    })?;
    make(OP, out_shape, data)
}

/// The typed kernels, on validated geometry.
impl Geometry {
    fn conv<T: GemmElem>(&self, x: &[T], w: &[T], bias: Option<&Tensor>) -> Out<T> {
        let g = self;
        let (p_out, cg, mg, kprod) = (g.p_out, g.cg, g.mg, g.kprod);
        let kc = cg * kprod;
        let pointwise = g.is_pointwise();
        let col_len = if pointwise { 0 } else { kc * p_out };
        let beta = if bias.is_some() { T::ONE } else { T::ZERO };
        let split = g.split_gemm();
        g.per_image(bias, |n, dst, col| {
            for gi in 0..g.group {
                let xg = g.group_input(x, n, gi);
                let cols: &[T] = if pointwise {
                    xg
                } else {
                    col.resize(col_len, T::ZERO);
                    g.im2col(xg, col);
                    col
                };
                let wm = MatRef::of(&w[gi * mg * kc..(gi + 1) * mg * kc], kc, false);
                let cm = MatRef::of(cols, p_out, false);
                let dst_g = &mut dst[gi * mg * p_out..(gi + 1) * mg * p_out];
                gemm_into("conv", split, mg, kc, p_out, T::ONE, wm, cm, beta, dst_g)?;
            }
            Ok(())
        })
    }

    /// Fills `col` (`[cg * kprod, p_out]`, row-major) with the receptive fields of one group of
    /// one image; positions in the padding are zero.
    pub(crate) fn im2col<T: Arith>(&self, xg: &[T], col: &mut [T]) {
        self.im2col_fill(xg, col, T::ZERO)
    }

    /// [`im2col`](Self::im2col) with `fill` in place of the padding's zeros (for integer
    /// kernels whose code of real 0 is not 0).
    pub(crate) fn im2col_fill<T: Arith>(&self, xg: &[T], col: &mut [T], fill: T) {
        match Plane::of(self) {
            Some(p) => p.im2col(self.cg, xg, col, fill),
            None => self.im2col_nd(xg, col, fill),
        }
    }

    /// [`im2col`](Self::im2col) for any number of spatial axes.
    fn im2col_nd<T: Arith>(&self, xg: &[T], col: &mut [T], fill: T) {
        let (p_in, p_out, kprod, sw) = (self.p_in, self.p_out, self.kprod, self.last_stride());
        let mut walk = self.tap_walk();
        for ci in 0..self.cg {
            let xc = &xg[ci * p_in..(ci + 1) * p_in];
            for kk in 0..kprod {
                let row = &mut col[(ci * kprod + kk) * p_out..(ci * kprod + kk + 1) * p_out];
                self.tap_segments(&mut walk, kk, |dst, valid| {
                    let dst = &mut row[dst];
                    let Some((lo, hi, src)) = valid else {
                        dst.fill(fill);
                        return;
                    };
                    dst[..lo].fill(fill);
                    dst[hi..].fill(fill);
                    if sw == 1 {
                        dst[lo..hi].copy_from_slice(&xc[src..src + (hi - lo)]);
                    } else {
                        for (t, o) in dst[lo..hi].iter_mut().enumerate() {
                            *o = xc[src + t * sw];
                        }
                    }
                });
            }
        }
    }

    /// The adjoint of [`im2col`](Self::im2col): adds every entry of `col` (`[cg * kprod,
    /// p_out]`) to the input position it was gathered from (padding entries are dropped).
    /// Rows, and positions within a row, are visited in order, so each input element sums its
    /// contributions in a fixed order.
    pub(crate) fn col2im_add(&self, col: &[f32], dxg: &mut [f32]) {
        match Plane::of(self) {
            Some(p) => p.col2im_add(self.cg, col, dxg),
            None => self.col2im_add_nd(col, dxg),
        }
    }

    /// [`col2im_add`](Self::col2im_add) for any number of spatial axes.
    fn col2im_add_nd(&self, col: &[f32], dxg: &mut [f32]) {
        let (p_in, p_out, kprod, sw) = (self.p_in, self.p_out, self.kprod, self.last_stride());
        let mut walk = self.tap_walk();
        for ci in 0..self.cg {
            let dxc = &mut dxg[ci * p_in..(ci + 1) * p_in];
            for kk in 0..kprod {
                let row = &col[(ci * kprod + kk) * p_out..(ci * kprod + kk + 1) * p_out];
                self.tap_segments(&mut walk, kk, |src_range, valid| {
                    let Some((lo, hi, dst)) = valid else {
                        return;
                    };
                    let src = &row[src_range][lo..hi];
                    if sw == 1 {
                        for (d, v) in dxc[dst..dst + (hi - lo)].iter_mut().zip(src) {
                            *d += v;
                        }
                    } else {
                        for (t, v) in src.iter().enumerate() {
                            dxc[dst + t * sw] += v;
                        }
                    }
                });
            }
        }
    }

    fn last_stride(&self) -> usize {
        self.strides[self.in_sp.len() - 1]
    }

    /// Walks the row of kernel tap `kk` in the column matrix one segment at a time (the output
    /// positions that differ only on the last spatial axis, in order): `f(range of the
    /// segment in the row, valid)` where `valid` is `Some((lo, hi, start))` when the segment's
    /// input row exists: positions `lo..hi` of the segment read the input channel at `start`,
    /// `start + sw`, … and the others fall into the padding; `None` when all of it does.
    fn tap_segments(
        &self,
        walk: &mut TapWalk,
        kk: usize,
        mut f: impl FnMut(std::ops::Range<usize>, Option<(usize, usize, usize)>),
    ) {
        let last = self.in_sp.len() - 1;
        let (ow, iw, sw) = (self.out_sp[last], self.in_sp[last], self.strides[last]);
        let outer: usize = self.out_sp[..last].iter().product();
        let TapWalk {
            in_strides,
            kidx,
            oidx,
        } = walk;
        unravel(kk, &self.kernel, kidx);
        oidx.fill(0);
        // Valid output range on the last axis: 0 <= ox*sw + off < iw.
        let off = self.tap(last, 0, kidx[last]);
        let (lo, hi) = valid_range(off, sw, iw, ow);
        for seg in 0..outer {
            if seg > 0 {
                next_index(&mut oidx[..last], &self.out_sp[..last]);
            }
            let base = offset_inside(&self.in_sp[..last], in_strides, |j| {
                self.tap(j, oidx[j], kidx[j])
            });
            let valid = base
                .filter(|_| lo < hi)
                .map(|base| (lo, hi, base + ((lo * sw) as isize + off) as usize));
            f(seg * ow..(seg + 1) * ow, valid);
        }
    }

    /// The scratch of [`tap_segments`](Self::tap_segments), allocated once per image.
    fn tap_walk(&self) -> TapWalk {
        let d = self.in_sp.len();
        TapWalk {
            in_strides: strides_of(&self.in_sp),
            kidx: vec![0; d],
            oidx: vec![0; d],
        }
    }

    fn conv_transpose<T: GemmElem>(&self, x: &[T], w: &[T], bias: Option<&Tensor>) -> Out<T> {
        let g = self;
        let d = g.in_sp.len();
        let (p_out, p_in, cg, mg, kprod) = (g.p_out, g.p_in, g.cg, g.mg, g.kprod);
        let rows = mg * kprod;
        let out_strides = strides_of(&g.out_sp);
        let split = g.split_gemm();
        g.per_image(bias, |n, dst, col| {
            col.resize(rows * p_in, T::ZERO);
            let mut kidx = vec![0usize; d];
            let mut iidx = vec![0usize; d];
            for gi in 0..g.group {
                let xm = MatRef::of(g.group_input(x, n, gi), p_in, false);
                let wm = MatRef::of(&w[gi * cg * rows..(gi + 1) * cg * rows], rows, true);
                // cols[rows, p_in] = W_g^T [rows, cg] · x_g [cg, p_in]
                let op = "conv_transpose";
                gemm_into(op, split, rows, cg, p_in, T::ONE, wm, xm, T::ZERO, col)?;
                // col2im: scatter-add each column entry to its output position.
                for r in 0..rows {
                    let mo = r / kprod;
                    unravel(r % kprod, &g.kernel, &mut kidx);
                    let dst_c = &mut dst[(gi * mg + mo) * p_out..(gi * mg + mo + 1) * p_out];
                    let src = &col[r * p_in..(r + 1) * p_in];
                    iidx.fill(0);
                    for (p, &v) in src.iter().enumerate() {
                        if p > 0 {
                            next_index(&mut iidx, &g.in_sp);
                        }
                        let pos = |j: usize| g.tap(j, iidx[j], kidx[j]);
                        if let Some(off) = offset_inside(&g.out_sp, &out_strides, pos) {
                            dst_c[off] = dst_c[off].add(v);
                        }
                    }
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 2-D im2col/col2im (row arithmetic, band copies) agree exactly with the N-d walk on
    /// every combination of kernel, stride, dilation and asymmetric padding, including windows
    /// wider than the input and outputs narrower than the input.
    #[test]
    fn plane_im2col_and_col2im_match_the_nd_walk() {
        let mut checked = 0;
        for (ih, iw) in [(1, 1), (4, 4), (5, 7), (9, 3)] {
            for (kh, kw) in [(1, 1), (3, 3), (2, 3), (5, 1)] {
                for (sh, sw) in [(1, 1), (2, 1), (1, 3), (2, 2)] {
                    for (dh, dw) in [(1, 1), (2, 1)] {
                        for pads in [[0, 0, 0, 0], [1, 1, 1, 1], [2, 0, 0, 1], [0, 3, 2, 0]] {
                            let c = Conv {
                                kernel: vec![kh, kw],
                                strides: vec![sh, sw],
                                pads: pads.to_vec(),
                                dilations: vec![dh, dw],
                                group: 1,
                                has_bias: false,
                            };
                            let cg = 2;
                            let xv: Vec<f32> = (0..cg * ih * iw).map(|i| i as f32 + 1.0).collect();
                            let x = Tensor::from_f32(vec![1, cg, ih, iw], xv.clone()).unwrap();
                            let w = Tensor::from_f32(vec![1, cg, kh, kw], vec![0.0; cg * kh * kw])
                                .unwrap();
                            // Windows that do not fit are refused by the geometry; skip them.
                            let Ok((g, _)) = conv_geometry("conv", &c, &x, &w) else {
                                continue;
                            };
                            let n = cg * g.kprod * g.p_out;
                            let (mut fast, mut walk) = (vec![-1f32; n], vec![-2f32; n]);
                            g.im2col(&xv, &mut fast);
                            g.im2col_nd(&xv, &mut walk, 0.0);
                            assert_eq!(fast, walk, "im2col {c:?} on {ih}x{iw}");
                            // A padding value other than zero lands in the same places,
                            // and only where the zero-filled columns have zeros.
                            let zeroed = fast.clone();
                            g.im2col_fill(&xv, &mut fast, 0.5);
                            g.im2col_nd(&xv, &mut walk, 0.5);
                            assert_eq!(fast, walk, "im2col_fill {c:?} on {ih}x{iw}");
                            assert!(zeroed
                                .iter()
                                .zip(&fast)
                                .all(|(&a, &b)| a == b || (a == 0.0 && b == 0.5)));
                            let col: Vec<f32> = (0..n).map(|i| (i % 13) as f32 - 6.0).collect();
                            let (mut fast, mut walk) = (xv.clone(), xv.clone());
                            g.col2im_add(&col, &mut fast);
                            g.col2im_add_nd(&col, &mut walk);
                            assert_eq!(fast, walk, "col2im {c:?} on {ih}x{iw}");
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 300, "only {checked} geometries were valid");
    }
}
