//! Bit-plane kernels: Conv and Linear layers with vertically layered weights, run at a
//! chosen plane count `k` (W k A8), following `docs/vertical-layering.md` to the letter.
//!
//! Two paths compute the same layer:
//! - **integer** (the deployment semantics): the input is quantized to `A`-bit integers
//!   `u = x_q - zero`, the `k`-plane codes `q_k` are unpacked from planes `0..k` once per
//!   session and plane count ([`prepared`]; once per call without one), and
//!   `acc = Σ q_k·u`, `usum = Σ u` are exact integer sums (i16 operands, i32
//!   partial sums over reduction chunks that provably cannot overflow, i64 totals). Unpacking
//!   and running an integer GEMM was chosen over iterating set bits per plane: it does one
//!   multiply-add per weight instead of up to `k` adds, and the dot products vectorise
//!   (`vpmaddwd` when the CPU has AVX2, detected at run time; portable code otherwise).
//!   Conv packs pairs of input channels into i32, im2cols them with the f32 kernel's
//!   im2col, and runs the [`panel`] GEMM (eight positions per vector lane set, a broadcast
//!   code pair per `vpmaddwd`), with a row of ones among the codes so that `usum` comes out
//!   of the same sweep; Linear sweeps cache-sized blocks of samples with every weight row.
//!   That is the fallback: when every activation code and the zero point fit `i8` (so Conv
//!   padding has a byte code), layers read once per call — Linear, and convolutions with at
//!   most [`PACKED_MAX_POSITIONS`] output positions — multiply [`packed`] 2/4/8-bit codes
//!   (the bytes read fall with `k`), and the other convolutions run the [`byte_panel`] (four
//!   channels a lane, `vpdpbusd` / `vpmaddubsw`) where this CPU has a byte tile for `k`.
//!   Every path computes the same integers `acc` and `usum`.
//!   The epilogue is then, in f32 and in this order:
//!   `y = (alpha·scale)·(acc as f32) + (beta·scale)·(usum as f32) + bias`;
//! - **float** (the reference): the f32 Conv/Gemm kernels run on the dequantized input
//!   `scale·(x_q - zero)` and weights `W_k = alpha·q_k + beta`, plus `bias`.
//!
//! The two agree to float rounding, which is what the tests check.

use std::sync::Arc;

use rayon::prelude::*;
use strata_ir::ops::bitplane::{Bitplane, BitplaneKernel, INPUT_PLANES, INPUT_X};
use strata_ir::ops::{Conv, Gemm};
use strata_ir::quant::{ActQuantizer, ResolveError};
use strata_ir::{NodeId, Op, Tensor, TensorData, TensorType};

use super::{checked_numel, conv, linear, make};
use crate::RuntimeError;

mod byte_panel;
mod packed;
mod panel;
mod prepared;

pub use prepared::PreparedCache;
use prepared::PreparedCodes;

/// How a bit-plane layer is computed; both give the same result up to float rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum QuantPath {
    /// Integer activations, integer accumulation, f32 epilogue: what a device runs.
    #[default]
    Integer,
    /// Dequantize, then the f32 kernels: the readable reference for the integer path.
    Float,
}

/// The element data of a tensor the shape checks proved to be f32.
fn f32s<'a>(op: &'static str, t: &'a Tensor, input: usize) -> Result<&'a [f32], RuntimeError> {
    t.as_f32().ok_or(RuntimeError::UnsupportedDType {
        op,
        input,
        dtype: t.dtype(),
    })
}

/// Per-layer parameters at the chosen plane count.
struct Chosen<'a> {
    k: u8,
    scale: f32,
    act: ActQuantizer,
    alpha: &'a [f32],
    beta: &'a [f32],
    bias: &'a [f32],
    /// `q_k` (and the conv panel's rows), prepared once per cache entry.
    codes: Arc<PreparedCodes>,
}

/// Evaluates a bit-plane op at plane count `planes` (`None`: the largest plane count that
/// has a side table and whose planes are present) on the given path.
pub fn bitplane(
    b: &Bitplane,
    inputs: &[&Tensor],
    planes: Option<u8>,
    path: QuantPath,
) -> Result<Tensor, RuntimeError> {
    bitplane_cached(b, inputs, planes, path, None)
}

