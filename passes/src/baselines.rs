//! The baselines vertical layering is measured against (docs/vertical-layering.md,
//! *Baselines*). Both return graphs of bit-plane ops that the runtime executes like any
//! quantized model, so every scheme is compared on the same kernels:
//!
//! - [`dedicated_ptq`]: a separate `k`-bit model per plane count (`B = k` planes, `alpha = s`,
//!   `beta = 0`), its activations calibrated layer by layer on itself at the width the caller
//!   gives (the nested model's width at `k`: 8 for `W k A8`, `k` for `W k A k`). The upper
//!   bound a single nested model hopes to approach, at the cost of one model per `k`.
//! - [`naive_truncation`]: one plain `B`-bit model whose low planes are simply dropped
//!   (`alpha = s·2^(B−k)`, `beta = 0`, the `B`-bit activation parameters, 8-bit): what
//!   vertical layering without per-`k` side tables would give. It keeps the `B`-bit model's
//!   8-bit activations even beside a `W k A k` model: truncation has no per-`k` anything.
//!
//! The FP32 baseline is the input graph itself. Calibration uses the method of an earlier
//! `calibrate` result in `ctx` (min/max otherwise).

use strata_ir::quant::{ActBits, MAX_BITS, MIN_BITS};
use strata_ir::Graph;

use crate::bitplane_rewrite::{replace_with_bitplane, QuantizedLayer, SideTable};
use crate::calibrate::{Calibration, CalibrationData, CalibrationMethod};
use crate::vl_quantize::{
    calibrate_sequentially, check_finite, plain_side, quant_err, quantizable_layers, LayerCodes,
    QuantLayer, Sequential, TableRule,
};
use crate::{PassContext, PassError};

const PASS: &str = "baselines";

/// Activation bits of naive truncation (the `B`-bit model's, the default `W k A8`), and of
/// dedicated PTQ beside a `W k A8` model.
pub const BASELINE_ACT_BITS: u8 = 8;

fn method_of(ctx: &PassContext) -> (CalibrationMethod, Option<usize>) {
    match Calibration::from_context(ctx) {
        Some(c) => (c.method, Some(c.samples)),
        None => (CalibrationMethod::MinMax, None),
    }
}

fn bad_arg(reason: String) -> PassError {
    PassError::BadArgument { pass: PASS, reason }
}

/// The plain `bits`-bit PTQ both baselines start from: every quantizable layer's codes, and
/// side tables whose activation parameters are calibrated layer by layer on the quantized
/// model itself.
struct PlainPtq {
    layers: Vec<QuantLayer>,
    codes: Vec<LayerCodes>,
    tables: Vec<SideTable>,
    quantized: Graph,
}

fn plain_ptq(
    graph: &Graph,
    bits: u8,
    act_bits: u8,
    ctx: &PassContext,
) -> Result<PlainPtq, PassError> {
    let (method, limit) = method_of(ctx);
    let data = CalibrationData::new(PASS, graph, ctx.calibration.as_deref(), limit)?;
    let layers = quantizable_layers(graph)?;
    check_finite(PASS, &layers)?;
    let codes = LayerCodes::quantize_all(PASS, &layers, bits)?;
    let seq = Sequential {
        pass: PASS,
        k: bits,
        act_bits,
        method,
        rule: TableRule::Plain,
        data: &data,
    };
    let (tables, quantized) = calibrate_sequentially(graph, &layers, &codes, &seq)?;
    Ok(PlainPtq {
        layers,
        codes,
        tables,
        quantized,
    })
}

/// A dedicated `k`-bit post-training-quantized copy of `graph` with `act_bits`-bit
/// activations (needs calibration samples).
pub fn dedicated_ptq(
    graph: &Graph,
    k: u8,
    act_bits: u8,
    ctx: &PassContext,
) -> Result<Graph, PassError> {
    if !(MIN_BITS..=MAX_BITS).contains(&k) {
        return Err(bad_arg(format!(
            "dedicated PTQ needs {MIN_BITS} ≤ k ≤ {MAX_BITS}, got {k}"
        )));
    }
    if !(MIN_BITS..=MAX_BITS).contains(&act_bits) {
        return Err(bad_arg(format!(
            "dedicated PTQ needs {MIN_BITS} ≤ act_bits ≤ {MAX_BITS}, got {act_bits}"
        )));
    }
    Ok(plain_ptq(graph, k, act_bits, ctx)?.quantized)
}

/// Plain `bits`-bit PTQ of `graph` truncated to its first `k` planes, with no per-`k` tables
/// (needs calibration samples).
pub fn naive_truncation(
    graph: &Graph,
    bits: u8,
    k: u8,
    ctx: &PassContext,
) -> Result<Graph, PassError> {
    if !(MIN_BITS..=MAX_BITS).contains(&bits) || k == 0 || k > bits {
        return Err(bad_arg(format!(
            "naive truncation needs {MIN_BITS} ≤ bits ≤ {MAX_BITS} and 1 ≤ k ≤ bits, got \
             bits={bits}, k={k}"
        )));
    }
    // The B-bit model's codes and activation parameters, calibrated on the B-bit model.
    let PlainPtq {
        layers,
        codes,
        tables: full_tables,
        ..
    } = plain_ptq(graph, bits, BASELINE_ACT_BITS, ctx)?;
    let mut out = graph.clone();
    for ((layer, code), full) in layers.iter().zip(&codes).zip(full_tables) {
        let (alpha, beta) = plain_side(layer, code, k).map_err(quant_err(PASS, layer))?;
        let q = QuantizedLayer {
            name: layer.name.clone(),
            bits,
            act_bits: ActBits::Fixed(BASELINE_ACT_BITS),
            rows: layer.rows,
            cols: layer.cols,
            planes: code.planes.clone(),
            scales: code.scales.clone(),
            tables: vec![SideTable {
                k,
                alpha,
                beta,
                bias: full.bias,
                act_scale: full.act_scale,
                act_zero: full.act_zero,
            }],
        };
        replace_with_bitplane(PASS, &mut out, &q)?;
    }
    Ok(out)
}
