//! Vertical-layering arithmetic: per-channel symmetric weight codes, their bit-planes, the
//! prefix codes a `k`-plane model computes with ([`weights`](self)), asymmetric activation
//! quantization ([`act`]), and the validated view of one bit-plane layer at one plane count
//! ([`ResolvedLayer`]).
//!
//! This module is the single implementation of the formulas in `docs/vertical-layering.md`,
//! shared by the quantization passes (which produce planes), the training code (which fakes
//! them), the runtime kernels and the backends (which read them) and the container (which
//! ships them), so that all of them agree bit for bit: the prefix property depends on it.
//!
//! Nothing here panics, whatever the arguments: inconsistent sizes or widths are a
//! [`QuantError`] naming what is wrong, never an empty or guessed result.

mod act;
mod act_bits;
mod resolve;
#[cfg(test)]
mod tests;

pub use act::{
    act_limits, act_params, round_half_even, ActQuant, ActQuantizer, ActRange, MAX_ACT_BITS,
};
pub use act_bits::ActBits;
pub use resolve::{ResolveError, ResolvedLayer};

/// Smallest supported code width: at one bit the symmetric range `Q = 2^(B-1) - 1` is empty.
pub const MIN_BITS: u8 = 2;
/// Largest supported code width. Eight keeps every code and every `u = x_q - zero` inside
/// `i16`, which the integer kernels rely on.
pub const MAX_BITS: u8 = 8;

/// Why quantization arguments or plane data are inconsistent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuantError {
    /// The code width is outside `MIN_BITS..=MAX_BITS`.
    #[error("bit width {bits} is outside {MIN_BITS}..={MAX_BITS}")]
    Bits { bits: u8 },
    /// A plane count is outside `1..=bits`.
    #[error("plane count {k} is outside 1..={bits}")]
    PlaneCount { k: u8, bits: u8 },
    /// The buffer length does not match `rows`, `cols` and the plane count.
    #[error("{what} has {got} elements, expected {expected} ({rows} rows × {cols} columns)")]
    Length {
        what: &'static str,
        got: usize,
        expected: usize,
        rows: usize,
        cols: usize,
    },
    /// The planes hold fewer bytes than the first `k` planes need.
    #[error("planes hold {got} bytes, fewer than the {need} of {k} planes")]
    Short { k: u8, got: usize, need: usize },
    /// `rows · cols` (or the byte size of the planes) overflows `usize`.
    #[error("{rows} rows × {cols} columns overflows")]
    Overflow { rows: usize, cols: usize },
    /// The activation code width is outside `MIN_BITS..=MAX_ACT_BITS`.
    #[error("activation bit width {bits} is outside {MIN_BITS}..={MAX_ACT_BITS}")]
    ActBits { bits: u8 },
    /// The activation scale is zero, negative or not finite.
    #[error("activation scale {scale} must be finite and positive")]
    ActScale { scale: f32 },
    /// The activation zero point is not an integer within `±2^A`.
    #[error("activation zero point {zero} must be an integer in ±{bound}")]
    ZeroPoint { zero: f32, bound: u32 },
}

/// Bytes per plane row: `W = ceil(cols / 64)` little-endian `u64` words, so every row starts
/// on a word boundary and kernels can read whole words.
pub fn row_bytes(cols: usize) -> usize {
    cols.div_ceil(64) * 8
}

/// Byte length of `planes` planes of a `[rows, cols]` matrix, `None` on overflow.
pub fn planes_len(planes: usize, rows: usize, cols: usize) -> Option<usize> {
    planes.checked_mul(rows)?.checked_mul(row_bytes(cols))
}

/// Fails unless `bits` is a supported code width.
pub fn check_bits(bits: u8) -> Result<(), QuantError> {
    if (MIN_BITS..=MAX_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(QuantError::Bits { bits })
    }
}

/// Fails unless `bits` is a supported code width and `k` a plane count of it (`1..=bits`).
pub fn check_plane_count(bits: u8, k: u8) -> Result<(), QuantError> {
    check_bits(bits)?;
    if k == 0 || k > bits {
        return Err(QuantError::PlaneCount { k, bits });
    }
    Ok(())
}