/// [`bitplane`] with the codes taken from (or prepared into) `cache` under this node's id,
/// when the caller has checked that the layer's weight inputs are graph constants.
pub(crate) fn bitplane_cached(
    b: &Bitplane,
    inputs: &[&Tensor],
    planes: Option<u8>,
    path: QuantPath,
    cache: Option<(&PreparedCache, NodeId)>,
) -> Result<Tensor, RuntimeError> {
    let op = Op::Bitplane(b.clone());
    let name = op.mnemonic();
    // Shape inference on the concrete types validates the attributes, every input's type and
    // the convolution geometry in one place, exactly as the verifier does.
    let types: Vec<TensorType> = inputs.iter().map(|t| t.ty()).collect();
    let refs: Vec<&TensorType> = types.iter().collect();
    let out_ty = op
        .infer(&refs)
        .map_err(|e| RuntimeError::Shape {
            op: name,
            reason: e.to_string(),
        })?
        .pop()
        .ok_or_else(|| RuntimeError::Shape {
            op: name,
            reason: "shape inference gave no output".into(),
        })?;
    let out_shape = out_ty.shape.resolve(0);
    checked_numel(name, &out_shape)?;
    let chosen = choose(b, inputs, planes, name, cache)?;
    match (&b.kernel, path) {
        (BitplaneKernel::Linear, QuantPath::Integer) => {
            linear_integer(b, inputs[INPUT_X], &chosen, name, out_shape)
        }
        (BitplaneKernel::Conv(c), QuantPath::Integer) => {
            conv_integer(b, c, inputs[INPUT_X], &chosen, name, out_shape)
        }
        (kernel, QuantPath::Float) => float_path(b, kernel, inputs[INPUT_X], &chosen, name),
    }
}

/// Picks `k` (the runtime's default policy when none is given) and takes the layer's
/// validated view at `k` from [`Bitplane::resolve`], with `q_k` unpacked (or found in
/// `cache`).
fn choose<'a>(
    b: &Bitplane,
    inputs: &[&'a Tensor],
    planes: Option<u8>,
    op: &'static str,
    cache: Option<(&PreparedCache, NodeId)>,
) -> Result<Chosen<'a>, RuntimeError> {
    let spec = &b.spec;
    let k = match planes {
        Some(k) => k,
        None => {
            let present = inputs[INPUT_PLANES].shape().first().copied().unwrap_or(0);
            spec.default_planes(present)
                .ok_or_else(|| RuntimeError::NoRunnablePlanes {
                    available: present,
                    plane_counts: spec.plane_counts.clone(),
                })?
        }
    };
    let shape = |reason: String| RuntimeError::Shape { op, reason };
    let layer = b.resolve(&inputs[INPUT_PLANES..], k).map_err(|e| match e {
        ResolveError::NoSideTable { k, plane_counts } => {
            RuntimeError::NoSideTable { k, plane_counts }
        }
        ResolveError::PlanesUnavailable { k, available } => {
            RuntimeError::PlanesUnavailable { k, available }
        }
        ResolveError::Activation { k, source } => RuntimeError::SideTable {
            k,
            reason: source.to_string(),
        },
        ResolveError::DType { input, got, .. } => RuntimeError::UnsupportedDType {
            op,
            input,
            dtype: got,
        },
        e @ (ResolveError::Spec(_)
        | ResolveError::Arity { .. }
        | ResolveError::SideTable { .. }
        | ResolveError::Layout(_)) => shape(e.to_string()),
    })?;
    let make = || -> Result<PreparedCodes, RuntimeError> {
        let codes = layer.codes().map_err(|e| shape(format!("planes: {e}")))?;
        // |q_k| ≤ 2^(k-1) ≤ 128 always fits.
        Ok(PreparedCodes::new(
            codes.into_iter().map(|q| q as i16).collect(),
        ))
    };
    let codes = match cache {
        Some((cache, node)) => cache.get_or_make((node, k), make)?,
        None => Arc::new(make()?),
    };
    Ok(Chosen {
        k,
        scale: layer.act.params().scale,
        act: layer.act,
        alpha: layer.alpha,
        beta: layer.beta,
        bias: layer.bias,
        codes,
    })
}

/// `u = x_q - zero` for every input element (see [`ActQuantizer::centered`]). `|u| ≤
/// 2^(A-1) + 2^A < 2^15` because the quantizer checked `|zero| ≤ 2^A`, so `u` fits `i16`.
fn quantize_input(x: &[f32], act: &ActQuantizer) -> Vec<i16> {
    x.iter().map(|&v| act.centered(v) as i16).collect()
}

/// Working-set target for a block of im2col rows (or input rows) swept by all weight rows.
const POSITION_BLOCK_BYTES: usize = 32 << 10;

/// Longest reduction whose i32 partial sum of `q·u` products cannot overflow.
fn safe_chunk(k: u8, act_bits: u8) -> usize {
    let qmax = 1i64 << (k - 1);
    let umax = (1i64 << (act_bits - 1)) + (1i64 << act_bits);
    ((i32::MAX as i64) / (qmax * umax)).max(1) as usize
}

/// An i16 dot product with an i32 result, for slices whose exact sum fits i32.
type DotI32 = fn(&[i16], &[i16]) -> i32;

/// Portable dot product (LLVM vectorises it for the baseline target).
fn dot_portable(a: &[i16], b: &[i16]) -> i32 {
    a.iter().zip(b).map(|(&p, &q)| p as i32 * q as i32).sum()
}

