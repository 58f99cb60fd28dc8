//! The pass registry and the pass manager.

use strata_ir::Graph;

use crate::pipeline::{parse_pipeline, PassOptions, PipelineError};
use crate::{
    BitplaneRewrite, Calibrate, ConvTransposeToConv, EliminateDeadCode, FoldBatchNorm,
    FoldConstants, InferShapes, MatMulToConv, OnceQat, Pass, PassContext, PassError, VlQuantize,
};

/// A registered pass: its pipeline name, a one-line description for `--help`, and a
/// constructor that validates its options (passes without options are built directly).
pub struct PassInfo {
    pub name: &'static str,
    pub summary: &'static str,
    pub create: fn(&PassOptions) -> Result<Box<dyn Pass>, PipelineError>,
}

/// Every pass a pipeline string can name, in the order they are usually run.
pub const PASSES: &[PassInfo] = &[
    PassInfo {
        name: "infer-shapes",
        summary: "recompute every value's type from the graph inputs and constants",
        create: |_| Ok(Box::new(InferShapes)),
    },
    PassInfo {
        name: "fold-constants",
        summary: "evaluate ops whose inputs are all constants {max-elements=N}",
        create: FoldConstants::create,
    },
    PassInfo {
        name: "fold-batchnorm",
        summary: "merge inference BatchNormalization into the preceding Conv or Gemm",
        create: |_| Ok(Box::new(FoldBatchNorm)),
    },
    PassInfo {
        name: "conv-transpose-to-conv",
        summary: "rewrite a ConvTranspose with constant weights as a Conv and a pixel shuffle, \
                  so it is quantized and lowered like any convolution",
        create: |_| Ok(Box::new(ConvTransposeToConv)),
    },
    PassInfo {
        name: "matmul-to-conv",
        summary: "rewrite a MatMul of a rank-3 or rank-4 activation with a constant 2-D weight \
                  (a transformer's Linear layers) as a Conv with a kernel of ones between \
                  Transposes, so it is quantized and lowered like any convolution",
        create: |_| Ok(Box::new(MatMulToConv)),
    },
    PassInfo {
        name: "eliminate-dead-code",
        summary: "remove nodes and constants no graph output depends on",
        create: |_| Ok(Box::new(EliminateDeadCode)),
    },
    PassInfo {
        name: "calibrate",
        summary: "checks the calibration samples and fixes the activation range estimator and \
                  sample count for vl-quantize {method=minmax|percentile|mse, \
                  percentile=99.99, samples=N}",
        create: Calibrate::create,
    },
    PassInfo {
        name: "vl-quantize",
        summary: "vertically layered codes, planes and per-plane-count side tables fitted on \
                  calibration samples {bits=8, planes=2-8, act-bits=8|planes}",
        create: VlQuantize::create,
    },
    PassInfo {
        name: "once-qat",
        summary: "train every plane count at once from the shared float weights (KL to the FP32 \
                  teacher, + cross-entropy with labels), keep per held-out checkpoints what \
                  makes no plane count worse, re-derive the planes {steps=N, batch=64, \
                  lr=1e-3, weight-lr=0.02, planes, weights, seed=0, holdout=0.1, evals=20, \
                  tables-only=0.3, normalize=true, temperature=auto, ce-weight=1}",
        create: OnceQat::create,
    },
    PassInfo {
        name: "bitplane-rewrite",
        summary: "replace each layer vl-quantize quantized by a bit-plane op",
        create: |_| Ok(Box::new(BitplaneRewrite)),
    },
];

/// Runs a sequence of passes, verifying after each.
pub struct PassManager {
    passes: Vec<Box<dyn Pass>>,
    print_after_all: bool,
}

impl PassManager {
    /// Builds the passes named in a pipeline string, rejecting unknown passes and options.
    pub fn parse(pipeline: &str) -> Result<PassManager, PipelineError> {
        let mut passes = Vec::new();
        for spec in parse_pipeline(pipeline)? {
            let info = PASSES.iter().find(|p| p.name == spec.name).ok_or_else(|| {
                PipelineError::UnknownPass {
                    name: spec.name.clone(),
                    known: PASSES.iter().map(|p| p.name).collect::<Vec<_>>().join(", "),
                }
            })?;
            let pass = (info.create)(&spec.options)?;
            spec.options.finish()?;
            passes.push(pass);
        }
        Ok(PassManager {
            passes,
            print_after_all: false,
        })
    }

    /// Builds a manager from already constructed passes.
    pub fn from_passes(passes: Vec<Box<dyn Pass>>) -> PassManager {
        PassManager {
            passes,
            print_after_all: false,
        }
    }

    /// Makes [`PassManager::run`] hand the IR after every pass to its observer.
    pub fn print_after_all(mut self, on: bool) -> Self {
        self.print_after_all = on;
        self
    }

    /// Names of the passes, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.passes.iter().map(|p| p.name()).collect()
    }

    /// Runs every pass in order. The graph is verified first (unless the first pass repairs
    /// types, see [`Pass::accepts_stale_types`]) and after each pass; with
    /// print-after-all, `after_pass(name, graph)` is called after each pass.
    pub fn run(
        &self,
        graph: &mut Graph,
        ctx: &mut PassContext,
        mut after_pass: impl FnMut(&'static str, &Graph),
    ) -> Result<(), PassError> {
        if !self.passes.first().is_some_and(|p| p.accepts_stale_types()) {
            strata_ir::verify(graph).map_err(|e| PassError::InvalidInput(Box::new(e)))?;
        }
        for pass in &self.passes {
            pass.run(graph, ctx)?;
            strata_ir::verify(graph).map_err(|source| PassError::Verify {
                pass: pass.name(),
                source: Box::new(source),
            })?;
            if self.print_after_all {
                after_pass(pass.name(), graph);
            }
        }
        Ok(())
    }
}
