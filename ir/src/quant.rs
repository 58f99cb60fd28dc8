//! Vertical-layering arithmetic: per-channel symmetric codes, their bit-planes and the
//! prefix codes a `k`-plane model computes with.
//!
//! This module is the single implementation of the formulas in `docs/vertical-layering.md`,
//! shared by the quantization passes (which produce planes), the runtime kernels (which read
//! them) and the container (which ships them), so that all of them agree bit for bit.
//!
//! The functions never panic, whatever the arguments: inconsistent sizes give an empty
//! result (which no consumer mistakes for a model) rather than an abort. Callers that take
//! sizes from untrusted input check them first with [`check_layout`].

/// Smallest supported code width: at one bit the symmetric range `Q = 2^(B-1) - 1` is empty.
pub const MIN_BITS: u8 = 2;
/// Largest supported code width. Eight keeps every code and every `u = x_q - zero` inside
/// `i16`, which the integer kernels rely on.
pub const MAX_BITS: u8 = 8;

/// Why plane data does not fit the layout it claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
    /// `rows · cols` (or the byte size of the planes) overflows `usize`.
    #[error("{rows} rows × {cols} columns overflows")]
    Overflow { rows: usize, cols: usize },
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

/// Checks that `len` bytes hold exactly `planes` planes of a `[rows, cols]` matrix and that
/// `planes` is a valid count for `bits`-bit codes. Kernels call this before trusting a tensor.
pub fn check_layout(
    len: usize,
    planes: usize,
    rows: usize,
    cols: usize,
    bits: u8,
) -> Result<(), QuantError> {
    if !(MIN_BITS..=MAX_BITS).contains(&bits) {
        return Err(QuantError::Bits { bits });
    }
    if planes == 0 || planes > bits as usize {
        return Err(QuantError::PlaneCount {
            k: planes.min(255) as u8,
            bits,
        });
    }
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

/// True when `bits` is a supported code width.
fn valid_bits(bits: u8) -> bool {
    (MIN_BITS..=MAX_BITS).contains(&bits)
}

/// Per-row symmetric `bits`-bit quantization of a row-major `[rows, cols]` matrix.
///
/// Returns the codes `q_B` (row-major, each in `-2^(B-1) ..= 2^(B-1) - 1`) and one scale per
/// row, `s = max|row| / (2^(B-1) - 1)`, or `1` for an all-zero row so that dequantization
/// never divides by zero. Rounding is half away from zero, as the note specifies.
///
/// Returns two empty vectors when `w.len() != rows·cols` or `bits` is outside
/// `MIN_BITS..=MAX_BITS`: a length mismatch every consumer detects, never a guessed model.
/// Non-finite weights give non-finite scales; NaN codes become 0.
pub fn quantize_rows(w: &[f32], rows: usize, cols: usize, bits: u8) -> (Vec<i32>, Vec<f32>) {
    if !valid_bits(bits) || rows.checked_mul(cols) != Some(w.len()) {
        return (Vec::new(), Vec::new());
    }
    let qmax = (1i32 << (bits - 1)) - 1;
    let qmin = -(1i32 << (bits - 1));
    let mut codes = Vec::with_capacity(w.len());
    let mut scales = Vec::with_capacity(rows);
    for r in 0..rows {
        let row = &w[r * cols..(r + 1) * cols];
        let max = row.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
        let s = if max == 0.0 { 1.0 } else { max / qmax as f32 };
        scales.push(s);
        // `as` saturates and maps NaN to 0; the clamp then enforces the code range.
        codes.extend(
            row.iter()
                .map(|&v| ((v / s).round() as i32).clamp(qmin, qmax)),
        );
    }
    (codes, scales)
}

/// Splits `bits`-bit two's-complement codes into `bits` bit-planes, most significant (the
/// sign) first, in the layout of `docs/vertical-layering.md`: `u8 [bits, rows, row_bytes(cols)]`.
///
/// Plane-major order makes "the first `k` planes" a contiguous byte prefix, which is what
/// lets a truncated container still be a valid model. Codes are taken modulo `2^bits`
/// (their low `bits` bits). Returns an empty vector when `codes.len() != rows·cols` or
/// `bits` is unsupported.
pub fn pack_planes(codes: &[i32], rows: usize, cols: usize, bits: u8) -> Vec<u8> {
    if !valid_bits(bits) || rows.checked_mul(cols) != Some(codes.len()) {
        return Vec::new();
    }
    let Some(total) = planes_len(bits as usize, rows, cols) else {
        return Vec::new();
    };
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
    out
}

/// The `k`-plane codes `q_k = q_B >> (B - k)` rebuilt from planes `0..k` alone:
/// `q_k = -2^(k-1)·p_0 + Σ_{i=1..k-1} 2^(k-1-i)·p_i`, row-major `[rows, cols]`.
///
/// This is the prefix property in code: nothing past the first `k` planes is read, so the
/// result is the same for a full model and for one truncated to `k` planes. `planes` may
/// hold more than `k` planes. Returns an empty vector when `k` is outside `1..=MAX_BITS` or
/// `planes` is shorter than `k` planes of `[rows, cols]`.
pub fn prefix_codes(planes: &[u8], rows: usize, cols: usize, k: u8) -> Vec<i32> {
    if !(1..=MAX_BITS).contains(&k) {
        return Vec::new();
    }
    let k = k as usize;
    match planes_len(k, rows, cols) {
        Some(need) if need <= planes.len() => {}
        _ => return Vec::new(),
    }
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
    out
}

/// The bucket-midpoint side table `(alpha, beta)` for plane count `k`: the starting point
/// the quantizer refines. Truncating to `k` planes maps every `q_B` in a bucket of
/// `2^(B-k)` codes to the bucket's lowest code; `alpha·q_k + beta` is the bucket's centre.
/// At `k = B` this is `(scale, 0)`.
///
/// Returns `(NaN, NaN)` when `bits` is unsupported or `k` is outside `1..=bits`, so a
/// misconfigured side table can never pass for a real one.
pub fn midpoint_side(scale: f32, bits: u8, k: u8) -> (f32, f32) {
    if !valid_bits(bits) || k == 0 || k > bits {
        return (f32::NAN, f32::NAN);
    }
    let step = (1u32 << (bits - k)) as f32;
    (scale * step, scale * (step - 1.0) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic xorshift64* so the property tests are reproducible without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn f32(&mut self) -> f32 {
            (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        }
    }

    const COLS: [usize; 6] = [1, 63, 64, 65, 128, 200];

    #[test]
    fn row_bytes_rounds_up_to_words() {
        assert_eq!(row_bytes(0), 0);
        assert_eq!(row_bytes(1), 8);
        assert_eq!(row_bytes(64), 8);
        assert_eq!(row_bytes(65), 16);
        assert_eq!(row_bytes(200), 32);
    }

    #[test]
    fn quantize_known_values() {
        // Row 0: max 1.27 → s = 0.01; 0.005 rounds half away from zero to 1 (0.5 → 1).
        // Row 1: all zero → scale 1, codes 0. Row 2: negative extreme reaches -127, not -128.
        let w = [
            1.27, -0.635, 0.005, -0.005, 0.0, 0.0, 0.0, 0.0, -2.0, 1.0, 0.0, 0.0,
        ];
        let (q, s) = quantize_rows(&w, 3, 4, 8);
        assert_eq!(s, vec![0.01, 1.0, 2.0 / 127.0]);
        assert_eq!(&q[0..4], &[127, -64, 1, -1]);
        assert_eq!(&q[4..8], &[0, 0, 0, 0]);
        assert_eq!(&q[8..12], &[-127, 64, 0, 0]);
        // 2 bits: Q = 1.
        let (q, s) = quantize_rows(&[0.4, -1.0, 0.6, 0.0], 1, 4, 2);
        assert_eq!(s, vec![1.0]);
        assert_eq!(q, vec![0, -1, 1, 0]);
    }

    #[test]
    fn prefix_property_random() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for bits in 2..=8u8 {
            for &cols in &COLS {
                let rows = 3;
                let w: Vec<f32> = (0..rows * cols).map(|_| rng.f32() * 3.0).collect();
                let (q, _) = quantize_rows(&w, rows, cols, bits);
                let planes = pack_planes(&q, rows, cols, bits);
                assert_eq!(planes.len(), bits as usize * rows * row_bytes(cols));
                assert_eq!(
                    check_layout(planes.len(), bits as usize, rows, cols, bits),
                    Ok(())
                );
                for k in 1..=bits {
                    let want: Vec<i32> = q.iter().map(|&v| v >> (bits - k)).collect();
                    assert_eq!(
                        prefix_codes(&planes, rows, cols, k),
                        want,
                        "B={bits} k={k} K={cols}"
                    );
                    // Only the first k planes are needed: a truncated buffer gives the same codes.
                    let cut = k as usize * rows * row_bytes(cols);
                    assert_eq!(prefix_codes(&planes[..cut], rows, cols, k), want);
                }
            }
        }
    }

    #[test]
    fn prefix_property_all_codes() {
        // Every code of every width, including the extremes -2^(B-1) and 2^(B-1)-1.
        for bits in 2..=8u8 {
            let q: Vec<i32> = (-(1 << (bits - 1))..(1 << (bits - 1))).collect();
            let cols = q.len();
            let planes = pack_planes(&q, 1, cols, bits);
            for k in 1..=bits {
                let want: Vec<i32> = q.iter().map(|&v| v >> (bits - k)).collect();
                assert_eq!(prefix_codes(&planes, 1, cols, k), want);
            }
        }
    }

    #[test]
    fn padding_bits_are_zero() {
        let mut rng = Rng(42);
        for &cols in &COLS {
            let rows = 2;
            // All -1 codes set every bit of every plane: the padding must still be zero.
            let q = vec![-1i32; rows * cols];
            let planes = pack_planes(&q, rows, cols, 8);
            let rb = row_bytes(cols);
            for p in 0..8 {
                for r in 0..rows {
                    let row = &planes[(p * rows + r) * rb..(p * rows + r + 1) * rb];
                    for (i, &b) in row.iter().enumerate() {
                        let valid = cols.saturating_sub(8 * i).min(8);
                        let mask = if valid == 8 { 0xff } else { (1u8 << valid) - 1 };
                        assert_eq!(b, mask, "K={cols} plane {p} row {r} byte {i}");
                    }
                }
            }
            let w: Vec<f32> = (0..rows * cols).map(|_| rng.f32()).collect();
            let (q, _) = quantize_rows(&w, rows, cols, 5);
            let planes = pack_planes(&q, rows, cols, 5);
            for p in 0..5 {
                for r in 0..rows {
                    let off = (p * rows + r) * rb;
                    let last =
                        u64::from_le_bytes(planes[off + rb - 8..off + rb].try_into().unwrap());
                    let used = cols - 64 * (rb / 8 - 1);
                    if used < 64 {
                        assert_eq!(last >> used, 0, "padding of K={cols}");
                    }
                }
            }
        }
    }

    #[test]
    fn plane_bit_positions() {
        // Element 64·w + j is bit j of word w; plane 0 is the sign bit.
        let mut q = vec![0i32; 70];
        q[0] = -128; // only the sign plane set
        q[65] = 1; // only the last plane set
        let planes = pack_planes(&q, 1, 70, 8);
        assert_eq!(planes.len(), 8 * 16);
        assert_eq!(planes[0], 1); // plane 0, word 0, bit 0
        assert!(planes[1..16].iter().all(|&b| b == 0));
        let last = &planes[7 * 16..8 * 16];
        assert_eq!(last[8], 0b10); // plane 7, word 1, bit 1
    }

    #[test]
    fn midpoints() {
        assert_eq!(midpoint_side(0.5, 8, 8), (0.5, 0.0));
        assert_eq!(midpoint_side(0.5, 8, 6), (2.0, 0.75));
        assert_eq!(midpoint_side(1.0, 4, 1), (8.0, 3.5));
        // The midpoint reconstructs the centre of each truncation bucket.
        let (a, b) = midpoint_side(1.0, 8, 5);
        for qb in -128i32..128 {
            let qk = qb >> 3;
            let lo = (qk << 3) as f32;
            assert_eq!(a * qk as f32 + b, lo + 3.5);
        }
    }

    #[test]
    fn layout_errors() {
        assert_eq!(
            check_layout(8, 1, 1, 1, 1),
            Err(QuantError::Bits { bits: 1 })
        );
        assert_eq!(
            check_layout(8, 1, 1, 1, 9),
            Err(QuantError::Bits { bits: 9 })
        );
        assert_eq!(
            check_layout(0, 0, 1, 1, 8),
            Err(QuantError::PlaneCount { k: 0, bits: 8 })
        );
        assert_eq!(
            check_layout(72, 9, 1, 1, 8),
            Err(QuantError::PlaneCount { k: 9, bits: 8 })
        );
        assert!(matches!(
            check_layout(15, 2, 1, 1, 8),
            Err(QuantError::Length {
                got: 15,
                expected: 16,
                ..
            })
        ));
        assert!(matches!(
            check_layout(0, 2, usize::MAX, 65, 8),
            Err(QuantError::Overflow { .. })
        ));
    }

    #[test]
    fn inconsistent_arguments_give_empty_results() {
        // Wrong lengths, unsupported widths, short planes: empty results, no panic, no
        // allocation sized by the bogus arguments.
        assert_eq!(quantize_rows(&[1.0], 2, 2, 8), (vec![], vec![]));
        assert_eq!(quantize_rows(&[1.0; 4], 2, 2, 1), (vec![], vec![]));
        assert_eq!(quantize_rows(&[1.0; 4], usize::MAX, 2, 8), (vec![], vec![]));
        assert!(pack_planes(&[1, 2], 1 << 40, 2, 8).is_empty());
        assert!(pack_planes(&[1, 2], 1, 2, 9).is_empty());
        assert!(prefix_codes(&[], 1, 3, 4).is_empty());
        assert!(prefix_codes(&[0xff; 8], usize::MAX / 2, 64, 2).is_empty());
        assert!(prefix_codes(&[0xff; 8], 1, 64, 0).is_empty());
        assert!(prefix_codes(&[0xff; 8], 1, 64, 9).is_empty());
        assert!(midpoint_side(1.0, 0, 0).0.is_nan());
        assert!(midpoint_side(1.0, 8, 9).1.is_nan());
        let (q, _) = quantize_rows(&[f32::NAN, 1.0], 1, 2, 8);
        assert_eq!(q, vec![0, 127]); // the NaN is skipped by max and its own code is 0
    }
}
