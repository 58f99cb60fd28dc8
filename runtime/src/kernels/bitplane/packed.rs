//! Packed codes: a layer's `k`-plane codes stored in 2-, 4- or 8-bit fields (the narrowest
//! that holds `k` bits), multiplied by 8-bit activations without widening the codes first.
//!
//! *Why:* where a layer's weights are read from memory once per call (a fully connected
//! layer at batch 1, a late convolution with a handful of output positions) its time is the
//! bytes of its codes; the int16 codes of the [`super::panel`] GEMM are two bytes a weight
//! at every `k`. Here a weight costs `k ≤ 2`: a quarter byte, `k ≤ 4`: half a byte, else a
//! byte, and the kernel does the multiplications on the packed bytes: `vpmaddubsw`
//! multiplies unsigned fields by signed 8-bit activations, 32 products per instruction, which
//! is exact because a field is at most `2^w − 1 ≤ 15` (see [`multi_dot`]).
//!
//! The arithmetic: with `x = x_q` (the activation codes, in `i8` when the zero point is), a
//! field `f = q + o` (`o = 2^(w−1)` for `w < 8`, `0` for `w = 8`, where the field is the
//! signed code itself) and `S = Σ f·x` over the row,
//! `acc = Σ q·(x − zero) = S − o·Σx − zero·Σq`, with `Σq` kept per row ([`PackedRows::qsum`]).
//! All exact integers, so `acc` is the integer the int16 kernels compute.
//!
//! Layout: each row is padded with `q = 0` to whole blocks of `256 / w` codes, one 32-byte
//! vector each; byte `i` of a block holds codes `i, i + 32, i + 64, …` in its fields from the
//! low bits up, so that masking and shifting a loaded vector gives 32 codes in order, which
//! meet 32 consecutive activations.

/// Code fields per 32-byte block at width `w`: `32 · 8 / w`.
pub(super) const fn block_codes(w: u8) -> usize {
    256 / w as usize
}

/// Field width for `k`-plane codes: 2, 4 or 8 bits.
pub(super) fn width_for(k: u8) -> u8 {
    match k {
        0..=2 => 2,
        3..=4 => 4,
        _ => 8,
    }
}

/// The field offset `o`: fields of `w < 8` bits are unsigned, `f = q + 2^(w−1)`.
pub(super) fn offset(w: u8) -> i64 {
    if w < 8 {
        1 << (w - 1)
    } else {
        0
    }
}

/// A layer's codes in `w`-bit fields, row-major, every row a whole number of blocks.
pub(super) struct PackedRows {
    data: Vec<u8>,
    /// Bits per field: 2, 4 or 8.
    pub width: u8,
    /// Codes per row including the zero codes of the last block.
    pub padded: usize,
    /// `Σ q` per row.
    pub qsum: Vec<i64>,
}

impl PackedRows {
    /// Packs row-major `[rows, cols]` codes `q_k` at plane count `k` (`|q| ≤ 2^(k−1)`, and
    /// `q < 2^(k−1)`, which every prefix code satisfies).
    pub fn new(codes: &[i16], rows: usize, cols: usize, k: u8) -> Self {
        let w = width_for(k);
        let bc = block_codes(w);
        let padded = cols.div_ceil(bc).max(1) * bc;
        let o = offset(w) as i16;
        let mask = if w == 8 { 0xff } else { (1u16 << w) - 1 };
        let mut data = vec![0u8; rows * padded * w as usize / 8];
        let mut qsum = Vec::with_capacity(rows);
        let field = |q: i16| ((q + o) as u16 & mask) as u8;
        let mut block = vec![0i16; bc];
        for (r, row) in codes.chunks_exact(cols.max(1)).take(rows).enumerate() {
            let dst = &mut data[r * padded * w as usize / 8..][..padded * w as usize / 8];
            for (blk, out) in dst.chunks_exact_mut(32).enumerate() {
                // The block's codes, zero past the row's end.
                let src = &row[(blk * bc).min(cols)..((blk + 1) * bc).min(cols)];
                block[..src.len()].copy_from_slice(src);
                block[src.len()..].fill(0);
                for (t, part) in block.chunks_exact(32).enumerate() {
                    for (o, &q) in out.iter_mut().zip(part) {
                        *o |= field(q) << (w as usize * t);
                    }
                }
            }
            qsum.push(row.iter().map(|&q| q as i64).sum());
        }
        qsum.resize(rows, 0);
        PackedRows {
            data,
            width: w,
            padded,
            qsum,
        }
    }