/// Checks that `len` bytes hold exactly `planes` planes of a `[rows, cols]` matrix and that
/// `planes` is a valid count for `bits`-bit codes. Kernels call this before trusting a tensor.
pub fn check_layout(
    len: usize,
    planes: usize,
    rows: usize,
    cols: usize,
    bits: u8,
) -> Result<(), QuantError> {
    check_plane_count(bits, planes.min(255) as u8)?;
    let expected = planes_len(planes, rows, cols).ok_or(QuantError::Overflow { rows, cols })?;
    if len != expected {
        return Err(QuantError::Length {
            what: "planes",
            got: len,
            expected,
            rows,
            cols,
        });
    }
    Ok(())
}

/// The code range `(-2^(B-1), 2^(B-1) - 1)` of `bits`-bit two's-complement weight codes.
pub fn weight_limits(bits: u8) -> Result<(i32, i32), QuantError> {
    check_bits(bits)?;
    Ok((-(1i32 << (bits - 1)), (1i32 << (bits - 1)) - 1))
}

/// Fails unless `len == rows · cols`.
fn check_matrix(
    what: &'static str,
    len: usize,
    rows: usize,
    cols: usize,
) -> Result<(), QuantError> {
    let expected = rows
        .checked_mul(cols)
        .ok_or(QuantError::Overflow { rows, cols })?;
    if len != expected {
        return Err(QuantError::Length {
            what,
            got: len,
            expected,
            rows,
            cols,
        });
    }
    Ok(())
}

/// `q_B = clamp(round_half_away(v / s))` for one weight. `as` saturates and maps NaN to 0;
/// the clamp then enforces the code range.
#[inline]
fn weight_code(v: f32, s: f32, (qmin, qmax): (i32, i32)) -> i32 {
    ((v / s).round() as i32).clamp(qmin, qmax)
}

/// Per-row symmetric `bits`-bit quantization of a row-major `[rows, cols]` matrix.
///
/// Returns the codes `q_B` (row-major, each in `-2^(B-1) ..= 2^(B-1) - 1`) and one scale per
/// row, `s = max|row| / (2^(B-1) - 1)`, or `1` for an all-zero row so that dequantization
/// never divides by zero. Rounding is half away from zero, as the note specifies.
/// Non-finite weights give non-finite scales; NaN codes become 0.
pub fn quantize_rows(
    w: &[f32],
    rows: usize,
    cols: usize,
    bits: u8,
) -> Result<(Vec<i32>, Vec<f32>), QuantError> {
    let limits = weight_limits(bits)?;
    check_matrix("weights", w.len(), rows, cols)?;
    let qmax = limits.1;
    let mut codes = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(rows);
    for r in 0..rows {
        let row = &w[r * cols..(r + 1) * cols];
        let max = row.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
        let s = if max == 0.0 { 1.0 } else { max / qmax as f32 };
        scales.push(s);
        codes.extend(row.iter().map(|&v| weight_code(v, s, limits)));
    }
    Ok((codes, scales))
}

/// `q_B = clamp(round_half_away(W / s_r))` with given per-row scales (one per row of
/// `cols` weights): the codes of weights trained against fixed scales.
pub fn quantize_with_scales(
    w: &[f32],
    scales: &[f32],
    cols: usize,
    bits: u8,
) -> Result<Vec<i32>, QuantError> {
    let limits = weight_limits(bits)?;
    check_matrix("weights", w.len(), scales.len(), cols)?;
    Ok(w.iter()
        .enumerate()
        .map(|(i, &v)| weight_code(v, scales[i / cols.max(1)], limits))
        .collect())
}

