//! What passes hand each other besides the graph.

use std::collections::BTreeMap;

use strata_ir::Tensor;

/// Shared state of one pipeline run: calibration inputs supplied by the caller, and results
/// that one pass computes for a later one (e.g. activation statistics for the quantizer).
#[derive(Debug, Default)]
pub struct PassContext {
    /// Calibration samples, one tensor per graph input (each `[N, …]`), already preprocessed.
    pub calibration: Option<Vec<Tensor>>,
    /// Optional integer labels `[N]` for the calibration samples.
    pub labels: Option<Tensor>,
    /// Named results passes leave for later passes, keyed by the producing pass's name.
    /// Typed accessors live with the passes that define them.
    pub results: BTreeMap<&'static str, Box<dyn std::any::Any + Send>>,
}

impl PassContext {
    /// A context with calibration samples.
    pub fn with_calibration(inputs: Vec<Tensor>) -> PassContext {
        PassContext {
            calibration: Some(inputs),
            ..PassContext::default()
        }
    }
}
