//! Fake quantization for quantization-aware training: the forward pass computes exactly the
//! values the bit-plane runtime uses (docs/vertical-layering.md), in f32, and the backward
//! pass uses straight-through estimators (STE), because the true derivative of rounding is
//! zero almost everywhere.
//!
//! **Weights** (`W [R, …]`, row `c` = output channel = axis 0; a Gemm `B [K, N]` without
//! `trans_b` must be passed transposed): with `v = W/s_c`,
//! `q_B = clamp(round_half_away(v), −2^(B−1), 2^(B−1)−1)`, `q_k = q_B >> (B−k)` (floor),
//! `W_k = alpha_c·q_k + beta_c`. Estimator: round and floor are replaced by the identity, the
//! clamp is kept, so `∂W_k/∂W = alpha_c / (s_c·2^(B−k))` where `−2^(B−1) ≤ v ≤ 2^(B−1)−1`
//! and 0 outside. With the bucket-midpoint side table (`alpha_c = s_c·2^(B−k)`) this is
//! exactly 1 inside and 0 outside. The side table is learnable: `∂W_k/∂alpha_c = q_k`,
//! `∂W_k/∂beta_c = 1` (exact, no estimator needed). The scale `s_c` is held fixed.
//!
//! **Activations** (asymmetric, `A` bits, per tensor): `x_q = clamp(round_half_even(x/s) + z,
//! −2^(A−1), 2^(A−1)−1)`, `y = s·(x_q − z)`. Estimator (LSQ, Esser et al. 2020): with
//! `t = x/s + z` (the pre-clamp value, rounding treated as identity), `∂y/∂x = 1` where
//! `lo ≤ t ≤ hi`, else 0; `∂y/∂s = round(x/s) − x/s` inside and `(lo − z)` / `(hi − z)` when
//! clamped low / high; `∂y/∂z = 0` inside and `−s` when clamped. The returned step-size
//! gradient is the plain sum; LSQ's recommended scaling is [`lsq_grad_scale`], left to the
//! optimiser so that it can be switched off.

use strata_ir::quant::{
    act_limits, check_plane_count, midpoint_side, quantize_rows, quantize_with_scales,
    round_half_even, truncate_code, weight_limits, ActQuant, ActQuantizer, QuantError,
    MAX_ACT_BITS, MIN_BITS,
};
use strata_ir::Tensor;

use super::{f32_tensor, f32s, same_shape};
use crate::RuntimeError;

const WOP: &str = "weight_fake_quant";
const AOP: &str = "act_fake_quant";

/// Weight fake-quantization at plane count `k` of `B`-bit codes, with a per-row side table.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightFakeQuant {
    /// Code width `B`.
    pub bits: u8,
    /// Plane count `k` (1 ≤ k ≤ B).
    pub k: u8,
    /// `s_c`, one per row.
    pub scale: Vec<f32>,
    /// `alpha[k][c]`, one per row.
    pub alpha: Vec<f32>,
    /// `beta[k][c]`, one per row.
    pub beta: Vec<f32>,
}

/// Gradients of a loss through [`WeightFakeQuant::forward`].
#[derive(Debug, Clone, PartialEq)]
pub struct WeightFakeQuantGrad {
    /// With respect to the float weights (STE, see the module doc).
    pub w: Tensor,
    /// With respect to `alpha`, one per row.
    pub alpha: Vec<f32>,
    /// With respect to `beta`, one per row.
    pub beta: Vec<f32>,
}

fn rows_cols(op: &'static str, w: &Tensor) -> Result<(usize, usize), RuntimeError> {
    match w.shape().split_first() {
        Some((&r, rest)) if w.rank() >= 2 => Ok((r, rest.iter().product())),
        _ => Err(RuntimeError::Shape {
            op,
            reason: format!(
                "weights must have rank ≥ 2 (rows first), got {:?}",
                w.shape()
            ),
        }),
    }
}