/// AVX2 dot product: `vpmaddwd` does 16 exact i16·i16 products per instruction with pairwise
/// i32 sums. Pairs cannot overflow (`|q| ≤ 128`, `|u| < 2^10`), nor can the lanes, whose
/// absolute sums are bounded by the whole chunk's, which [`safe_chunk`] keeps below 2^31.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn dot_avx2_inner(a: &[i16], b: &[i16]) -> i32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let mut acc0 = _mm256_setzero_si256();
    let mut acc1 = _mm256_setzero_si256();
    let mut i = 0;
    while i + 32 <= n {
        // SAFETY: i + 32 <= n ≤ both lengths, so the four 16-lane unaligned loads are in bounds.
        unsafe {
            let pa = a.as_ptr().add(i) as *const __m256i;
            let pb = b.as_ptr().add(i) as *const __m256i;
            acc0 = _mm256_add_epi32(
                acc0,
                _mm256_madd_epi16(_mm256_loadu_si256(pa), _mm256_loadu_si256(pb)),
            );
            acc1 = _mm256_add_epi32(
                acc1,
                _mm256_madd_epi16(_mm256_loadu_si256(pa.add(1)), _mm256_loadu_si256(pb.add(1))),
            );
        }
        i += 32;
    }
    let acc = _mm256_add_epi32(acc0, acc1);
    let mut lanes = [0i32; 8];
    // SAFETY: `lanes` is 32 bytes, exactly one unaligned 256-bit store.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, acc) };
    lanes.iter().sum::<i32>() + dot_portable(&a[i..n], &b[i..n])
}

#[cfg(target_arch = "x86_64")]
fn dot_avx2(a: &[i16], b: &[i16]) -> i32 {
    // SAFETY: only selected by `pick_dot` after AVX2 was detected on this CPU.
    unsafe { dot_avx2_inner(a, b) }
}

/// The fastest dot product this CPU supports under the [`crate::isa`] cap; all of them are
/// exact.
fn pick_dot() -> DotI32 {
    #[cfg(target_arch = "x86_64")]
    if crate::isa::avx2() {
        return dot_avx2;
    }
    dot_portable
}

/// Exact `Σ a·b`: i32 sums over chunks of at most `chunk` elements (no overflow), i64 total.
#[inline]
fn dot(f: DotI32, a: &[i16], b: &[i16], chunk: usize) -> i64 {
    if a.len() <= chunk {
        return f(a, b) as i64;
    }
    a.chunks(chunk)
        .zip(b.chunks(chunk))
        .map(|(x, y)| f(x, y) as i64)
        .sum()
}

/// The f32 epilogue, in the documented order.
#[inline]
fn epilogue(a: f32, b: f32, bias: f32, acc: i64, usum: i64) -> f32 {
    a * acc as f32 + b * usum as f32 + bias
}

/// `alpha·scale` and `beta·scale` per output channel.
fn folded(c: &Chosen) -> (Vec<f32>, Vec<f32>) {
    (
        c.alpha.iter().map(|&a| a * c.scale).collect(),
        c.beta.iter().map(|&b| b * c.scale).collect(),
    )
}

/// The zero point as an integer when every activation code, and the zero point itself (the
/// code of Conv padding), fits `i8`: what the [`packed`] kernels multiply.
fn packed_zero(act: &ActQuantizer) -> Option<i64> {
    let z = act.params().zero;
    (act.bits() <= 8 && (-128.0..=127.0).contains(&z)).then_some(z as i64)
}

/// Activation codes `x_q` for the [`packed`] kernels, one sample per row of `ldx ≥ cols`
/// (zeros past `cols`), and `Σ x_q` per sample: `code(i, j)` is sample `i`'s code `j`.
fn packed_input(
    n: usize,
    cols: usize,
    ldx: usize,
    code: impl Fn(usize, usize) -> i8,
) -> (Vec<i8>, Vec<i64>) {
    let mut xs = vec![0i8; n * ldx];
    let mut xsum = vec![0i64; n];
    for (i, (dst, sum)) in xs.chunks_exact_mut(ldx.max(1)).zip(&mut xsum).enumerate() {
        for (j, d) in dst[..cols].iter_mut().enumerate() {
            *d = code(i, j);
        }
        *sum = dst[..cols].iter().map(|&v| v as i64).sum();
    }
    (xs, xsum)
}

/// `f(row, sample, acc)` with `acc = Σ q·(x − zero)` for the packed codes' rows `rows`
/// and every sample of `xs` (`[n][ldx]`, `ldx` = the padded row length): up to
/// [`packed::SAMPLES`] samples per sweep of each row's bytes.
fn packed_accs(
    p: &packed::PackedRows,
    rows: std::ops::Range<usize>,
    xs: &[i8],
    xsum: &[i64],
    zero: i64,
    mut f: impl FnMut(usize, usize, i64),
) {
    let o = packed::offset(p.width);
    let n = xsum.len();
    let mut sums = [0i64; packed::SAMPLES];
    for s0 in (0..n).step_by(packed::SAMPLES) {
        let s1 = (s0 + packed::SAMPLES).min(n);
        for r in rows.clone() {
            let sums = &mut sums[..s1 - s0];
            packed::multi_dot(p.row(r), p.width, &xs[s0 * p.padded..], p.padded, sums);
            for (s, &sum) in (s0..s1).zip(sums.iter()) {
                f(r, s, sum - o * xsum[s] - zero * p.qsum[r]);
            }
        }
    }
}

