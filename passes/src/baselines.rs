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
//! - [`dedicated_qat_pipeline`]: a separate `k`-bit model per plane count trained by the same
//!   `once-qat` engine, options and samples as a nested model, on that one plane count: the
//!   comparison the method's claim rests on (one nested once-QAT model against one dedicated
//!   QAT model per `k`). Each gets as many samples at its `k` as the nested run gave every `k`.
//! - [`nested_ptq_pipeline`]: the same nested model without `once-qat`: its post-training
//!   start, so what training bought is measured on the same images.
//!
//! The FP32 baseline is the input graph itself. Calibration uses the method of an earlier
//! `calibrate` result in `ctx` (min/max otherwise).

use strata_ir::quant::{ActBits, MAX_BITS, MIN_BITS};
use strata_ir::Graph;

use crate::bitplane_rewrite::{replace_with_bitplane, QuantizedLayer, SideTable};
use crate::calibrate::{Calibration, CalibrationData, CalibrationMethod};
use crate::pipeline::{parse_pipeline, render_pipeline, PipelineError};
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

/// The pipeline that trains the dedicated `k`-bit QAT baseline of a model compiled with
/// `recorded` (the compile pipeline a container records), or `None` when `recorded` has no
/// `once-qat` stage (a PTQ model: dedicated PTQ is its baseline). Every stage and option stays
/// as recorded, except that `vl-quantize` makes a `k`-bit model with the one plane count `k`
/// and `once-qat` trains just that count (its `planes` and `weights` lists, which name the
/// nested model's counts, are dropped). Run it on the FP32 source with the same calibration
/// samples (and labels) as the nested model.
pub fn dedicated_qat_pipeline(recorded: &str, k: u8) -> Result<Option<String>, PipelineError> {
    let mut specs = parse_pipeline(recorded)?;
    if !specs.iter().any(|s| s.name == "once-qat") {
        return Ok(None);
    }
    for spec in &mut specs {
        match spec.name.as_str() {
            "vl-quantize" => {
                if !(MIN_BITS..=MAX_BITS).contains(&k) {
                    return Err(spec.options.invalid(
                        "bits",
                        format!("dedicated QAT needs {MIN_BITS} ≤ k ≤ {MAX_BITS}, got {k}"),
                    ));
                }
                spec.options.set("bits", k.to_string());
                spec.options.set("planes", k.to_string());
            }
            "once-qat" => {
                spec.options.remove("planes");
                spec.options.remove("weights");
            }
            _ => {}
        }
    }
    Ok(Some(render_pipeline(&specs)))
}

/// The pipeline of the nested post-training-quantized model a `once-qat` compile started
/// from: `recorded` without its `once-qat` stage (`None` when it has none).
pub fn nested_ptq_pipeline(recorded: &str) -> Result<Option<String>, PipelineError> {
    let mut specs = parse_pipeline(recorded)?;
    let before = specs.len();
    specs.retain(|s| s.name != "once-qat");
    Ok((specs.len() < before).then(|| render_pipeline(&specs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORDED: &str = "fold-constants,calibrate{method=percentile},\
        vl-quantize{bits=8,planes=\"2,3,4,6,8\",act-bits=8},\
        once-qat{steps=200,batch=64,lr=0.001,seed=0,planes=\"2,4\",weights=\"1,2\",evals=5},\
        bitplane-rewrite,eliminate-dead-code";

    #[test]
    fn dedicated_qat_trains_one_k_bit_model_with_the_recorded_options() {
        let p = dedicated_qat_pipeline(RECORDED, 3).unwrap().unwrap();
        assert_eq!(
            p,
            "fold-constants,calibrate{method=percentile},\
             vl-quantize{act-bits=8,bits=3,planes=3},\
             once-qat{batch=64,evals=5,lr=0.001,seed=0,steps=200},\
             bitplane-rewrite,eliminate-dead-code"
        );
        // The derived pipeline is one the pass manager accepts.
        crate::PassManager::parse(&p).unwrap();
    }

    #[test]
    fn a_ptq_pipeline_has_no_qat_baselines() {
        let ptq = "calibrate{method=minmax},vl-quantize{bits=8},bitplane-rewrite";
        assert_eq!(dedicated_qat_pipeline(ptq, 4).unwrap(), None);
        assert_eq!(nested_ptq_pipeline(ptq).unwrap(), None);
    }

    #[test]
    fn nested_ptq_is_the_recorded_pipeline_without_training() {
        assert_eq!(
            nested_ptq_pipeline(RECORDED).unwrap().unwrap(),
            "fold-constants,calibrate{method=percentile},\
             vl-quantize{act-bits=8,bits=8,planes=\"2,3,4,6,8\"},\
             bitplane-rewrite,eliminate-dead-code"
        );
    }

    #[test]
    fn dedicated_qat_rejects_plane_counts_no_model_has() {
        for k in [0, 1, 9] {
            assert!(
                matches!(
                    dedicated_qat_pipeline(RECORDED, k),
                    Err(PipelineError::InvalidOption { .. })
                ),
                "k = {k}"
            );
        }
    }
}