impl WeightFakeQuant {
    /// The quantizer's starting point: `s_c = max|W[c]|/(2^(B−1)−1)` and the bucket-midpoint
    /// side table, as the bit-plane rewrite computes them before refinement.
    pub fn midpoint(w: &Tensor, bits: u8, k: u8) -> Result<WeightFakeQuant, RuntimeError> {
        let (rows, cols) = rows_cols(WOP, w)?;
        check_bits(bits, k)?;
        let (_, scale) = quantize_rows(f32s(WOP, w, 0)?, rows, cols, bits).map_err(weight_err)?;
        let (alpha, beta) = scale
            .iter()
            .map(|&s| midpoint_side(s, bits, k))
            .collect::<Result<Vec<_>, _>>()
            .map_err(weight_err)?
            .into_iter()
            .unzip();
        let q = WeightFakeQuant {
            bits,
            k,
            scale,
            alpha,
            beta,
        };
        q.check(rows)?;
        Ok(q)
    }

    fn check(&self, rows: usize) -> Result<(), RuntimeError> {
        check_bits(self.bits, self.k)?;
        for (attr, v) in [
            ("scale", &self.scale),
            ("alpha", &self.alpha),
            ("beta", &self.beta),
        ] {
            if v.len() != rows {
                return Err(RuntimeError::Attribute {
                    op: WOP,
                    attr,
                    reason: format!("has {} values for {rows} rows", v.len()),
                });
            }
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(RuntimeError::Attribute {
                    op: WOP,
                    attr,
                    reason: format!("row {i} is not finite ({})", v[i]),
                });
            }
        }
        if let Some(i) = self.scale.iter().position(|&s| s <= 0.0) {
            return Err(RuntimeError::Attribute {
                op: WOP,
                attr: "scale",
                reason: format!("row {i} is {} but must be positive", self.scale[i]),
            });
        }
        Ok(())
    }

    /// `(v, q_k)` per element: the pre-round value and the k-plane code.
    fn codes(&self, w: &Tensor) -> Result<(usize, Vec<(f32, i32)>), RuntimeError> {
        let (rows, cols) = rows_cols(WOP, w)?;
        self.check(rows)?;
        let wv = f32s(WOP, w, 0)?;
        let codes = quantize_with_scales(wv, &self.scale, cols, self.bits).map_err(weight_err)?;
        let out = wv
            .iter()
            .zip(codes)
            .enumerate()
            .map(|(i, (&x, qb))| {
                let v = x / self.scale[i / cols.max(1)];
                Ok((v, truncate_code(qb, self.bits, self.k)?))
            })
            .collect::<Result<_, QuantError>>()
            .map_err(weight_err)?;
        Ok((cols, out))
    }

    /// The dequantized k-plane weights `W_k`, shaped like `w`.
    pub fn forward(&self, w: &Tensor) -> Result<Tensor, RuntimeError> {
        let (cols, codes) = self.codes(w)?;
        let data = codes
            .iter()
            .enumerate()
            .map(|(i, &(_, q))| {
                let c = i / cols.max(1);
                self.alpha[c] * q as f32 + self.beta[c]
            })
            .collect();
        f32_tensor(WOP, w.shape(), data)
    }

    /// Gradients for `w`, `alpha` and `beta` given `∂L/∂W_k` (see the module doc).
    pub fn backward(&self, w: &Tensor, grad: &Tensor) -> Result<WeightFakeQuantGrad, RuntimeError> {
        let (cols, codes) = self.codes(w)?;
        let g = f32s(WOP, grad, usize::MAX)?;
        same_shape(WOP, "gradient", grad, "the weights", w)?;
        let (qmin, qmax) = weight_limits(self.bits).map_err(weight_err)?;
        let (qmin, qmax) = (qmin as f32, qmax as f32);
        // `s_c·2^(B−k)`: the midpoint table's alpha, the width of a truncation bucket.
        let bucket = self
            .scale
            .iter()
            .map(|&s| Ok(midpoint_side(s, self.bits, self.k)?.0))
            .collect::<Result<Vec<f32>, QuantError>>()
            .map_err(weight_err)?;
        let rows = self.scale.len();
        let (mut da, mut db) = (vec![0f32; rows], vec![0f32; rows]);
        let mut dw = Vec::with_capacity(g.len());
        for (i, (&(v, q), &gi)) in codes.iter().zip(g).enumerate() {
            let c = i / cols.max(1);
            da[c] += gi * q as f32;
            db[c] += gi;
            let inside = v >= qmin && v <= qmax;
            dw.push(if inside {
                gi * self.alpha[c] / bucket[c]
            } else {
                0.0
            });
        }
        Ok(WeightFakeQuantGrad {
            w: f32_tensor(WOP, w.shape(), dw)?,
            alpha: da,
            beta: db,
        })
    }
}

