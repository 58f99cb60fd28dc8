//! Bit-plane kernels: Conv and Linear layers with vertically layered weights, run at a
//! chosen plane count `k` (W k A8), following `docs/vertical-layering.md` to the letter.
//!
//! Two paths compute the same layer:
//! - **integer** (the deployment semantics): the input is quantized to `A`-bit integers
//!   `u = x_q - zero`, the `k`-plane codes `q_k` are unpacked once per call from planes
//!   `0..k`, and `acc = Σ q_k·u`, `usum = Σ u` are exact integer sums (i16 operands, i32
//!   partial sums over reduction chunks that provably cannot overflow, i64 totals). Unpacking
//!   and running an integer GEMM was chosen over iterating set bits per plane: it does one
//!   multiply-add per weight instead of up to `k` adds, and the dot products vectorise
//!   (`vpmaddwd` when the CPU has AVX2, detected at run time; portable code otherwise).
//!   Conv uses a channel-last integer im2col so that every kernel row is a contiguous copy,
//!   and a microkernel of 4 code rows × 2 positions over rows zero-padded to 16 values, with
//!   a row of ones among the codes so that `usum` comes out of the same sweep; both layers
//!   sweep cache-sized blocks of positions/samples with every weight row.
//!   The epilogue is then, in f32 and in this order:
//!   `y = (alpha·scale)·(acc as f32) + (beta·scale)·(usum as f32) + bias`;
//! - **float** (the reference): the f32 Conv/Gemm kernels run on the dequantized input
//!   `scale·(x_q - zero)` and weights `W_k = alpha·q_k + beta`, plus `bias`.
//!
//! The two agree to float rounding, which is what the tests check.

use rayon::prelude::*;
use strata_ir::ops::bitplane::{Bitplane, BitplaneKernel, INPUT_PLANES, INPUT_X};
use strata_ir::ops::{Conv, Gemm};
use strata_ir::quant::{ActQuantizer, ResolveError};
use strata_ir::{Op, Tensor, TensorData, TensorType};

use super::{checked_numel, conv, linear, make};
use crate::RuntimeError;

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
    /// `q_k`, row-major `[R, K]`.
    codes: Vec<i16>,
}