/// Splits `bits`-bit two's-complement codes into `bits` bit-planes, most significant (the
/// sign) first, in the layout of `docs/vertical-layering.md`: `u8 [bits, rows, row_bytes(cols)]`.
///
/// Plane-major order makes "the first `k` planes" a contiguous byte prefix, which is what
/// lets a truncated container still be a valid model. Codes are taken modulo `2^bits`
/// (their low `bits` bits).
pub fn pack_planes(
    codes: &[i32],
    rows: usize,
    cols: usize,
    bits: u8,
) -> Result<Vec<u8>, QuantError> {
    check_bits(bits)?;
    check_matrix("codes", codes.len(), rows, cols)?;
    let total = planes_len(bits as usize, rows, cols).ok_or(QuantError::Overflow { rows, cols })?;
    let b = bits as usize;
    let rb = row_bytes(cols);
    let words = rb / 8;
    let plane_bytes = rows * rb;
    let mut out = vec![0u8; total];
    let mut row_words = vec![0u64; words * b];
    for r in 0..rows {
        row_words.iter_mut().for_each(|w| *w = 0);
        for (c, &q) in codes[r * cols..(r + 1) * cols].iter().enumerate() {
            let (word, bit) = (c / 64, c % 64);
            for p in 0..b {
                let set = ((q >> (b - 1 - p)) & 1) as u64;
                row_words[p * words + word] |= set << bit;
            }
        }
        for p in 0..b {
            let base = p * plane_bytes + r * rb;
            for (w, word) in row_words[p * words..(p + 1) * words].iter().enumerate() {
                out[base + 8 * w..base + 8 * w + 8].copy_from_slice(&word.to_le_bytes());
            }
        }
    }
    Ok(out)
}

/// The `k`-plane codes `q_k = q_B >> (B - k)` rebuilt from planes `0..k` alone:
/// `q_k = -2^(k-1)·p_0 + Σ_{i=1..k-1} 2^(k-1-i)·p_i`, row-major `[rows, cols]`.
///
/// This is the prefix property in code: nothing past the first `k` planes is read, so the
/// result is the same for a full model and for one truncated to `k` planes. `planes` may
/// hold more than `k` planes; `k` must be in `1..=MAX_BITS`.
pub fn prefix_codes(
    planes: &[u8],
    rows: usize,
    cols: usize,
    k: u8,
) -> Result<Vec<i32>, QuantError> {
    check_plane_count(MAX_BITS, k)?;
    let need = planes_len(k as usize, rows, cols).ok_or(QuantError::Overflow { rows, cols })?;
    if planes.len() < need {
        return Err(QuantError::Short {
            k,
            got: planes.len(),
            need,
        });
    }
    let k = k as usize;
    let rb = row_bytes(cols);
    let words = rb / 8;
    let plane_bytes = rows * rb;
    let mut out = Vec::with_capacity(rows * cols);
    for r in 0..rows {
        for w in 0..words {
            let mut acc = [0i32; 64];
            for p in 0..k {
                let coeff: i32 = if p == 0 {
                    -(1 << (k - 1))
                } else {
                    1 << (k - 1 - p)
                };
                let at = p * plane_bytes + r * rb + 8 * w;
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(&planes[at..at + 8]);
                let word = u64::from_le_bytes(bytes);
                // Branch-free over all 64 bits: vectorises, unlike iterating set bits.
                for (j, a) in acc.iter_mut().enumerate() {
                    *a += ((word >> j) & 1) as i32 * coeff;
                }
            }
            let n = (cols - 64 * w).min(64);
            out.extend_from_slice(&acc[..n]);
        }
    }
    Ok(out)
}

/// `q_k = q_B >> (B - k)` (an arithmetic shift: floor), the code a `k`-plane model sees of
/// the `B`-bit code `q_B`; what [`prefix_codes`] rebuilds from the planes.
pub fn truncate_code(q: i32, bits: u8, k: u8) -> Result<i32, QuantError> {
    check_plane_count(bits, k)?;
    Ok(q >> (bits - k))
}

/// The bucket-midpoint side table `(alpha, beta)` for plane count `k`: the starting point
/// the quantizer refines. Truncating to `k` planes maps every `q_B` in a bucket of
/// `2^(B-k)` codes to the bucket's lowest code; `alpha·q_k + beta` is the bucket's centre.
/// At `k = B` this is `(scale, 0)`.
pub fn midpoint_side(scale: f32, bits: u8, k: u8) -> Result<(f32, f32), QuantError> {
    check_plane_count(bits, k)?;
    let step = (1u32 << (bits - k)) as f32;
    Ok((scale * step, scale * (step - 1.0) / 2.0))
}