fn check_bits(bits: u8, k: u8) -> Result<(), RuntimeError> {
    check_plane_count(bits, k).map_err(weight_err)
}

/// A quantization error of the weight fake-quant, as the attribute at fault.
fn weight_err(e: QuantError) -> RuntimeError {
    let attr = match e {
        QuantError::Bits { .. } => "bits",
        QuantError::PlaneCount { .. } => "k",
        _ => "weights",
    };
    RuntimeError::Attribute {
        op: WOP,
        attr,
        reason: e.to_string(),
    }
}

/// Per-tensor asymmetric activation fake-quantization (`A` bits, signed codes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActFakeQuant {
    /// Code width `A` (2 to 16).
    pub bits: u8,
    /// Step size `s` (positive).
    pub scale: f32,
    /// Zero point `z` (an integer stored as f32).
    pub zero: f32,
}

/// Gradients of a loss through [`ActFakeQuant::forward`].
#[derive(Debug, Clone, PartialEq)]
pub struct ActFakeQuantGrad {
    /// With respect to the input (STE, zero where clamped).
    pub x: Tensor,
    /// With respect to the step size (LSQ, unscaled sum).
    pub scale: f32,
    /// With respect to the zero point (nonzero only from clamped elements).
    pub zero: f32,
}

impl ActFakeQuant {
    /// The validated quantizer (the runtime's own), or the attribute at fault.
    fn quantizer(&self) -> Result<ActQuantizer, RuntimeError> {
        let q = ActQuant {
            scale: self.scale,
            zero: self.zero,
        };
        ActQuantizer::new(q, self.bits).map_err(|e| RuntimeError::Attribute {
            op: AOP,
            attr: match e {
                QuantError::ActScale { .. } => "scale",
                QuantError::ZeroPoint { .. } => "zero",
                _ => "bits",
            },
            reason: e.to_string(),
        })
    }

    /// `y = s·(x_q − z)`, exactly the bit-plane runtime's input quantization (NaN → 0).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, RuntimeError> {
        let q = self.quantizer()?;
        let data = f32s(AOP, x, 0)?.iter().map(|&v| q.fake_quant(v)).collect();
        f32_tensor(AOP, x.shape(), data)
    }

    /// Gradients for `x`, `scale` and `zero` given `∂L/∂y` (see the module doc).
    pub fn backward(&self, x: &Tensor, grad: &Tensor) -> Result<ActFakeQuantGrad, RuntimeError> {
        let (lo, hi) = self.quantizer()?.limits();
        let (xv, g) = (f32s(AOP, x, 0)?, f32s(AOP, grad, usize::MAX)?);
        same_shape(AOP, "gradient", grad, "the input", x)?;
        let (s, z) = (self.scale, self.zero);
        let (mut ds, mut dz) = (0f64, 0f64);
        // Branch-free per element (selects, no libm call), so the loop stays cheap; the sums
        // run in element order as always.
        let dx = xv
            .iter()
            .zip(g)
            .map(|(&v, &gi)| {
                let u = v / s;
                let t = u + z;
                let (low, high, nan) = (t < lo, t > hi, v.is_nan());
                let inside = !(low || high || nan);
                let ds_term = if inside {
                    gi * (round_half_even(u) - u)
                } else if low {
                    gi * (lo - z)
                } else if high {
                    gi * (hi - z)
                } else {
                    0.0
                };
                ds += ds_term as f64;
                if low || high {
                    dz -= (gi * s) as f64;
                }
                if inside {
                    gi
                } else {
                    0.0
                }
            })
            .collect();
        Ok(ActFakeQuantGrad {
            x: f32_tensor(AOP, x.shape(), dx)?,
            scale: ds as f32,
            zero: dz as f32,
        })
    }
}

/// LSQ's step-size gradient scale `1/sqrt(numel·Q_P)` with `Q_P = 2^(A−1) − 1`, which keeps
/// the step's update size comparable to the weights'.
pub fn lsq_grad_scale(numel: usize, bits: u8) -> f32 {
    let bits = bits.clamp(MIN_BITS, MAX_ACT_BITS);
    // The clamp makes the width valid, so the fallback is never taken.
    let qp = act_limits(bits).map_or(1, |(_, hi)| hi) as f64;
    (1.0 / ((numel.max(1) as f64) * qp).sqrt()) as f32
}
