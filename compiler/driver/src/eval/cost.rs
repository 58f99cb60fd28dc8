//! Accuracy against cost (`strata eval --adaptive`): uniform plane counts, the stored
//! per-layer choice and adaptive policies, each with its top-1, its agreement with the
//! full-plane model, the bit-operations it spends per input and the runtime's time per input.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use strata_ir::adaptive::{bit_ops, AdaptivePolicy};
use strata_ir::{Graph, Tensor};
use strata_runtime::{QuantPath, RunOptions, Session};

use super::{correct, predictions, EvalError};
use crate::adaptive::{common_plane_counts, policy_cost, uniform};
use crate::model::ContainerInfo;

/// One configuration's accuracy and cost.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CostRow {
    /// `uniform`, `strata-mixed` or `adaptive`.
    pub method: &'static str,
    /// `k=4`, `stored`, or the policy's target (`budget=0.5`).
    pub label: String,
    /// Fraction of samples whose argmax equals the label.
    pub top1: f64,
    /// Fraction of samples whose argmax equals the full-plane model's.
    pub agreement: f64,
    /// Average bit-operations per input of the bit-plane layers, as a fraction of the
    /// full-plane model's (`strata_ir::adaptive::bit_ops`).
    pub bit_ops: f64,
    /// Adaptive: how many samples each stage ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage_runs: Option<Vec<usize>>,
    /// Runtime wall time per input over the whole batch (codes prepared beforehand).
    pub micros_per_input: f64,
}

/// The cost table and what it was measured on.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CostReport {
    /// The full-plane model's plane count (the teacher of `agreement`, 1.0 of `bit_ops`).
    pub full_planes: u8,
    pub samples: usize,
    /// Threads of the runtime's pool during the timings.
    pub threads: usize,
    pub rows: Vec<CostRow>,
}

/// Evaluates every uniform plane count the layers share, the stored per-layer choice (if
/// any) and each of `policies` (already fitted; lowered here to the planes present) on
/// `data` against `labels`.
pub fn evaluate_cost(
    graph: &Graph,
    info: &ContainerInfo,
    data: &Tensor,
    labels: &Tensor,
    policies: &[AdaptivePolicy],
) -> Result<CostReport, EvalError> {
    let counts = common_plane_counts(graph, info.available_planes);
    let top = *counts.last().ok_or_else(|| EvalError::PlanesUnavailable {
        k: info.available_planes,
        available: counts.clone(),
    })?;
    let n = data.shape().first().copied().unwrap_or(0);
    let session = Session::new(graph);
    let full = bit_ops(graph, &uniform(graph, top), top)?.max(1) as f64;
    let one = first_sample(data)?;
    let score = |out: &Tensor| -> Result<Vec<bool>, EvalError> { correct(out, labels) };
    // The configurations with fixed counts: uniform k, then the stored choice.
    let mut fixed: Vec<(&'static str, String, BTreeMap<String, u8>)> = counts
        .iter()
        .map(|&k| ("uniform", format!("k={k}"), uniform(graph, k)))
        .collect();
    if !info.layer_planes.is_empty() {
        let mut stored = uniform(graph, top);
        stored.extend(info.default_layer_planes(graph)?);
        fixed.push(("strata-mixed", "stored".into(), stored));
    }
    let mut rows = Vec::new();
    let mut teacher: Option<Vec<usize>> = None;
    // The full-plane model first: it is every row's teacher.
    fixed.rotate_left(counts.len() - 1);
    for (method, label, layer_planes) in fixed {
        let options = RunOptions {
            planes: None,
            per_layer: layer_planes.clone(),
            path: QuantPath::Integer,
        };
        session.run_with(std::slice::from_ref(&one), &options)?;
        let start = Instant::now();
        let out = session
            .run_with(std::slice::from_ref(data), &options)?
            .into_iter()
            .next()
            .ok_or(EvalError::NoOutputs)?;
        let micros = start.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64;
        let top1s = predictions(&out)?;
        let teacher = teacher.get_or_insert_with(|| top1s.clone());
        rows.push(CostRow {
            method,
            label,
            top1: fraction(&score(&out)?),
            agreement: agreement(&top1s, teacher),
            bit_ops: bit_ops(graph, &layer_planes, top)? as f64 / full,
            stage_runs: None,
            micros_per_input: micros,
        });
    }
    let teacher = teacher.unwrap_or_default();
    for policy in policies {
        let policy = policy.effective(graph, info.available_planes)?;
        // Every stage's codes prepared before the timed run.
        for stage in &policy.stages {
            let options = RunOptions {
                planes: None,
                per_layer: stage.layer_planes.clone(),
                path: QuantPath::Integer,
            };
            session.run_with(std::slice::from_ref(&one), &options)?;
        }
        let start = Instant::now();
        let run = session.run_adaptive(data, &policy)?;
        let micros = start.elapsed().as_secs_f64() * 1e6 / n.max(1) as f64;
        let spent = policy_cost(graph, info.available_planes, &policy, &run.ran)
            .map_err(|e| EvalError::Adaptive(Box::new(e)))?;
        rows.push(CostRow {
            method: "adaptive",
            label: policy.target.clone(),
            top1: fraction(&score(&run.output)?),
            agreement: agreement(&predictions(&run.output)?, &teacher),
            bit_ops: spent,
            stage_runs: Some(run.ran),
            micros_per_input: micros,
        });
    }
    // Cheapest first, as the table and the chart read.
    rows.sort_by(|a, b| a.bit_ops.total_cmp(&b.bit_ops));
    Ok(CostReport {
        full_planes: top,
        samples: n,
        threads: strata_runtime::threads(),
        rows,
    })
}

fn fraction(hits: &[bool]) -> f64 {
    hits.iter().filter(|&&h| h).count() as f64 / hits.len().max(1) as f64
}

fn agreement(a: &[usize], b: &[usize]) -> f64 {
    let same = a.iter().zip(b).filter(|(x, y)| x == y).count();
    same as f64 / a.len().max(1) as f64
}

/// The first sample of `data` (batch 1), to prepare every configuration's codes before the
/// timed run.
fn first_sample(data: &Tensor) -> Result<Tensor, EvalError> {
    let shape = data.shape().to_vec();
    let values = data.as_f32().ok_or_else(|| EvalError::Logits {
        dtype: data.dtype().to_string(),
        shape: shape.clone(),
    })?;
    let per = values.len() / shape.first().copied().unwrap_or(1).max(1);
    let mut one = shape;
    if let Some(b) = one.first_mut() {
        *b = 1;
    }
    Tensor::from_f32(one, values[..per].to_vec()).map_err(|e| EvalError::Executor {
        backend: "runtime".into(),
        reason: e.to_string(),
    })
}