/// Evaluates a bit-plane op at plane count `planes` (`None`: the largest plane count that
/// has a side table and whose planes are present) on the given path.
pub fn bitplane(
    b: &Bitplane,
    inputs: &[&Tensor],
    planes: Option<u8>,
    path: QuantPath,
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
    let chosen = choose(b, inputs, planes, name)?;
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
/// validated view at `k` from [`Bitplane::resolve`], with `q_k` unpacked.
fn choose<'a>(
    b: &Bitplane,
    inputs: &[&'a Tensor],
    planes: Option<u8>,
    op: &'static str,
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
    let codes = layer.codes().map_err(|e| shape(format!("planes: {e}")))?;
    Ok(Chosen {
        k,
        scale: layer.act.params().scale,
        act: layer.act,
        alpha: layer.alpha,
        beta: layer.beta,
        bias: layer.bias,
        // |q_k| ≤ 2^(k-1) ≤ 128 always fits.
        codes: codes.into_iter().map(|q| q as i16).collect(),
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

/// The fastest dot product this CPU supports; all of them are exact.
fn pick_dot() -> DotI32 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
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

/// Linear integer path: `[N, K] → [N, R]`, parallel over the batch.
fn linear_integer(
    b: &Bitplane,
    x: &Tensor,
    c: &Chosen,
    op: &'static str,
    out_shape: Vec<usize>,
) -> Result<Tensor, RuntimeError> {
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
                    let q = &c.codes[ch * kk..(ch + 1) * kk];
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

/// Conv geometry of one call, from the validated input and output shapes.
struct Geom {
    in_ch: usize,
    in_sp: Vec<usize>,
    out_sp: Vec<usize>,
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    pads_begin: Vec<usize>,
    group: usize,
}

/// Fills `col` (`[p_out, stride]`, position-major so every dot product reads contiguous
/// memory) with the receptive fields of one group of one image; the `stride − prod(kernel)·cg`
/// values after each field are never written (the caller keeps them zero). `uh` is the
/// group's input channel-last (`[p_in, cg]`), so each kernel tap copies `cg` contiguous
/// values; the reduction order is therefore `kernel…, C/group`, and the codes are permuted
/// to match (exact integer sums do not depend on the order). Padding taps are `u = 0`.
fn im2col_hwc(g: &Geom, uh: &[i16], cg: usize, stride: usize, col: &mut [i16]) {
    let d = g.in_sp.len();
    if cg == 0 || g.kernel.contains(&0) {
        return; // an empty field: the zero row is the whole of it
    }
    if d == 0 {
        // A 0-d convolution is a per-position dot over the channels.
        for (row, src) in col.chunks_mut(stride).zip(uh.chunks(cg)) {
            row[..cg].copy_from_slice(src);
        }
        return;
    }
    let last = d - 1;
    let (k_last, dil_last, in_last) = (g.kernel[last], g.dilations[last], g.in_sp[last]);
    // Kernel rows: every tap combination of the leading axes; the last axis is walked per row
    // so that, with dilation 1, a whole row of taps is one contiguous copy of `k_last·cg`.
    let rows: usize = g.kernel[..last].iter().product();
    let roffs: Vec<Vec<isize>> = (0..rows)
        .map(|kr| {
            let mut rem = kr;
            let mut v = vec![0isize; last];
            for j in (0..last).rev() {
                v[j] = ((rem % g.kernel[j]) * g.dilations[j]) as isize;
                rem /= g.kernel[j];
            }
            v
        })
        .collect();
    let run = k_last * cg;
    let mut base = vec![0isize; d];
    for (p, row) in col.chunks_mut(stride).enumerate() {
        let mut rem = p;
        for j in (0..d).rev() {
            let o = rem % g.out_sp[j];
            rem /= g.out_sp[j];
            base[j] = (o * g.strides[j]) as isize - g.pads_begin[j] as isize;
        }
        let x0 = base[last];
        let x_end = x0 + ((k_last - 1) * dil_last) as isize;
        let whole = dil_last == 1 && x0 >= 0 && (x_end as usize) < in_last;
        for (off, dst) in roffs.iter().zip(row.chunks_mut(run)) {
            // Flat index of the row's leading coordinates, if they are inside the input.
            let mut flat = 0usize;
            let mut inside = true;
            for j in 0..last {
                let pos = base[j] + off[j];
                if pos < 0 || pos as usize >= g.in_sp[j] {
                    inside = false;
                    break;
                }
                flat = flat * g.in_sp[j] + pos as usize;
            }
            if !inside {
                dst.fill(0);
            } else if whole {
                let at = (flat * in_last + x0 as usize) * cg;
                dst.copy_from_slice(&uh[at..at + run]);
            } else {
                for (kw, tap) in dst.chunks_mut(cg).enumerate() {
                    let x = x0 + (kw * dil_last) as isize;
                    if x < 0 || x as usize >= in_last {
                        tap.fill(0);
                    } else {
                        let at = (flat * in_last + x as usize) * cg;
                        tap.copy_from_slice(&uh[at..at + cg]);
                    }
                }
            }
        }
    }
}

/// Code rows one microkernel call multiplies with each position.
const MR: usize = 4;
/// Positions one microkernel call reads.
const NR: usize = 2;
/// Reduction lengths are padded with zeros to a multiple of this (one AVX2 `vpmaddwd`).
const KR: usize = 16;

/// `out[r][c] = Σ_i q[r·stride + i]·f_c[i]` over `i < len` (a multiple of [`KR`]) for
/// [`MR`] code rows and [`NR`] positions, exact when every sum fits i32 (wrapping lane
/// arithmetic is exact modulo 2^32, so only the totals matter).
type MicroKernel = fn(&[i16], usize, [&[i16]; NR], usize) -> [[i32; NR]; MR];

/// Portable microkernel (LLVM vectorises the inner loop for the baseline target).
fn micro_portable(q: &[i16], stride: usize, f: [&[i16]; NR], len: usize) -> [[i32; NR]; MR] {
    let mut out = [[0i32; NR]; MR];
    for (r, o) in out.iter_mut().enumerate() {
        let qr = &q[r * stride..r * stride + len];
        for (c, fc) in f.iter().enumerate() {
            o[c] = qr
                .iter()
                .zip(&fc[..len])
                .fold(0i32, |s, (&a, &b)| s.wrapping_add(a as i32 * b as i32));
        }
    }
    out
}

/// AVX2 microkernel: per 16 reduction elements, two position loads and four code-row loads
/// feed eight `vpmaddwd` (exact i16 products, pairwise i32 sums); the eight accumulators
/// are reduced together with one `vphaddd` tree.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn micro_avx2_inner(q: &[i16], stride: usize, f: [&[i16]; NR], len: usize) -> [[i32; NR]; MR] {
    use std::arch::x86_64::*;
    assert!(len % KR == 0 && q.len() >= (MR - 1) * stride + len);
    assert!(f[0].len() >= len && f[1].len() >= len);
    let mut acc = [_mm256_setzero_si256(); MR * NR];
    let mut i = 0;
    while i < len {
        // SAFETY: i + 16 ≤ len, and the asserts above bound every row and position slice by
        // len, so each 16-lane unaligned load is in bounds.
        unsafe {
            let f0 = _mm256_loadu_si256(f[0].as_ptr().add(i) as *const __m256i);
            let f1 = _mm256_loadu_si256(f[1].as_ptr().add(i) as *const __m256i);
            for r in 0..MR {
                let qr = _mm256_loadu_si256(q.as_ptr().add(r * stride + i) as *const __m256i);
                acc[2 * r] = _mm256_add_epi32(acc[2 * r], _mm256_madd_epi16(qr, f0));
                acc[2 * r + 1] = _mm256_add_epi32(acc[2 * r + 1], _mm256_madd_epi16(qr, f1));
            }
        }
        i += KR;
    }
    // hadd(hadd(a0,a1), hadd(a2,a3)) holds per-128-bit-half totals of a0..a3; adding the two
    // halves of the pair [h(a0..a3), h(a4..a7)] gives the eight totals in order.
    let h01 = _mm256_hadd_epi32(acc[0], acc[1]);
    let h23 = _mm256_hadd_epi32(acc[2], acc[3]);
    let h45 = _mm256_hadd_epi32(acc[4], acc[5]);
    let h67 = _mm256_hadd_epi32(acc[6], acc[7]);
    let lo = _mm256_hadd_epi32(h01, h23);
    let hi = _mm256_hadd_epi32(h45, h67);
    let sum = _mm256_add_epi32(
        _mm256_permute2x128_si256(lo, hi, 0x20),
        _mm256_permute2x128_si256(lo, hi, 0x31),
    );
    let mut lanes = [0i32; 8];
    // SAFETY: `lanes` is 32 bytes, exactly one unaligned 256-bit store.
    unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, sum) };
    [
        [lanes[0], lanes[1]],
        [lanes[2], lanes[3]],
        [lanes[4], lanes[5]],
        [lanes[6], lanes[7]],
    ]
}

#[cfg(target_arch = "x86_64")]
fn micro_avx2(q: &[i16], stride: usize, f: [&[i16]; NR], len: usize) -> [[i32; NR]; MR] {
    // SAFETY: only selected by `pick_micro` after AVX2 was detected on this CPU.
    unsafe { micro_avx2_inner(q, stride, f, len) }
}

/// `out[r·ldo + p] = Σ_{i < stride} q[r·stride + i]·col[p·stride + i]` (i32) for [`MR`] code
/// rows and `np` positions of a position block, when a whole row's sum fits i32 (`stride` at
/// most the overflow-safe chunk). One call per row block sweeps every position, so the
/// microkernel is inlined into the sweep instead of called per 4 × 2 tile.
type PanelKernel = fn(&[i16], usize, &[i16], usize, &mut [i32], usize);

/// The sweep shared by every panel kernel: `micro` over position pairs (an odd last position
/// is computed twice and stored once).
#[inline(always)]
fn panel_with(
    micro: impl Fn(&[i16], usize, [&[i16]; NR], usize) -> [[i32; NR]; MR],
    q: &[i16],
    stride: usize,
    col: &[i16],
    np: usize,
    out: &mut [i32],
    ldo: usize,
) {
    for p in (0..np).step_by(NR) {
        let pp = [p, (p + 1).min(np - 1)];
        let f = pp.map(|pos| &col[pos * stride..(pos + 1) * stride]);
        let sums = micro(q, stride, f, stride);
        // Element stores: a two-element `copy_from_slice` is a `memcpy` call per tile.
        for (r, row) in sums.iter().enumerate() {
            out[r * ldo + p] = row[0];
            if pp[1] != p {
                out[r * ldo + pp[1]] = row[1];
            }
        }
    }
}

fn panel_portable(q: &[i16], stride: usize, col: &[i16], np: usize, out: &mut [i32], ldo: usize) {
    panel_with(micro_portable, q, stride, col, np, out, ldo);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn panel_avx2_inner(q: &[i16], stride: usize, col: &[i16], np: usize, out: &mut [i32], ldo: usize) {
    panel_with(
        // Inside this AVX2 function the AVX2 microkernel is a safe call.
        |q, s, f, len| micro_avx2_inner(q, s, f, len),
        q,
        stride,
        col,
        np,
        out,
        ldo,
    );
}

#[cfg(target_arch = "x86_64")]
fn panel_avx2(q: &[i16], stride: usize, col: &[i16], np: usize, out: &mut [i32], ldo: usize) {
    // SAFETY: only selected by `pick_panel` after AVX2 was detected on this CPU.
    unsafe { panel_avx2_inner(q, stride, col, np, out, ldo) }
}

/// The fastest panel kernel this CPU supports; all of them are exact.
fn pick_panel() -> PanelKernel {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        return panel_avx2;
    }
    panel_portable
}

/// The fastest microkernel this CPU supports; all of them are exact.
fn pick_micro() -> MicroKernel {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        return micro_avx2;
    }
    micro_portable
}

/// Exact `Σ q_r·f_c` (i64) for [`MR`] code rows and [`NR`] positions of row length `stride`
/// (a multiple of [`KR`]): microkernel calls over reduction pieces of at most `chunk`
/// elements, whose i32 sums cannot overflow.
fn block_sums(
    micro: MicroKernel,
    q: &[i16],
    stride: usize,
    f: [&[i16]; NR],
    chunk: usize,
) -> [[i64; NR]; MR] {
    let mut out = [[0i64; NR]; MR];
    let mut k0 = 0;
    while k0 < stride {
        let len = chunk.min(stride - k0);
        let part = micro(&q[k0..], stride, [&f[0][k0..], &f[1][k0..]], len);
        for (o, p) in out.iter_mut().zip(part) {
            for (oc, pc) in o.iter_mut().zip(p) {
                *oc += pc as i64;
            }
        }
        k0 += len;
    }
    out
}

/// Conv integer path: per image and group, integer im2col then `acc = Q_g · colᵀ`.
///
/// The group's code rows are laid out for the microkernel: row 0 is all ones (its sums are
/// `usum`), rows `1..=C_out/group` the codes in `kernel…, C/group` order, then zero rows up
/// to a multiple of [`MR`]; every row and every im2col row is zero-padded to a multiple of
/// [`KR`]. Zeros add nothing to an exact integer sum, so `acc` and `usum` are the same
/// integers as the plain dot products.
fn conv_integer(
    b: &Bitplane,
    cv: &Conv,
    x: &Tensor,
    c: &Chosen,
    op: &'static str,
    out_shape: Vec<usize>,
) -> Result<Tensor, RuntimeError> {
    let xs = x.shape();
    let d = xs.len() - 2;
    let g = Geom {
        in_ch: xs[1],
        in_sp: xs[2..].to_vec(),
        out_sp: out_shape[2..].to_vec(),
        kernel: cv.kernel.clone(),
        strides: cv.strides.clone(),
        dilations: cv.dilations.clone(),
        pads_begin: cv.pads[..d].to_vec(),
        group: cv.group,
    };
    let (batch, m) = (out_shape[0], out_shape[1]);
    let cg = g.in_ch / g.group;
    let mg = m / g.group;
    let kc = b.spec.cols;
    let stride = kc.div_ceil(KR) * KR;
    let p_in: usize = g.in_sp.iter().product();
    let p_out: usize = g.out_sp.iter().product();
    checked_numel(op, &[p_out, stride])?;
    let u = quantize_input(f32s(op, x, INPUT_X)?, &c.act);
    // Reduction pieces: a multiple of KR within the overflow-safe length.
    let chunk = safe_chunk(c.k, c.act.bits()) / KR * KR;
    if chunk == 0 {
        return Err(RuntimeError::Attribute {
            op,
            attr: "act_bits",
            reason: format!(
                "{}-bit activations with {}-plane codes overflow 16-term i32 sums",
                c.act.bits(),
                c.k
            ),
        });
    }
    let micro = pick_micro();
    let (fa, fb) = folded(c);
    let per_image = m * p_out;
    let mut out = vec![0f32; out_shape.iter().product()];
    if per_image == 0 {
        return make(op, out_shape, TensorData::F32(out));
    }
    // Per group: the ones row, the permuted codes, zero rows; every row `stride` long.
    let rows_g = (mg + 1).div_ceil(MR) * MR;
    let kprod = kc / cg.max(1);
    let mut codes = vec![0i16; g.group * rows_g * stride];
    for gi in 0..g.group {
        let block = &mut codes[gi * rows_g * stride..(gi + 1) * rows_g * stride];
        block[..kc].fill(1);
        for mi in 0..mg {
            let src = &c.codes[(gi * mg + mi) * kc..(gi * mg + mi + 1) * kc];
            let dst = &mut block[(mi + 1) * stride..(mi + 1) * stride + kc];
            for ci in 0..cg {
                for kk in 0..kprod {
                    dst[kk * cg + ci] = src[ci * kprod + kk];
                }
            }
        }
    }
    let panel = pick_panel();
    let image = |n: usize, dst: &mut [f32], bufs: &mut (Vec<i16>, Vec<i16>, Vec<i32>)| {
        let (col, uh, sums) = bufs;
        // Zero-filled once; the padding after each field is never written.
        col.resize(p_out * stride, 0);
        uh.resize(p_in * cg, 0);
        // `usum` of the long-reduction path (the panel path keeps it in `sums`).
        let mut usum = if stride <= chunk {
            Vec::new()
        } else {
            vec![0i64; p_out]
        };
        for gi in 0..g.group {
            let ug = &u[(n * g.in_ch + gi * cg) * p_in..(n * g.in_ch + (gi + 1) * cg) * p_in];
            for (ci, plane) in ug.chunks(p_in).enumerate() {
                for (pi, &v) in plane.iter().enumerate() {
                    uh[pi * cg + ci] = v;
                }
            }
            im2col_hwc(&g, uh, cg, stride, col);
            let gcodes = &codes[gi * rows_g * stride..(gi + 1) * rows_g * stride];
            // Blocks of positions small enough to stay in cache while every row of the
            // group's codes sweeps over them; row block 0 (with the ones row) comes first,
            // so each position's `usum` is known before its outputs are written.
            let pb = (POSITION_BLOCK_BYTES / (2 * stride)).max(NR);
            if stride <= chunk {
                // Every row's sum fits i32: each row block sweeps the position block in one
                // panel call into `sums` (row 0: `usum`), then every output channel's run of
                // positions gets its epilogue in one contiguous loop.
                sums.resize(rows_g * pb, 0);
                for p0 in (0..p_out).step_by(pb) {
                    let np = pb.min(p_out - p0);
                    let block = &col[p0 * stride..(p0 + np) * stride];
                    for r0 in (0..rows_g).step_by(MR) {
                        let q = &gcodes[r0 * stride..(r0 + MR) * stride];
                        panel(q, stride, block, np, &mut sums[r0 * np..], np);
                    }
                    let (us, rows) = sums[..(mg + 1) * np].split_at(np);
                    for (mi, acc) in rows.chunks_exact(np).enumerate() {
                        let ch = gi * mg + mi;
                        let (a, b, bias) = (fa[ch], fb[ch], c.bias[ch]);
                        let out = &mut dst[ch * p_out + p0..ch * p_out + p0 + np];
                        for ((o, &acc), &u) in out.iter_mut().zip(acc).zip(us) {
                            *o = epilogue(a, b, bias, acc as i64, u as i64);
                        }
                    }
                }
                continue;
            }
            for p0 in (0..p_out).step_by(pb) {
                let p1 = (p0 + pb).min(p_out);
                for r0 in (0..rows_g).step_by(MR) {
                    let q = &gcodes[r0 * stride..(r0 + MR) * stride];
                    for p in (p0..p1).step_by(NR) {
                        // An odd last position is computed twice and written once.
                        let pp = [p, (p + 1).min(p1 - 1)];
                        let f = pp.map(|pos| &col[pos * stride..(pos + 1) * stride]);
                        let sums = block_sums(micro, q, stride, f, chunk);
                        for (r, row) in sums.iter().enumerate() {
                            let gr = r0 + r;
                            for (c2, &acc) in row.iter().enumerate().take(pp[1] + 1 - p) {
                                let pos = pp[c2];
                                if gr == 0 {
                                    usum[pos] = acc;
                                } else if gr <= mg {
                                    let ch = gi * mg + gr - 1;
                                    dst[ch * p_out + pos] =
                                        epilogue(fa[ch], fb[ch], c.bias[ch], acc, usum[pos]);
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    out.par_chunks_mut(per_image).enumerate().for_each_init(
        || (Vec::new(), Vec::new(), Vec::new()),
        |bufs, (n, dst)| image(n, dst, bufs),
    );
    debug_assert_eq!(out.len(), batch * per_image);
    make(op, out_shape, TensorData::F32(out))
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

    fn vals(n: usize, seed: u64, max: i16) -> Vec<i16> {
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

    /// Every microkernel and the chunked block sums against i64 dot products: edge codes
    /// (±2^(k−1)), the largest |u|, reduction lengths of one to many [`KR`] pieces, and
    /// pieces shorter than the row (the i64 carry between them).
    #[test]
    fn microkernels_match_i64_dot_products() {
        let mut kernels: Vec<MicroKernel> = vec![micro_portable];
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            kernels.push(micro_avx2);
        }
        for stride in [16usize, 32, 48, 160, 1024] {
            for seed in 0..4u64 {
                let mut q = vals(MR * stride, 11 + seed + stride as u64, 128);
                let f0 = vals(stride, 5 + seed, 384);
                let mut f1 = vals(stride, 9 + seed, 384);
                if seed == 0 {
                    // Worst case: every product −128 · −384 (sums up to 49152 · stride).
                    q.iter_mut().for_each(|v| *v = -128);
                    f1.iter_mut().for_each(|v| *v = -384);
                }
                let want: Vec<[i64; NR]> = (0..MR)
                    .map(|r| {
                        let qr = &q[r * stride..(r + 1) * stride];
                        [&f0, &f1]
                            .map(|f| qr.iter().zip(f).map(|(&a, &b)| a as i64 * b as i64).sum())
                    })
                    .collect();
                for &micro in &kernels {
                    for chunk in [16usize, 32, safe_chunk(8, 8) / KR * KR] {
                        let got = block_sums(micro, &q, stride, [&f0, &f1], chunk);
                        assert_eq!(
                            got.to_vec(),
                            want,
                            "stride {stride} seed {seed} chunk {chunk}"
                        );
                    }
                }
            }
        }
    }

    /// Every panel kernel against the microkernel's block sums, position by position: odd
    /// and even position counts, a row stride (`ldo`) wider than the block, edge codes.
    #[test]
    fn panels_match_block_sums() {
        let mut panels: Vec<PanelKernel> = vec![panel_portable];
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            panels.push(panel_avx2);
        }
        for stride in [16usize, 48, 288] {
            for np in [1usize, 2, 7, 16] {
                let mut q = vals(MR * stride, 3 + stride as u64, 128);
                q[..stride].iter_mut().for_each(|v| *v = -128);
                let col = vals(np * stride, 17 + np as u64, 384);
                let ldo = np + 3;
                for &panel in &panels {
                    let mut out = vec![i32::MIN; MR * ldo];
                    panel(&q, stride, &col, np, &mut out, ldo);
                    for p in 0..np {
                        let f = &col[p * stride..(p + 1) * stride];
                        let want = block_sums(micro_portable, &q, stride, [f, f], stride);
                        for (r, row) in want.iter().enumerate() {
                            assert_eq!(
                                out[r * ldo + p] as i64,
                                row[0],
                                "stride {stride} np {np} p {p} r {r}"
                            );
                        }
                    }
                    // Nothing past each row's positions is written.
                    assert!((0..MR).all(|r| out[r * ldo + np..(r + 1) * ldo]
                        .iter()
                        .all(|&v| v == i32::MIN)));
                }
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
