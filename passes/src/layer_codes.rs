//! One layer's `B`-bit codes (planes and per-channel scales) and the side tables the
//! quantizers start from, over the arithmetic of `strata_ir::quant`.

use strata_ir::quant::{self, QuantError};

use crate::vl_quantize::QuantLayer;
use crate::PassError;

/// Per-row codes of one layer: the `B`-bit planes and per-channel scales.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerCodes {
    pub bits: u8,
    /// `u8 [bits, R, 8·ceil(K/64)]` data.
    pub planes: Vec<u8>,
    /// `s_c`.
    pub scales: Vec<f32>,
}

impl LayerCodes {
    /// Quantizes a layer's weight to `bits`-bit symmetric per-channel codes and packs them.
    pub fn quantize(layer: &QuantLayer, bits: u8) -> Result<LayerCodes, QuantError> {
        let (codes, scales) = quant::quantize_rows(&layer.weight, layer.rows, layer.cols, bits)?;
        let planes = quant::pack_planes(&codes, layer.rows, layer.cols, bits)?;
        Ok(LayerCodes {
            bits,
            planes,
            scales,
        })
    }

    /// Every layer's codes, or the error naming the layer that cannot be quantized.
    pub(crate) fn quantize_all(
        pass: &'static str,
        layers: &[QuantLayer],
        bits: u8,
    ) -> Result<Vec<LayerCodes>, PassError> {
        layers
            .iter()
            .map(|l| LayerCodes::quantize(l, bits).map_err(quant_err(pass, l)))
            .collect()
    }

    /// `q_k` from the first `k` planes, as f32 (exact: |q| < 2^15).
    pub(crate) fn prefix_f32(&self, layer: &QuantLayer, k: u8) -> Result<Vec<f32>, QuantError> {
        Ok(
            quant::prefix_codes(&self.planes, layer.rows, layer.cols, k)?
                .into_iter()
                .map(|q| q as f32)
                .collect(),
        )
    }
}

/// Bucket-midpoint init with the Gemm gain folded in.
pub(crate) fn midpoint_side(
    layer: &QuantLayer,
    code: &LayerCodes,
    k: u8,
) -> Result<(Vec<f32>, Vec<f32>), QuantError> {
    let mut out = (
        Vec::with_capacity(code.scales.len()),
        Vec::with_capacity(code.scales.len()),
    );
    for &s in &code.scales {
        let (a, b) = quant::midpoint_side(s, code.bits, k)?;
        out.0.push(a * layer.gain);
        out.1.push(b * layer.gain);
    }
    Ok(out)
}

/// The error of the quantization arithmetic on `layer`, for `map_err`.
pub(crate) fn quant_err<'a>(
    pass: &'static str,
    layer: &'a QuantLayer,
) -> impl Fn(QuantError) -> PassError + 'a {
    move |source| PassError::Quant {
        pass,
        node: layer.name.clone(),
        source,
    }
}

/// Plain truncation tables: `alpha = gain·s·2^(B−k)` (the midpoint table's alpha), `beta = 0`.
pub(crate) fn plain_side(
    layer: &QuantLayer,
    code: &LayerCodes,
    k: u8,
) -> Result<(Vec<f32>, Vec<f32>), QuantError> {
    let (alpha, _) = midpoint_side(layer, code, k)?;
    let beta = vec![0.0; alpha.len()];
    Ok((alpha, beta))
}
