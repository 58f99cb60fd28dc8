//! Asymmetric per-tensor activation quantization with `A`-bit signed codes:
//! `x_q = clamp(round_half_even(x / scale) + zero, -2^(A-1), 2^(A-1) - 1)`, real value
//! `scale·(x_q - zero)` (docs/vertical-layering.md). Calibration picks the parameters, the
//! integer kernels quantize with them, training fakes them: all through [`ActQuantizer`].

use super::{QuantError, MIN_BITS};

/// Widest activation code the arithmetic supports (training may fake up to 16 bits; the
/// bit-plane op itself allows at most [`MAX_BITS`](super::MAX_BITS)).
pub const MAX_ACT_BITS: u8 = 16;

/// `x.round_ties_even()` computed in registers: the standard library's version is a call to
/// libm's `rintf` on baseline x86-64 (no SSE4.1 `roundss`), which kept every activation
/// quantization loop scalar. Exact for every input: below `2^23` adding and subtracting
/// `2^23` rounds to the nearest integer with ties to even (the sum's unit in the last place
/// is 1) and the sign is restored, so `-0.3` gives `-0.0` as `rintf` does; from `2^23` up every
/// float already is an integer, and NaN and the infinities pass through.
#[inline(always)]
pub fn round_half_even(x: f32) -> f32 {
    const TWO_23: f32 = 8_388_608.0;
    let a = x.abs();
    if a < TWO_23 {
        ((a + TWO_23) - TWO_23).copysign(x)
    } else {
        x
    }
}

/// A range of activation values `[lo, hi]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActRange {
    pub lo: f32,
    pub hi: f32,
}

/// Asymmetric activation quantization parameters: `x ≈ scale·(x_q − zero)`. `zero` is an
/// integer stored as f32 because that is how the side tables hold it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActQuant {
    pub scale: f32,
    pub zero: f32,
}

/// `(-2^(A-1), 2^(A-1) − 1)`: the range of `act_bits`-bit signed codes.
pub fn act_limits(act_bits: u8) -> Result<(i32, i32), QuantError> {
    if !(MIN_BITS..=MAX_ACT_BITS).contains(&act_bits) {
        return Err(QuantError::ActBits { bits: act_bits });
    }
    Ok((-(1i32 << (act_bits - 1)), (1i32 << (act_bits - 1)) - 1))
}

/// Quantization parameters for a range with `act_bits`-bit signed codes. The range is widened
/// to contain 0 so that real zero (Conv padding, ReLU's floor) is exactly representable; a
/// degenerate range gets unit scale and zero point 0. The result always passes
/// [`ActQuantizer::new`].
pub fn act_params(range: ActRange, act_bits: u8) -> Result<ActQuant, QuantError> {
    let (qmin, qmax) = act_limits(act_bits)?;
    let lo = range.lo.min(0.0);
    let hi = range.hi.max(0.0);
    let scale = (hi - lo) / (qmax - qmin) as f32;
    if !(scale.is_finite() && scale > 0.0) {
        return Ok(ActQuant {
            scale: 1.0,
            zero: 0.0,
        });
    }
    let zero = round_half_even((qmin as f32) - lo / scale).clamp(qmin as f32, qmax as f32);
    Ok(ActQuant { scale, zero })
}

/// Validated activation parameters with their code range: every quantization of an
/// activation goes through this, so the runtime, calibration and training agree exactly.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActQuantizer {
    q: ActQuant,
    bits: u8,
    lo: f32,
    hi: f32,
}

impl ActQuantizer {
    /// Checks `act_bits`, a finite positive scale and an integer zero point within `±2^A`
    /// (which keeps `|x_q − zero| < 2^(A+1)`, inside `i16` for `A ≤ 8`).
    pub fn new(q: ActQuant, act_bits: u8) -> Result<ActQuantizer, QuantError> {
        let (lo, hi) = act_limits(act_bits)?;
        if !(q.scale.is_finite() && q.scale > 0.0) {
            return Err(QuantError::ActScale { scale: q.scale });
        }
        let bound = 1u32 << act_bits;
        if q.zero.fract() != 0.0 || q.zero.abs() > bound as f32 {
            return Err(QuantError::ZeroPoint {
                zero: q.zero,
                bound,
            });
        }
        Ok(ActQuantizer {
            q,
            bits: act_bits,
            lo: lo as f32,
            hi: hi as f32,
        })
    }

    /// The scale and zero point.
    pub fn params(&self) -> ActQuant {
        self.q
    }

    /// `A`, the code width.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// The code range `(-2^(A-1), 2^(A-1) − 1)` as floats.
    pub fn limits(&self) -> (f32, f32) {
        (self.lo, self.hi)
    }

    /// `x_q`; NaN quantizes to `zero`, i.e. real 0.
    #[inline]
    pub fn quantize(&self, x: f32) -> i32 {
        self.q.zero as i32 + self.centered(x)
    }

    /// `u = x_q − zero`, the integer the kernels multiply with (0 for NaN).
    ///
    /// `u` is an integral float with `|u| < 2^(A+1) ≤ 2^17`, so adding `1.5·2^23` puts it in
    /// the low mantissa bits exactly; reading them back is the same integer as `u as i32`,
    /// without the saturating conversion that keeps `as` from vectorizing.
    #[inline]
    pub fn centered(&self, x: f32) -> i32 {
        const MAGIC: f32 = 12_582_912.0; // 1.5 · 2^23
        (self.centered_f32(x) + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32
    }

    /// [`centered`](Self::centered) as a float (exact: `|u| < 2^(A+1)`), free of
    /// float→int conversions so that loops over it vectorize.
    #[inline(always)]
    fn centered_f32(&self, x: f32) -> f32 {
        let r = round_half_even(x / self.q.scale);
        // max/min rather than `clamp` (same values for a non-NaN `r`) and a select for NaN
        // rather than an early return keep the loops branch-free. `+ 0.0` turns a `-0.0`
        // into `0.0`, as the integer `u` would be.
        let u = (r + self.q.zero).max(self.lo).min(self.hi) - self.q.zero + 0.0;
        if r.is_nan() {
            0.0
        } else {
            u
        }
    }

    /// `scale·(x_q − zero)`: what the integer path sees of `x`, in real units.
    #[inline]
    pub fn fake_quant(&self, x: f32) -> f32 {
        self.q.scale * self.centered_f32(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bit trick of `centered` is `as i32` of the clamped float, for every code width,
    /// zero points at both bounds, values past the range, ties, ±0, infinities and NaN.
    #[test]
    fn centered_is_the_exact_integer() {
        for bits in [MIN_BITS, 4, 8, 12, MAX_ACT_BITS] {
            let bound = (1u32 << bits) as f32;
            for zero in [-bound, -1.0, 0.0, 2.0, bound] {
                for scale in [1e-3f32, 0.37, 1.0, 2.5] {
                    let q = ActQuantizer::new(ActQuant { scale, zero }, bits).unwrap();
                    let mut xs = vec![0.0, -0.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN];
                    xs.extend((-400..400).map(|i| i as f32 * 0.5 * scale));
                    xs.extend([1e9, -1e9, 3.0e38, -3.0e38].map(|v| v * scale));
                    for x in xs {
                        assert_eq!(
                            q.centered(x),
                            q.centered_f32(x) as i32,
                            "A={bits} zero={zero} scale={scale} x={x}"
                        );
                    }
                }
            }
        }
    }
}