    /// Row `r`'s packed bytes.
    pub fn row(&self, r: usize) -> &[u8] {
        let n = self.padded * self.width as usize / 8;
        &self.data[r * n..(r + 1) * n]
    }

    /// Bytes held.
    #[cfg(test)]
    pub fn bytes(&self) -> usize {
        self.data.len()
    }
}

/// The most samples one sweep of a row serves (accumulators held in registers).
pub(super) const SAMPLES: usize = 4;

/// Codes per i32 partial sum: `|f·x| ≤ 255·128`, so 2^15 terms stay below 2^31.
const CHUNK_CODES: usize = 1 << 15;

/// `out[s] = Σ_j f_j·xs[s·ldx + j]` over a packed row's `padded` codes, for the
/// `out.len() ≤` [`SAMPLES`] samples; every sample holds `padded` values (zeros past the
/// row's codes). Exact: i32 partial sums over chunks of [`CHUNK_CODES`] codes, i64 total.
pub(super) fn multi_dot(row: &[u8], width: u8, xs: &[i8], ldx: usize, out: &mut [i64]) {
    let bc = block_codes(width);
    let blocks = row.len() / 32;
    assert!(out.len() <= SAMPLES && row.len() % 32 == 0);
    assert!(out.is_empty() || xs.len() >= (out.len() - 1) * ldx + blocks * bc);
    out.iter_mut().for_each(|o| *o = 0);
    let per_chunk = CHUNK_CODES / bc;
    for b0 in (0..blocks).step_by(per_chunk) {
        let b1 = (b0 + per_chunk).min(blocks);
        let mut part = [0i32; SAMPLES];
        let bytes = &row[b0 * 32..b1 * 32];
        let xs = &xs[b0 * bc..];
        pick()(bytes, width, xs, ldx, &mut part[..out.len()]);
        for (o, p) in out.iter_mut().zip(part) {
            *o += p as i64;
        }
    }
}

/// One chunk: `out[s] = Σ f·x` in i32 over whole blocks (the caller bounds the chunk).
type ChunkDot = fn(&[u8], u8, &[i8], usize, &mut [i32]);

fn chunk_portable(bytes: &[u8], width: u8, xs: &[i8], ldx: usize, out: &mut [i32]) {
    let (w, bc) = (width as usize, block_codes(width));
    let mask = if width == 8 { 0xff } else { (1u8 << w) - 1 };
    for (blk, b) in bytes.chunks_exact(32).enumerate() {
        for j in 0..bc {
            let field = (b[j % 32] >> (w * (j / 32))) & mask;
            let f = if width == 8 {
                field as i8 as i32
            } else {
                field as i32
            };
            for (s, o) in out.iter_mut().enumerate() {
                *o = o.wrapping_add(f * xs[s * ldx + blk * bc + j] as i32);
            }
        }
    }
}

