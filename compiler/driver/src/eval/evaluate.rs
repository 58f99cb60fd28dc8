//! The evaluation `strata eval` prints: every plane count of a container on labelled data,
//! beside FP32, the stored mixed-precision choice and, on request, the baselines a user
//! would otherwise ship, with paired comparisons on the same images.

use strata_ir::{Graph, Tensor};
use strata_passes::{baselines, PassContext, PassManager, ProgressFn};
use strata_runtime::{run_with, QuantPath, RunOptions};

use super::stats::{correct, paired, score, weight_bytes, weight_bytes_per_layer};
use super::{EvalError, EvalReport};
use crate::compile::Provenance;
use crate::model::{plane_counts, ContainerInfo};

/// What to evaluate a container on.
#[derive(Debug, Clone)]
pub struct EvalRequest {
    /// Preprocessed inputs `[N, …]` of the model's (single) input.
    pub data: Tensor,
    /// Integer labels `[N]`.
    pub labels: Tensor,
    /// Plane counts to evaluate; `None`: every count with a side table present in the file,
    /// and a row for the stored mixed-precision choice when there is one.
    pub planes: Option<Vec<u8>>,
    /// Integer (device) or dequantized float path of the bit-plane layers.
    pub path: QuantPath,
    /// The FP32 source model: an `fp32` row, agreement and logit error of every row.
    pub fp32: Option<Graph>,
    /// Calibration inputs: when given, dedicated per-k PTQ and naive truncation of the FP32
    /// model are evaluated too (needs `fp32`), with paired comparisons; and when the container
    /// was trained by `once-qat`, dedicated per-k QAT
    /// ([`baselines::dedicated_qat_pipeline`]) and the nested PTQ start
    /// ([`baselines::nested_ptq_pipeline`]) on these same samples.
    pub baseline_calibration: Option<Tensor>,
    /// Labels of the calibration samples, for the dedicated QAT baseline of a container
    /// trained with labels (cross-entropy), so both see the same data.
    pub baseline_labels: Option<Tensor>,
}

fn first_output(outputs: Vec<Tensor>) -> Result<Tensor, EvalError> {
    outputs.into_iter().next().ok_or(EvalError::NoOutputs)
}

/// Evaluates the container `graph` (whose header is `info`) as `request` asks.
/// `progress` hears the passes that train the dedicated QAT baseline (stage, done, total).
pub fn evaluate(
    graph: &Graph,
    info: &ContainerInfo,
    request: &EvalRequest,
    progress: Option<ProgressFn>,
) -> Result<EvalReport, EvalError> {
    let data = std::slice::from_ref(&request.data);
    let mut runtime = |options: &RunOptions| -> Result<Tensor, EvalError> {
        first_output(run_with(graph, data, options)?)
    };
    evaluate_with(graph, info, request, progress, &mut runtime)
}

