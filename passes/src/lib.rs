//! Strata's graph transforms and the machinery that runs them.
//!
//! Every transform is a named [`Pass`] built from a pipeline string by the
//! [`PassManager`], which verifies the graph after each pass (so a broken pass is caught where
//! it broke, not three passes later) and can print the IR after each one.

pub mod baselines;
mod bitplane_rewrite;
mod calibrate;
mod context;
mod conv_transpose_to_conv;
mod eliminate_dead_code;
mod fold_batchnorm;
mod fold_constants;
mod frontier;
mod infer_shapes;
mod layer_codes;
mod least_squares;
mod manager;
mod matmul_to_conv;
mod once_qat;
mod pipeline;
pub mod qat_tables;
mod vl_quantize;
mod walk;

pub use bitplane_rewrite::{replace_with_bitplane, BitplaneRewrite, QuantizedLayer, SideTable};
pub use calibrate::{
    minmax_range, mse_range, percentile_range, Calibrate, Calibration, CalibrationKind,
    CalibrationMethod, RangeStats,
};
pub use context::{PassContext, ProgressFn};
pub use conv_transpose_to_conv::ConvTransposeToConv;
pub use eliminate_dead_code::EliminateDeadCode;
pub use fold_batchnorm::FoldBatchNorm;
pub use fold_constants::FoldConstants;
pub use infer_shapes::InferShapes;
pub use least_squares::{solve_2x2, FitSums, FIT_ROWS};
pub use manager::{PassInfo, PassManager, PASSES};
pub use matmul_to_conv::MatMulToConv;
pub use once_qat::{auto_temperature, OnceQat, OnceQatReport};
pub use pipeline::{parse_pipeline, render_pipeline, PassOptions, PassSpec, PipelineError};
pub use vl_quantize::{
    layer_at, parse_plane_list, quantizable_layers, LayerCodes, LayerKind, QuantLayer,
    VlQuantization, VlQuantize,
};

use strata_ir::{Graph, GraphError, VerifyError};
use strata_runtime::RuntimeError;

/// A graph transform. Passes are small and single-purpose so pipelines can be composed and
/// each one snapshot-tested on its own.
pub trait Pass {
    /// The name used in pipeline strings.
    fn name(&self) -> &'static str;
    /// Rewrites the graph in place; returns whether anything changed. `ctx` carries what
    /// passes hand each other beyond the graph (calibration data and results).
    fn run(&self, graph: &mut Graph, ctx: &mut PassContext) -> Result<bool, PassError>;
    /// Whether the pass repairs declared types itself, so a pipeline starting with it may take
    /// a graph whose types are stale (for example after an input's shape was edited).
    fn accepts_stale_types(&self) -> bool {
        false
    }
}

/// Why a pass or pipeline failed.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error("pass `{pass}`: {source}")]
    Graph {
        pass: &'static str,
        #[source]
        source: GraphError,
    },
    #[error("pass `{pass}`: evaluating node `{node}` failed: {source}")]
    Runtime {
        pass: &'static str,
        node: String,
        /// Boxed: runtime errors are large and would bloat every pass's `Result`.
        #[source]
        source: Box<RuntimeError>,
    },
    #[error("the graph is invalid before the pipeline runs: {0}")]
    InvalidInput(#[source] Box<VerifyError>),
    #[error("pass `{pass}` produced an invalid graph: {source}")]
    Verify {
        pass: &'static str,
        #[source]
        source: Box<VerifyError>,
    },
    #[error("pass `{pass}`: node `{node}`: {reason}")]
    Rewrite {
        pass: &'static str,
        node: String,
        reason: String,
    },
    /// A pass that measures activations was run without samples.
    #[error(
        "pass `{pass}` needs calibration samples: pass calibration data (one tensor per graph \
         input, samples stacked along the leading axis) in PassContext.calibration"
    )]
    MissingCalibration { pass: &'static str },
    /// The calibration samples do not fit the graph.
    #[error("pass `{pass}`: calibration data: {reason}")]
    BadCalibration { pass: &'static str, reason: String },
    /// A pass that applies an earlier pass's result ran without it.
    #[error("pass `{pass}` needs the result of `{needs}`: run `{needs}` earlier in the pipeline")]
    MissingResult {
        pass: &'static str,
        needs: &'static str,
    },
    /// The quantization arithmetic refused a layer's values or widths.
    #[error("pass `{pass}`: node `{node}`: {source}")]
    Quant {
        pass: &'static str,
        node: String,
        #[source]
        source: strata_ir::quant::QuantError,
    },
    /// A library entry point (e.g. a baseline) was called with an unsupported argument.
    #[error("{pass}: {reason}")]
    BadArgument { pass: &'static str, reason: String },
}