/// AVX2: 8-bit codes are sign-extended and multiplied with `vpmaddwd`; 2- and 4-bit fields
/// are masked out of the loaded bytes and multiplied with `vpmaddubsw` (unsigned field ×
/// signed activation, pairwise i16 sums: at most `2·15·128 = 3,840` at width 4, `2·3·128 =
/// 768` at width 2), whose sums are added in i16 over 4 blocks (two fields each: at most
/// 30,720) or 8 blocks (four fields each: 24,576), below 2^15, and then widened with a
/// `vpmaddwd` by ones.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn chunk_avx2_inner<const S: usize>(
    bytes: &[u8],
    width: u8,
    xs: &[i8],
    ldx: usize,
    out: &mut [i32],
) {
    use std::arch::x86_64::*;
    let blocks = bytes.len() / 32;
    let bc = block_codes(width);
    assert!(out.len() == S && bytes.len() % 32 == 0);
    assert!(S == 0 || xs.len() >= (S - 1) * ldx + blocks * bc);
    let mut acc = [_mm256_setzero_si256(); S];
    let ones = _mm256_set1_epi16(1);
    let p = bytes.as_ptr();
    let x = xs.as_ptr();
    // SAFETY (all loads below): block `b` reads bytes `32b..32b + 32` (< bytes.len()) and, for
    // sample `s`, activations `s·ldx + b·bc + 0..bc`, inside `xs` by the assertion above.
    unsafe {
        match width {
            8 => {
                for b in 0..blocks {
                    let v = p.add(32 * b);
                    let q0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(v as *const __m128i));
                    let q1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(v.add(16) as *const __m128i));
                    for (s, a) in acc.iter_mut().enumerate() {
                        let xp = x.add(s * ldx + 32 * b);
                        let x0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(xp as *const __m128i));
                        let x1 =
                            _mm256_cvtepi8_epi16(_mm_loadu_si128(xp.add(16) as *const __m128i));
                        let d =
                            _mm256_add_epi32(_mm256_madd_epi16(q0, x0), _mm256_madd_epi16(q1, x1));
                        *a = _mm256_add_epi32(*a, d);
                    }
                }
            }
            4 | 2 => {
                let w = width as i32;
                let mask = _mm256_set1_epi8(((1u32 << w) - 1) as i8);
                let fields = 8 / width as usize;
                let flush = if width == 4 { 4 } else { 8 };
                let mut acc16 = [_mm256_setzero_si256(); S];
                for b in 0..blocks {
                    let v = _mm256_loadu_si256(p.add(32 * b) as *const __m256i);
                    for t in 0..fields {
                        let f = _mm256_and_si256(
                            _mm256_srl_epi16(v, _mm_cvtsi32_si128(w * t as i32)),
                            mask,
                        );
                        for (s, a) in acc16.iter_mut().enumerate() {
                            let xv = _mm256_loadu_si256(
                                x.add(s * ldx + bc * b + 32 * t) as *const __m256i
                            );
                            *a = _mm256_add_epi16(*a, _mm256_maddubs_epi16(f, xv));
                        }
                    }
                    if (b + 1) % flush == 0 || b + 1 == blocks {
                        for (a, a16) in acc.iter_mut().zip(acc16.iter_mut()) {
                            *a = _mm256_add_epi32(*a, _mm256_madd_epi16(*a16, ones));
                            *a16 = _mm256_setzero_si256();
                        }
                    }
                }
            }
            _ => unreachable!("field widths are 2, 4 or 8"),
        }
        for (o, a) in out.iter_mut().zip(acc) {
            let mut lanes = [0i32; 8];
            _mm256_storeu_si256(lanes.as_mut_ptr() as *mut __m256i, a);
            *o = lanes.iter().fold(0i32, |s, &l| s.wrapping_add(l));
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn chunk_avx2(bytes: &[u8], width: u8, xs: &[i8], ldx: usize, out: &mut [i32]) {
    // SAFETY: only selected by `pick` (or a test) after AVX2 was detected on this CPU.
    unsafe {
        match out.len() {
            1 => chunk_avx2_inner::<1>(bytes, width, xs, ldx, out),
            2 => chunk_avx2_inner::<2>(bytes, width, xs, ldx, out),
            3 => chunk_avx2_inner::<3>(bytes, width, xs, ldx, out),
            4 => chunk_avx2_inner::<4>(bytes, width, xs, ldx, out),
            _ => chunk_portable(bytes, width, xs, ldx, out),
        }
    }
}

/// The fastest chunk kernel this CPU supports under the [`crate::isa`] cap; all of them are
/// exact.
fn pick() -> ChunkDot {
    #[cfg(target_arch = "x86_64")]
    if crate::isa::avx2() {
        return chunk_avx2;
    }
    chunk_portable
}

#[cfg(test)]
mod tests {
    use super::super::tests::vals;
    use super::*;

    /// Every kernel against i64 sums of `q·x` (recovered through the documented
    /// `S − o·Σx`): every plane count, the edge codes `−2^(k−1)` and `2^(k−1) − 1`, the
    /// extreme activations `−128` and `127`, rows shorter than, equal to and past one block,
    /// rows past one i32 chunk, and 0 to 4 samples at once.
    #[test]
    fn every_width_matches_i64_sums() {
        let mut kernels: Vec<ChunkDot> = vec![chunk_portable];
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            kernels.push(chunk_avx2);
        }
        for k in 1..=8u8 {
            let (lo, hi) = (-(1i16 << (k - 1)), (1i16 << (k - 1)) - 1);
            for cols in [1usize, 31, 32, 33, 64, 100, 129, 1000, 70_001] {
                let rows = 3;
                let mut codes: Vec<i16> = vals(rows * cols, cols as u64 + k as u64, 128)
                    .into_iter()
                    .map(|v| v.clamp(lo, hi))
                    .collect();
                codes[..cols].iter_mut().for_each(|v| *v = lo);
                codes[cols..2 * cols].iter_mut().for_each(|v| *v = hi);
                let packed = PackedRows::new(&codes, rows, cols, k);
                assert_eq!(packed.width, width_for(k));
                assert_eq!(
                    packed.bytes(),
                    rows * packed.padded * packed.width as usize / 8
                );
                let ldx = packed.padded + 5;
                let mut xs: Vec<i8> = vals(SAMPLES * ldx, 11 + cols as u64, 128)
                    .into_iter()
                    .map(|v| v.clamp(-128, 127) as i8)
                    .collect();
                xs[..ldx].iter_mut().for_each(|v| *v = -128);
                xs[ldx..2 * ldx].iter_mut().for_each(|v| *v = 127);
                for s in 0..SAMPLES {
                    xs[s * ldx + cols..s * ldx + packed.padded].fill(0);
                }
                for r in 0..rows {
                    let q = &codes[r * cols..(r + 1) * cols];
                    assert_eq!(packed.qsum[r], q.iter().map(|&v| v as i64).sum::<i64>());
                    for ns in 0..=SAMPLES {
                        let want: Vec<i64> = (0..ns)
                            .map(|s| {
                                let x = &xs[s * ldx..s * ldx + cols];
                                q.iter().zip(x).map(|(&q, &x)| q as i64 * x as i64).sum()
                            })
                            .collect();
                        let xsum = |s: usize| -> i64 {
                            xs[s * ldx..s * ldx + cols].iter().map(|&v| v as i64).sum()
                        };
                        let mut got = vec![i64::MIN; ns];
                        multi_dot(packed.row(r), packed.width, &xs, ldx, &mut got);
                        for (s, g) in got.iter_mut().enumerate() {
                            *g -= offset(packed.width) * xsum(s);
                        }
                        assert_eq!(got, want, "k {k} cols {cols} row {r} samples {ns}");
                        // Each kernel on its own, over one chunk where the row fits one.
                        if cols < CHUNK_CODES {
                            for kernel in &kernels {
                                let mut part = vec![0i32; ns];
                                kernel(packed.row(r), packed.width, &xs, ldx, &mut part);
                                for s in 0..ns {
                                    let p = part[s] as i64 - offset(packed.width) * xsum(s);
                                    assert_eq!(p, want[s], "k {k} cols {cols} row {r} s {s}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
