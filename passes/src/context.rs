//! What passes hand each other besides the graph.

use std::collections::BTreeMap;

use strata_ir::Tensor;

/// Receives `(stage, done, total)` from long-running passes.
pub type ProgressFn = Box<dyn FnMut(&str, u64, u64) + Send>;

/// Shared state of one pipeline run: calibration inputs supplied by the caller, and results
/// that one pass computes for a later one (e.g. activation statistics for the quantizer).
#[derive(Default)]
pub struct PassContext {
    /// Calibration samples, one tensor per graph input (each `[N, …]`), already preprocessed.
    pub calibration: Option<Vec<Tensor>>,
    /// Optional integer labels `[N]` for the calibration samples.
    pub labels: Option<Tensor>,
    /// Named results passes leave for later passes, keyed by the producing pass's name.
    /// Typed accessors live with the passes that define them.
    pub results: BTreeMap<&'static str, Box<dyn std::any::Any + Send>>,
    /// Progress of long-running passes: `(stage, done, total)`. The CLI draws a bar with it.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for PassContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PassContext")
            .field("calibration", &self.calibration.as_ref().map(|c| c.len()))
            .field("labels", &self.labels.is_some())
            .field("results", &self.results.keys().collect::<Vec<_>>())
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

impl PassContext {
    /// Reports progress if a reporter is installed.
    pub fn report(&mut self, stage: &str, done: u64, total: u64) {
        if let Some(progress) = self.progress.as_mut() {
            progress(stage, done, total);
        }
    }

    /// A context with calibration samples.
    pub fn with_calibration(inputs: Vec<Tensor>) -> PassContext {
        PassContext {
            calibration: Some(inputs),
            ..PassContext::default()
        }
    }
}