/// Linear integer path: `[N, K] → [N, R]`, parallel over blocks of output channels.
fn linear_integer(
    b: &Bitplane,
    x: &Tensor,
    c: &Chosen,
    op: &'static str,
    out_shape: Vec<usize>,
) -> Result<Tensor, RuntimeError> {
    if let Some(zero) = packed_zero(&c.act) {
        return linear_packed(b, x, c, op, out_shape, zero);
    }
    let (r, kk) = (b.spec.rows, b.spec.cols);
    let u = quantize_input(f32s(op, x, INPUT_X)?, &c.act);
    let chunk = safe_chunk(c.k, c.act.bits());
    let dotf = pick_dot();
    let (fa, fb) = folded(c);
    let n = out_shape[0];
    let usums: Vec<i64> = u
        .chunks(kk)
        .map(|un| un.iter().map(|&v| v as i64).sum())
        .collect();
    // Parallel over blocks of output channels, each sweeping blocks of samples, so that
    // neither the codes nor the inputs are streamed from memory once per sample.
    let rows_per_task = (POSITION_BLOCK_BYTES / (2 * kk).max(1)).clamp(1, r.max(1));
    let nb = (POSITION_BLOCK_BYTES / (2 * kk).max(1)).max(1);
    let blocks: Vec<(usize, Vec<f32>)> = (0..r)
        .step_by(rows_per_task)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|r0| {
            let r1 = (r0 + rows_per_task).min(r);
            // [n, r1 - r0] for this block of channels.
            let mut part = vec![0f32; n * (r1 - r0)];
            for n0 in (0..n).step_by(nb) {
                let n1 = (n0 + nb).min(n);
                for ch in r0..r1 {
                    let q = &c.codes.codes[ch * kk..(ch + 1) * kk];
                    for i in n0..n1 {
                        let acc = dot(dotf, q, &u[i * kk..(i + 1) * kk], chunk);
                        part[i * (r1 - r0) + ch - r0] =
                            epilogue(fa[ch], fb[ch], c.bias[ch], acc, usums[i]);
                    }
                }
            }
            (r0, part)
        })
        .collect();
    let mut out = vec![0f32; n * r];
    for (r0, part) in blocks {
        let width = part.len() / n.max(1);
        for i in 0..n {
            out[i * r + r0..i * r + r0 + width].copy_from_slice(&part[i * width..(i + 1) * width]);
        }
    }
    make(op, out_shape, TensorData::F32(out))
}

/// Linear integer path on packed codes: each block of output channels sweeps its rows'
/// packed bytes once per [`packed::SAMPLES`] samples (at batch 1, once), so the bytes read
/// per call are `k/8` (rounded up to 2, 4 or 8 bits) of a byte per weight.
fn linear_packed(
    b: &Bitplane,
    x: &Tensor,
    c: &Chosen,
    op: &'static str,
    out_shape: Vec<usize>,
    zero: i64,
) -> Result<Tensor, RuntimeError> {
    let (r, kk) = (b.spec.rows, b.spec.cols);
    let p = c
        .codes
        .packed
        .get_or_init(|| packed::PackedRows::new(&c.codes.codes, r, kk, c.k));
    let n = out_shape[0];
    let x = f32s(op, x, INPUT_X)?;
    // x_q fits i8: `packed_zero` checked A ≤ 8 (codes in −2^(A−1)..2^(A−1)) and the zero point.
    let q: Vec<i8> = x.iter().map(|&v| c.act.quantize(v) as i8).collect();
    let (xs, xsum) = packed_input(n, kk, p.padded, |i, j| q[i * kk + j]);
    let (fa, fb) = folded(c);
    let row_bytes = p.row(0).len().max(1);
    let rows_per_task = (POSITION_BLOCK_BYTES / row_bytes).clamp(1, r.max(1));
    let blocks: Vec<(usize, Vec<f32>)> = (0..r)
        .step_by(rows_per_task)
        .collect::<Vec<_>>()
        .into_par_iter()
        .map(|r0| {
            let r1 = (r0 + rows_per_task).min(r);
            let width = r1 - r0;
            let mut part = vec![0f32; n * width];
            packed_accs(p, r0..r1, &xs, &xsum, zero, |ch, i, acc| {
                let usum = xsum[i] - kk as i64 * zero;
                part[i * width + ch - r0] = epilogue(fa[ch], fb[ch], c.bias[ch], acc, usum);
            });
            (r0, part)
        })
        .collect();
    let mut out = vec![0f32; n * r];
    for (r0, part) in blocks {
        let width = part.len() / n.max(1);
        for i in 0..n {
            out[i * r + r0..i * r + r0 + width].copy_from_slice(&part[i * width..(i + 1) * width]);
        }
    }
    make(op, out_shape, TensorData::F32(out))
}