/// [`evaluate`] with the container's rows (every plane count and the stored mixed choice)
/// computed by `execute`: the logits of `request.data` under the given plane counts, from
/// another backend than the runtime (the MLIR JIT). The FP32 row and the baselines are float
/// graphs and stay on the runtime.
pub fn evaluate_with(
    graph: &Graph,
    info: &ContainerInfo,
    request: &EvalRequest,
    mut progress: Option<ProgressFn>,
    execute: &mut dyn FnMut(&RunOptions) -> Result<Tensor, EvalError>,
) -> Result<EvalReport, EvalError> {
    let data = std::slice::from_ref(&request.data);
    let labels = &request.labels;
    let path = request.path;
    let mut report = EvalReport::default();
    let fp32_logits = match &request.fp32 {
        Some(g) => {
            let logits = first_output(strata_runtime::run(g, data)?)?;
            let bytes = weight_bytes(g, None);
            report
                .rows
                .push(score("fp32", None, &logits, labels, Some(&logits), bytes)?);
            Some(logits)
        }
        None => None,
    };
    let available: Vec<u8> = plane_counts(graph)
        .into_iter()
        .filter(|&k| k <= info.available_planes)
        .collect();
    let planes = request.planes.clone().unwrap_or(available.clone());
    if let Some(&k) = planes.iter().find(|k| !available.contains(k)) {
        return Err(EvalError::PlanesUnavailable { k, available });
    }
    // Per plane count, which samples the Strata model gets right (for the paired comparisons).
    let mut strata_correct: Vec<(u8, Vec<bool>)> = Vec::new();
    for &k in &planes {
        let logits = execute(&RunOptions {
            planes: Some(k),
            path,
            ..Default::default()
        })?;
        let bytes = weight_bytes(graph, Some(k));
        report.rows.push(score(
            "strata",
            Some(k),
            &logits,
            labels,
            fp32_logits.as_ref(),
            bytes,
        )?);
        strata_correct.push((k, correct(&logits, labels)?));
    }
    // A stored mixed-precision choice is what `strata run` and `emit-c` use by default, so
    // it gets its own row (unless specific uniform counts were asked for).
    if request.planes.is_none() {
        let mixed = info.default_layer_planes(graph)?;
        if !mixed.is_empty() {
            let logits = execute(&RunOptions {
                path,
                per_layer: mixed.clone(),
                ..Default::default()
            })?;
            let bytes = weight_bytes_per_layer(graph, |node| mixed.get(node).copied());
            let mut row = score(
                "strata-mixed",
                None,
                &logits,
                labels,
                fp32_logits.as_ref(),
                bytes,
            )?;
            row.layer_planes = Some(mixed);
            report.rows.push(row);
        }
    }
    let Some(calibration) = &request.baseline_calibration else {
        return Ok(report);
    };
    if let Some(fp32) = &fp32_logits {
        let fp32_correct = correct(fp32, labels)?;
        for (k, c) in &strata_correct {
            report
                .comparisons
                .push(paired(*k, "fp32", None, c, &fp32_correct));
        }
    }
    let fp32 = request
        .fp32
        .as_ref()
        .ok_or(EvalError::BaselinesNeedSource)?;
    // The baselines start from the same simplified float graph and the same calibration
    // method the container was compiled with.
    let method = Provenance::recorded_method(&info.metadata).unwrap_or_default();
    let mut prepared = fp32.clone();
    let mut ctx = PassContext::with_calibration(vec![calibration.clone()]);
    PassManager::parse(&format!(
        "{},calibrate{{method={method}}}",
        crate::compile::TABLES_PREPARE
    ))?
    .run(&mut prepared, &mut ctx, |_, _| {})?;
    // Dedicated per-k QAT and the nested PTQ start: only for a container that once-qat
    // trained, from the same recorded pipeline, samples and labels.
    let mut qat_pipelines: Vec<(u8, String)> = Vec::new();
    let mut nested_ptq = None;
    if let Some(recorded) = info.metadata.get("pipeline") {
        nested_ptq = baselines::nested_ptq_pipeline(recorded)?;
        for &k in &planes {
            if let Some(p) = baselines::dedicated_qat_pipeline(recorded, k)? {
                qat_pipelines.push((k, p));
            }
        }
    }
    // Each baseline is scored as soon as it is built, so one model at a time is in memory.
    let mut add = |method: &'static str, k: u8, graph: &Graph| -> Result<(), EvalError> {
        let options = RunOptions {
            planes: Some(k),
            path,
            ..Default::default()
        };
        let logits = first_output(run_with(graph, data, &options)?)?;
        if let Some((_, c)) = strata_correct.iter().find(|(sk, _)| *sk == k) {
            let other = correct(&logits, labels)?;
            report
                .comparisons
                .push(paired(k, method, Some(k), c, &other));
        }
        report.rows.push(score(
            method,
            Some(k),
            &logits,
            labels,
            fp32_logits.as_ref(),
            weight_bytes(graph, Some(k)),
        )?);
        Ok(())
    };
    // Runs a pipeline derived from the recorded one on the FP32 source, with the same samples
    // and labels.
    let mut derive = |pipeline: &str| -> Result<Graph, EvalError> {
        let mut derived = fp32.clone();
        let mut qat_ctx = PassContext::with_calibration(vec![calibration.clone()]);
        qat_ctx.labels = request.baseline_labels.clone();
        qat_ctx.progress = progress.take();
        let result = PassManager::parse(pipeline)?.run(&mut derived, &mut qat_ctx, |_, _| {});
        progress = qat_ctx.progress.take();
        result?;
        Ok(derived)
    };
    for (k, pipeline) in qat_pipelines {
        let trained = derive(&pipeline)?;
        add("dedicated-qat", k, &trained)?;
    }
    if let Some(ptq) = nested_ptq {
        let start = derive(&ptq)?;
        for &k in &planes {
            add("nested-ptq", k, &start)?;
        }
    }
    let act_widths = crate::model::act_bits(graph);
    for method in ["dedicated-ptq", "naive-truncation"] {
        for &k in &planes {
            let graph = match method {
                // At the nested model's activation width for k (k itself under W k A k).
                "dedicated-ptq" => baselines::dedicated_ptq(
                    &prepared,
                    k,
                    act_widths
                        .get(&k)
                        .copied()
                        .unwrap_or(baselines::BASELINE_ACT_BITS),
                    &ctx,
                )?,
                _ => baselines::naive_truncation(&prepared, info.bits, k, &ctx)?,
            };
            add(method, k, &graph)?;
        }
    }
    Ok(report)
}
