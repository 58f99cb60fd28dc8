//! Accuracy and size evaluation behind `strata eval`: how much each plane count costs in
//! accuracy and buys in bytes, beside the baselines a user would otherwise ship.

use serde::Serialize;
use strata_ir::{Graph, NodeKind, Op, Tensor};

/// One row of the evaluation table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EvalRow {
    /// `fp32`, `strata`, `dedicated-ptq` or `naive-truncation`.
    pub method: &'static str,
    /// Plane count (`None` for FP32).
    pub planes: Option<u8>,
    /// Fraction of samples whose argmax equals the label.
    pub top1: f64,
    /// Fraction of samples whose argmax equals the FP32 model's (`None` without an FP32 reference).
    pub agreement: Option<f64>,
    /// Largest |logit − FP32 logit| over all samples and classes.
    pub max_logit_error: Option<f64>,
    /// Mean |logit − FP32 logit|.
    pub mean_logit_error: Option<f64>,
    /// Bytes of weights a device needs at this plane count (planes + this k's side tables +
    /// other constants).
    pub weight_bytes: u64,
}

/// The whole table, in the shape `--json` prints.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct EvalReport {
    pub rows: Vec<EvalRow>,
}

/// Why evaluation could not compare outputs.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("logits must be f32 [N, classes], got {dtype} {shape:?}")]
    Logits { dtype: String, shape: Vec<usize> },
    #[error("labels must be integers, got {0}")]
    LabelType(String),
    #[error("{labels} labels for {rows} samples")]
    LabelCount { labels: usize, rows: usize },
    #[error("reference logits have shape {reference:?}, these have {got:?}")]
    ReferenceShape {
        reference: Vec<usize>,
        got: Vec<usize>,
    },
}

fn rows_of(logits: &Tensor) -> Result<(&[f32], usize, usize), EvalError> {
    match (logits.as_f32(), logits.shape()) {
        (Some(v), [n, c]) if *c > 0 => Ok((v, *n, *c)),
        _ => Err(EvalError::Logits {
            dtype: logits.dtype().to_string(),
            shape: logits.shape().to_vec(),
        }),
    }
}

/// Index of the largest value (first on ties), as numpy's argmax.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Scores one set of logits against labels and, optionally, the FP32 logits.
pub fn score(
    method: &'static str,
    planes: Option<u8>,
    logits: &Tensor,
    labels: &Tensor,
    reference: Option<&Tensor>,
    weight_bytes: u64,
) -> Result<EvalRow, EvalError> {
    let (values, n, c) = rows_of(logits)?;
    let labels = labels
        .to_i64_vec()
        .ok_or_else(|| EvalError::LabelType(labels.dtype().to_string()))?;
    if labels.len() != n {
        return Err(EvalError::LabelCount {
            labels: labels.len(),
            rows: n,
        });
    }
    let predictions: Vec<usize> = values.chunks(c).map(argmax).collect();
    let correct = predictions
        .iter()
        .zip(&labels)
        .filter(|(&p, &l)| p as i64 == l)
        .count();
    let (mut agreement, mut max_err, mut mean_err) = (None, None, None);
    if let Some(reference) = reference {
        if reference.shape() != logits.shape() {
            return Err(EvalError::ReferenceShape {
                reference: reference.shape().to_vec(),
                got: logits.shape().to_vec(),
            });
        }
        let (ref_values, _, _) = rows_of(reference)?;
        let agree = ref_values
            .chunks(c)
            .zip(&predictions)
            .filter(|(row, &p)| argmax(row) == p)
            .count();
        let (mut max, mut sum) = (0f64, 0f64);
        for (a, b) in values.iter().zip(ref_values) {
            let d = (*a as f64 - *b as f64).abs();
            max = max.max(d);
            sum += d;
        }
        agreement = Some(agree as f64 / n.max(1) as f64);
        max_err = Some(max);
        mean_err = Some(sum / values.len().max(1) as f64);
    }
    Ok(EvalRow {
        method,
        planes,
        top1: correct as f64 / n.max(1) as f64,
        agreement,
        max_logit_error: max_err,
        mean_logit_error: mean_err,
        weight_bytes,
    })
}

/// Bytes of weights a device stores to run `graph` at `planes` planes: for each bit-plane op,
/// `k` planes and the side-table row for `k`; every other constant as stored.
pub fn weight_bytes(graph: &Graph, planes: Option<u8>) -> u64 {
    let mut bitplane_inputs = std::collections::BTreeSet::new();
    let mut total = 0u64;
    for id in graph.node_ids() {
        let Ok(node) = graph.node(id) else { continue };
        let NodeKind::Op(Op::Bitplane(bp)) = &node.kind else {
            continue;
        };
        let inputs = graph.node_inputs(id);
        bitplane_inputs.extend(inputs.iter().skip(1).map(|v| v.node));
        let stored = inputs
            .get(1)
            .and_then(|&v| graph.constant_value(v))
            .map(|t| t.shape().first().copied().unwrap_or(0))
            .unwrap_or(0);
        let k = planes.map(usize::from).unwrap_or(stored).min(stored) as u64;
        let row_bytes = strata_ir::quant::row_bytes(bp.spec.cols) as u64;
        let rows = bp.spec.rows as u64;
        // planes + alpha, beta, bias (f32 per row) + act scale and zero point.
        total += k * rows * row_bytes + 3 * 4 * rows + 8;
    }
    for id in graph.node_ids() {
        if bitplane_inputs.contains(&id) {
            continue;
        }
        if let Ok(node) = graph.node(id) {
            if let NodeKind::Constant(cid) = node.kind {
                if let Some(t) = graph.constant(cid) {
                    total += (t.len() * t.dtype().size_bytes()) as u64;
                }
            }
        }
    }
    total
}