/// Conv integer path: per image and group, a packed-pair im2col, then `acc = Q_g · col`
/// with the [`panel`] GEMM.
///
/// Input channels are taken in pairs (an odd group's last channel with a zero): each image
/// and group is packed to `[C/group/2][positions]` i32 (two i16 values each), so the f32
/// kernel's im2col ([`conv::Geometry::im2col`]) over half as many channels gathers it, pair
/// `j = c2·taps + tap` of each position. Row 0 of each group's code rows is all ones (its
/// sums are `usum`), rows `1..=C_out/group` the codes in the same pair order. A reduction
/// longer than the overflow-safe chunk runs as one GEMM per chunk of pairs into i64 sums.
/// Zeros add nothing to an exact integer sum, so `acc` and `usum` are the same integers as
/// the plain dot products.
fn conv_integer(
    b: &Bitplane,
    cv: &Conv,
    x: &Tensor,
    c: &Chosen,
    op: &'static str,
    out_shape: Vec<usize>,
) -> Result<Tensor, RuntimeError> {
    let xs = x.shape();
    let (batch, m, group) = (out_shape[0], out_shape[1], cv.group);
    let (c_in, kc) = (xs[1], b.spec.cols);
    let (cg, mg) = (c_in / group, m / group);
    let cg2 = cg.div_ceil(2);
    let shape = |reason: String| RuntimeError::Shape { op, reason };
    let (sp, kernel) = (&xs[2..], &cv.kernel[..]);
    if kernel.iter().product::<usize>() * cg != kc {
        return Err(shape(format!(
            "kernel {kernel:?} over {cg} channels per group is not the {kc} weight columns"
        )));
    }
    // The geometry of the paired input: `cg2` channels per group.
    let px: Vec<usize> = [batch, group * cg2].iter().chain(sp).copied().collect();
    let pw: Vec<usize> = [m, cg2].iter().chain(kernel).copied().collect();
    let (g, _) = conv::conv_geometry_of(op, cv, &px, &pw)?;
    let (kprod, p_in, p_out) = (g.kprod, g.p_in, g.p_out);
    if let Some(zero) = packed_zero(&c.act) {
        if p_out <= PACKED_MAX_POSITIONS {
            return conv_packed(cv, x, c, op, out_shape, zero);
        }
        if let Some(tile) = byte_panel::pick(c.k) {
            return conv_bytes(cv, x, c, op, out_shape, zero, tile);
        }
    }
    let pairs = cg2 * kprod;
    checked_numel(op, &[pairs, p_out])?;
    let u = quantize_input(f32s(op, x, INPUT_X)?, &c.act);
    let safe_pairs = safe_chunk(c.k, c.act.bits()) / 2;
    if safe_pairs == 0 {
        return Err(RuntimeError::Attribute {
            op,
            attr: "act_bits",
            reason: format!(
                "{}-bit activations with {}-plane codes overflow two-term i32 sums",
                c.act.bits(),
                c.k
            ),
        });
    }
    let (fa, fb) = folded(c);
    let per_image = m * p_out;
    let mut out = vec![0f32; out_shape.iter().product()];
    if per_image == 0 {
        return make(op, out_shape, TensorData::F32(out));
    }
    let rows = c.codes.rows.get_or_init(|| {
        (0..group)
            .map(|gi| {
                // Channel `ci`'s taps go to pairs `(ci/2)·taps + tap`, half `ci % 2`.
                panel::CodeRows::new(mg + 1, pairs, |r, row| {
                    for ci in 0..cg {
                        let dst = row[2 * (ci / 2) * kprod..]
                            .iter_mut()
                            .skip(ci % 2)
                            .step_by(2);
                        if r == 0 {
                            dst.take(kprod).for_each(|v| *v = 1);
                        } else {
                            let src =
                                &c.codes.codes[(gi * mg + r - 1) * kc + ci * kprod..][..kprod];
                            dst.zip(src).for_each(|(v, &q)| *v = q);
                        }
                    }
                })
            })
            .collect()
    });
    let tile = panel::pick();
    let ldo = panel::out_width(p_out);
    let pointwise = g.is_pointwise();
    type Bufs = (Vec<i32>, Vec<i32>, Vec<i32>, Vec<i64>);
    let image = |n: usize, dst: &mut [f32], (xp, colt, sums, wide): &mut Bufs| {
        for (gi, rows) in rows.iter().enumerate() {
            let ug = &u[(n * c_in + gi * cg) * p_in..(n * c_in + (gi + 1) * cg) * p_in];
            // A pointwise convolution's packed input already is its im2col.
            let packed = if pointwise { &mut *colt } else { &mut *xp };
            packed.clear();
            for c2 in 0..cg2 {
                let a = &ug[2 * c2 * p_in..(2 * c2 + 1) * p_in];
                match ug.get((2 * c2 + 1) * p_in..(2 * c2 + 2) * p_in) {
                    Some(b) => packed.extend(a.iter().zip(b).map(|(&a, &b)| panel::pack(a, b))),
                    None => packed.extend(a.iter().map(|&a| panel::pack(a, 0))),
                }
            }
            // The tiles of the last positions read up to PV values past the last row.
            colt.resize(pairs * p_out + panel::PV, 0);
            if !pointwise {
                g.im2col(xp, &mut colt[..pairs * p_out]);
            }
            sums.resize(rows.rows * ldo, 0);
            let chs = gi * mg..(gi + 1) * mg;
            let (fa, fb, bias) = (&fa[chs.clone()], &fb[chs.clone()], &c.bias[chs]);
            let dst = &mut dst[gi * mg * p_out..(gi + 1) * mg * p_out];
            if pairs <= safe_pairs {
                panel::gemm(tile, rows, 0..pairs, colt, p_out, p_out, sums);
                write_channels(sums, ldo, p_out, fa, fb, bias, dst);
            } else {
                wide.clear();
                wide.resize((mg + 1) * ldo, 0);
                for j0 in (0..pairs).step_by(safe_pairs) {
                    let js = j0..(j0 + safe_pairs).min(pairs);
                    panel::gemm(tile, rows, js, colt, p_out, p_out, sums);
                    for (w, &s) in wide.iter_mut().zip(sums.iter()) {
                        *w += s as i64;
                    }
                }
                write_channels(wide, ldo, p_out, fa, fb, bias, dst);
            }
        }
    };
    out.par_chunks_mut(per_image).enumerate().for_each_init(
        || (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
        |bufs, (n, dst)| image(n, dst, bufs),
    );
    debug_assert_eq!(out.len(), batch * per_image);
    make(op, out_shape, TensorData::F32(out))
}

/// Convolutions with at most this many output positions per image run on [`packed`] codes
/// ([`conv_packed`]): their codes are read once per image, for a few products each, so the
/// bytes of the codes, not the multiplications, set their time; the [`panel`] tile would
/// also compute [`panel::PV`] positions where there are fewer.
const PACKED_MAX_POSITIONS: usize = 8;

/// Conv integer path on packed codes, for layers with few output positions: per image and
/// group, the input's im2col (`u`, padding 0) is transposed to one row of activation codes
/// `x_q = u + zero` per output position (padding becomes `zero`, the code of real 0), and
/// every output channel's packed row is swept once per [`packed::SAMPLES`] positions.
fn conv_packed(
    cv: &Conv,
    x: &Tensor,
    c: &Chosen,
    op: &'static str,
    out_shape: Vec<usize>,
    zero: i64,
) -> Result<Tensor, RuntimeError> {
    let xs = x.shape();
    let (m, group, c_in) = (out_shape[1], cv.group, xs[1]);
    let (cg, mg) = (c_in / group, m / group);
    let pw: Vec<usize> = [m, cg].iter().chain(&cv.kernel).copied().collect();
    let (g, _) = conv::conv_geometry_of(op, cv, xs, &pw)?;
    let (p_in, p_out, kc) = (g.p_in, g.p_out, cg * g.kprod);
    let p = c
        .codes
        .packed
        .get_or_init(|| packed::PackedRows::new(&c.codes.codes, m, kc, c.k));
    let u = quantize_input(f32s(op, x, INPUT_X)?, &c.act);
    let (fa, fb) = folded(c);
    let per_image = m * p_out;
    let mut out = vec![0f32; out_shape.iter().product()];
    if per_image == 0 {
        return make(op, out_shape, TensorData::F32(out));
    }
    let image = |n: usize, dst: &mut [f32], col: &mut Vec<i16>| {
        for gi in 0..group {
            col.clear();
            col.resize(kc * p_out, 0);
            g.im2col(&u[(n * c_in + gi * cg) * p_in..][..cg * p_in], col);
            // u + zero = x_q, an i8 (padding: zero itself).
            let (xt, xsum) = packed_input(p_out, kc, p.padded, |pos, j| {
                (col[j * p_out + pos] + zero as i16) as i8
            });
            packed_accs(
                p,
                gi * mg..(gi + 1) * mg,
                &xt,
                &xsum,
                zero,
                |ch, pos, acc| {
                    let usum = xsum[pos] - kc as i64 * zero;
                    dst[ch * p_out + pos] = epilogue(fa[ch], fb[ch], c.bias[ch], acc, usum);
                },
            );
        }
    };
    out.par_chunks_mut(per_image)
        .enumerate()
        .for_each_init(Vec::new, |col, (n, dst)| image(n, dst, col));
    make(op, out_shape, TensorData::F32(out))
}

/// Conv integer path on the [`byte_panel`] (when this CPU has a byte tile for `k`): as
/// [`conv_integer`], with four input channels' biased codes `v = x_q + 2^7` per 32-bit lane
/// (`[C/group/4][positions]`, a group's last quad filled with the code of real 0 and zero
/// codes), im2col'd with that code as the padding, and the sums corrected by
/// `(zero + 2^7)·Σ q` per row (the row of ones gives `usum`).
fn conv_bytes(
    cv: &Conv,
    x: &Tensor,
    c: &Chosen,
    op: &'static str,
    out_shape: Vec<usize>,
    zero: i64,
    tile: byte_panel::Tile,
) -> Result<Tensor, RuntimeError> {
    let xs = x.shape();
    let (batch, m, group, c_in) = (out_shape[0], out_shape[1], cv.group, xs[1]);
    let (cg, mg) = (c_in / group, m / group);
    let cg4 = cg.div_ceil(4);
    let px: Vec<usize> = [batch, group * cg4]
        .iter()
        .chain(&xs[2..])
        .copied()
        .collect();
    let pw: Vec<usize> = [m, cg4].iter().chain(&cv.kernel).copied().collect();
    let (g, _) = conv::conv_geometry_of(op, cv, &px, &pw)?;
    let (kprod, p_in, p_out) = (g.kprod, g.p_in, g.p_out);
    let (quads, kc) = (cg4 * kprod, cg * kprod);
    checked_numel(op, &[quads, p_out])?;
    // zero ∈ [−128, 127] (`packed_zero`), so the code of real 0 is a byte.
    let zb = (zero + 128) as u8;
    let to_v = zero as i16 + 128;
    let u = quantize_input(f32s(op, x, INPUT_X)?, &c.act);
    let (fa, fb) = folded(c);
    let per_image = m * p_out;
    let mut out = vec![0f32; out_shape.iter().product()];
    if per_image == 0 {
        return make(op, out_shape, TensorData::F32(out));
    }
    let rows = c.codes.quads.get_or_init(|| {
        (0..group)
            .map(|gi| {
                // Channel `ci`'s taps go to quads `(ci/4)·taps + tap`, byte `ci % 4`.
                byte_panel::CodeQuads::new(mg + 1, quads, |r, row| {
                    for ci in 0..cg {
                        let src = &c.codes.codes[(gi * mg + r.max(1) - 1) * kc + ci * kprod..];
                        for (tap, &q) in src[..kprod].iter().enumerate() {
                            let at = ((ci / 4) * kprod + tap) * 4 + ci % 4;
                            // |q| ≤ 128, and q = 128 never occurs (q < 2^(k−1) ≤ 128).
                            row[at] = if r == 0 { 1 } else { q as i8 };
                        }
                    }
                })
            })
            .collect()
    });
    let ldo = panel::out_width(p_out);
    let pointwise = g.is_pointwise();
    let fill = byte_panel::pack4([zb; 4]);
    type Bufs = (Vec<i32>, Vec<i32>, Vec<i32>, Vec<i64>);
    let image = |n: usize, dst: &mut [f32], (xp, colt, sums, wide): &mut Bufs| {
        for (gi, rows) in rows.iter().enumerate() {
            let ug = &u[(n * c_in + gi * cg) * p_in..(n * c_in + (gi + 1) * cg) * p_in];
            let packed = if pointwise { &mut *colt } else { &mut *xp };
            packed.clear();
            // Quad c4's lane: byte h = channel 4·c4 + h's `v = u + zero + 128`, or the code of
            // real 0 past the group's last channel.
            for c4 in 0..cg4 {
                let start = packed.len();
                packed.resize(start + p_in, fill);
                let lanes = &mut packed[start..];
                for h in 0..4 {
                    let Some(src) = ug.get((4 * c4 + h) * p_in..(4 * c4 + h + 1) * p_in) else {
                        break;
                    };
                    let (shift, keep) = (8 * h as u32, !(0xff_i32 << (8 * h)));
                    for (lane, &u) in lanes.iter_mut().zip(src) {
                        let v = (u + to_v) as u8 as i32;
                        *lane = (*lane & keep) | (v << shift);
                    }
                }
            }
            // The tiles of the last positions read up to PV values past the last row.
            colt.resize(quads * p_out + panel::PV, 0);
            if !pointwise {
                g.im2col_fill(xp, &mut colt[..quads * p_out], fill);
            }
            sums.resize(rows.rows * ldo, 0);
            let chs = gi * mg..(gi + 1) * mg;
            let (fa, fb, bias) = (&fa[chs.clone()], &fb[chs.clone()], &c.bias[chs]);
            let dst = &mut dst[gi * mg * p_out..(gi + 1) * mg * p_out];
            if quads <= byte_panel::SAFE_QUADS {
                // One chunk: the corrected sums fit i32, whose epilogue vectorises.
                byte_panel::gemm(tile, rows, 0..quads, colt, p_out, p_out, sums);
                for (row, &qsum) in sums.chunks_exact_mut(ldo).zip(&rows.sums) {
                    let k = (zero as i32 + 128).wrapping_mul(qsum as i32);
                    row.iter_mut().for_each(|s| *s = s.wrapping_sub(k));
                }
                write_channels(&sums[..(mg + 1) * ldo], ldo, p_out, fa, fb, bias, dst);
                continue;
            }
            wide.clear();
            wide.resize((mg + 1) * ldo, 0);
            for j0 in (0..quads).step_by(byte_panel::SAFE_QUADS) {
                let js = j0..(j0 + byte_panel::SAFE_QUADS).min(quads);
                byte_panel::gemm(tile, rows, js, colt, p_out, p_out, sums);
                for (w, &s) in wide.iter_mut().zip(sums.iter()) {
                    *w += s as i64;
                }
            }
            for (row, &qsum) in wide.chunks_exact_mut(ldo).zip(&rows.sums) {
                row.iter_mut().for_each(|w| *w -= (zero + 128) * qsum);
            }
            write_channels(wide, ldo, p_out, fa, fb, bias, dst);
        }
    };
    out.par_chunks_mut(per_image).enumerate().for_each_init(
        || (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
        |bufs, (n, dst)| image(n, dst, bufs),
    );
    make(op, out_shape, TensorData::F32(out))
}

/// The epilogue of one group's output channels (`dst`: `[channels][p_out]`) from its
/// channel-major sums (`[1 + channels][ldo]`, row 0: `usum`), one contiguous run each.
fn write_channels<T: Copy + Into<i64>>(
    sums: &[T],
    ldo: usize,
    p_out: usize,
    fa: &[f32],
    fb: &[f32],
    bias: &[f32],
    dst: &mut [f32],
) {
    let (us, accs) = sums.split_at(ldo);
    let channels = dst.chunks_exact_mut(p_out).zip(accs.chunks_exact(ldo));
    for (((out, acc), &a), (&b, &bias)) in channels.zip(fa).zip(fb.iter().zip(bias)) {
        for ((o, &acc), &u) in out.iter_mut().zip(acc).zip(us) {
            *o = epilogue(a, b, bias, acc.into(), u.into());
        }
    }
}

/// Float path: dequantize input and weights, then the f32 Conv / Gemm kernels.
fn float_path(
    b: &Bitplane,
    kernel: &BitplaneKernel,
    x: &Tensor,
    c: &Chosen,
    op: &'static str,
) -> Result<Tensor, RuntimeError> {
    let spec = &b.spec;
    let u = quantize_input(f32s(op, x, INPUT_X)?, &c.act);
    let xhat = make(
        op,
        x.shape().to_vec(),
        TensorData::F32(u.iter().map(|&v| c.scale * v as f32).collect()),
    )?;
    let kk = spec.cols;
    let w: Vec<f32> = c
        .codes
        .codes
        .chunks(kk.max(1))
        .enumerate()
        .flat_map(|(ch, row)| {
            let (a, be) = (c.alpha[ch], c.beta[ch]);
            row.iter().map(move |&q| a * q as f32 + be)
        })
        .collect();
    let shape = kernel.weight_shape(spec).map_err(|e| RuntimeError::Shape {
        op,
        reason: e.to_string(),
    })?;
    let w = make(op, shape, TensorData::F32(w))?;
    let bias = make(op, vec![spec.rows], TensorData::F32(c.bias.to_vec()))?;
    match kernel {
        BitplaneKernel::Conv(cv) => {
            let cv = Conv {
                has_bias: true,
                ..cv.clone()
            };
            conv::conv(&cv, &[&xhat, &w, &bias])
        }
        BitplaneKernel::Linear => {
            let g = Gemm {
                alpha: 1.0,
                beta: 1.0,
                trans_a: false,
                trans_b: true,
                has_c: true,
            };
            linear::gemm(&g, &[&xhat, &w, &bias])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pseudo-random values in `-max..=max` (xorshift), shared with the panel tests.
    pub(super) fn vals(n: usize, seed: u64, max: i16) -> Vec<i16> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 33) % (2 * max as u64 + 1)) as i16 - max
            })
            .collect()
    }

    #[test]
    fn every_dot_is_exact() {
        for n in [0usize, 1, 15, 16, 31, 32, 33, 64, 100, 1000] {
            let a = vals(n, 3 + n as u64, 128);
            let b = vals(n, 7 + n as u64, 383);
            let want: i64 = a.iter().zip(&b).map(|(&x, &y)| x as i64 * y as i64).sum();
            assert_eq!(dot_portable(&a, &b) as i64, want, "n={n}");
            assert_eq!(dot(pick_dot(), &a, &b, safe_chunk(8, 8)), want, "n={n}");
            // Chunked accumulation (forced tiny chunks) gives the same total.
            assert_eq!(dot(pick_dot(), &a, &b, 5), want, "n={n}");
            #[cfg(target_arch = "x86_64")]
            if std::is_x86_feature_detected!("avx2") {
                assert_eq!(dot_avx2(&a, &b) as i64, want, "n={n}");
            }
        }
    }

    #[test]
    fn extreme_products_do_not_overflow() {
        // Worst case per element: q = -128 (k = 8), u = -(2^7 + 2^8) (A = 8, zero = 2^8).
        let chunk = safe_chunk(8, 8);
        let n = chunk * 3 + 17;
        let a = vec![-128i16; n];
        let b = vec![-384i16; n];
        assert_eq!(dot(pick_dot(), &a, &b, chunk), 128 * 384 * n as i64);
        assert_eq!(safe_chunk(1, 2), (i32::MAX as i64 / 6) as usize);
    }
}
