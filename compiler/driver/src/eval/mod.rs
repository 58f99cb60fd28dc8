//! Accuracy and size evaluation behind `strata eval`: how much each plane count costs in
//! accuracy and buys in bytes, beside the baselines a user would otherwise ship.

mod cost;
mod evaluate;
mod stats;

use serde::Serialize;

pub use cost::{evaluate_cost, CostReport, CostRow};
pub use evaluate::{evaluate, evaluate_with, EvalRequest};
pub use stats::{
    argmax, correct, mcnemar_exact, paired, predictions, score, weight_bytes,
    weight_bytes_per_layer,
};

/// One row of the evaluation table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EvalRow {
    /// `fp32`, `strata`, `strata-mixed`, `dedicated-qat`, `nested-ptq`, `dedicated-ptq` or
    /// `naive-truncation`.
    pub method: &'static str,
    /// Plane count (`None` for FP32 and the per-layer mixed choice).
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
    /// Per-layer plane counts of a `strata-mixed` row (the container's stored
    /// mixed-precision choice).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub layer_planes: Option<std::collections::BTreeMap<String, u8>>,
}

/// A paired comparison of the Strata model with another method at one plane count on the
/// same images. Top-1 figures a few images apart are within noise; counting the images only
/// one of the two gets right, and testing that split, says whether a difference is real.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PairedComparison {
    /// Plane count of the Strata model.
    pub planes: u8,
    /// The other method (`fp32`, `dedicated-qat`, `nested-ptq`, `dedicated-ptq`,
    /// `naive-truncation`).
    pub against: &'static str,
    /// The other method's plane count (`None` for FP32).
    pub against_planes: Option<u8>,
    /// Images the Strata model classifies correctly and the other does not.
    pub strata_only: usize,
    /// Images the other method classifies correctly and the Strata model does not.
    pub other_only: usize,
    /// Exact two-sided McNemar p-value ([`mcnemar_exact`]): the probability of a split at
    /// least this uneven if both methods were equally accurate.
    pub p_value: f64,
}

/// The whole table, in the shape `--json` prints.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct EvalReport {
    pub rows: Vec<EvalRow>,
    /// Strata against FP32 and each baseline, per plane count (with `--baselines`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub comparisons: Vec<PairedComparison>,
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
    #[error("plane count {k} is not available (available: {available:?})")]
    PlanesUnavailable { k: u8, available: Vec<u8> },
    #[error("the model has no outputs")]
    NoOutputs,
    #[error("the baselines need the FP32 source model")]
    BaselinesNeedSource,
    #[error(transparent)]
    Runtime(#[from] strata_runtime::RuntimeError),
    #[error(transparent)]
    Pass(#[from] strata_passes::PassError),
    #[error(transparent)]
    Pipeline(#[from] strata_passes::PipelineError),
    #[error(transparent)]
    Container(#[from] strata_ir::container::ContainerError),
    #[error(transparent)]
    Graph(#[from] strata_ir::GraphError),
    #[error(transparent)]
    Adaptive(Box<crate::adaptive::AdaptiveError>),
    /// The executor given to [`evaluate_with`] failed (a backend other than the runtime).
    #[error("{backend}: {reason}")]
    Executor { backend: String, reason: String },
}
