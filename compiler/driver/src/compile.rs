//! The compile pipeline behind `strata compile` and the build-script API: a trained float
//! graph and calibration samples in, a vertically layered `.strata` container out.

use std::collections::BTreeMap;

use strata_ir::container::{write_container, ContainerError, ContainerOptions};
use strata_ir::{Graph, Tensor};
use strata_passes::{PassContext, PassError, PassManager, PipelineError};

/// How to quantize. Defaults follow DESIGN.md: 8-bit codes, plane counts 2..=8, int8 activations.
#[derive(Debug, Clone, PartialEq)]
pub struct CompileOptions {
    /// `B`: bits of the codes (planes stored in the full model).
    pub bits: u8,
    /// Plane counts that get a side table (each in `1..=bits`).
    pub planes: Vec<u8>,
    /// Activation bits of the integer path.
    pub act_bits: u8,
    /// Activation range estimator: `minmax`, `percentile` or `mse`.
    pub calib_method: String,
    /// `once-qat` optimiser steps; 0 skips training (plain vl-quantize).
    pub qat_steps: usize,
    /// Samples per `once-qat` step.
    pub qat_batch: usize,
    /// Peak Adam learning rate of `once-qat`'s side tables.
    pub qat_lr: f32,
    /// Seed of `once-qat`'s batch sampler (same seed, same container).
    pub seed: u64,
    /// Mixed precision: choose a plane count per layer whose C-backend weight bytes (packed
    /// planes, the `armv7m` layout) fit this budget (see [`crate::mixed_precision`]); the choice is stored in the container.
    pub budget_bytes: Option<u64>,
    /// Further `once-qat` options, `key=value` pairs separated by commas (e.g.
    /// `weight-lr=0.05,tables-only=0.5`), appended to the pass's options and checked by the
    /// pipeline parser like any other.
    pub qat_options: String,
}

impl Default for CompileOptions {
    fn default() -> Self {
        CompileOptions {
            bits: 8,
            planes: (2..=8).collect(),
            act_bits: 8,
            calib_method: "percentile".to_string(),
            qat_steps: 0,
            qat_batch: 64,
            qat_lr: 1e-3,
            seed: 0,
            budget_bytes: None,
            qat_options: String::new(),
        }
    }
}

/// Why compilation failed.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("invalid options: {0}")]
    Options(String),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Pass(#[from] PassError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Mixed(#[from] crate::mixed_precision::MixedError),
}

impl CompileOptions {
    /// The pass pipeline these options stand for; it is also recorded in the container.
    pub fn pipeline(&self) -> String {
        let planes: Vec<String> = self.planes.iter().map(|k| k.to_string()).collect();
        // `{:?}` of an f32 prints the shortest text that parses back to the same value.
        let qat = if self.qat_steps > 0 {
            let extra = self.qat_options.trim();
            let extra = if extra.is_empty() {
                String::new()
            } else {
                format!(",{extra}")
            };
            format!(
                "once-qat{{steps={},batch={},lr={:?},seed={}{extra}}},",
                self.qat_steps, self.qat_batch, self.qat_lr, self.seed
            )
        } else {
            String::new()
        };
        format!(
            "fold-constants,fold-batchnorm,eliminate-dead-code,calibrate{{method={}}},\
             vl-quantize{{bits={},planes=\"{}\",act-bits={}}},{qat}bitplane-rewrite,\
             eliminate-dead-code",
            self.calib_method,
            self.bits,
            planes.join(","),
            self.act_bits
        )
    }

    fn validate(&self) -> Result<(), CompileError> {
        if !(2..=8).contains(&self.bits) {
            return Err(CompileError::Options(format!(
                "--bits {} is outside 2..=8",
                self.bits
            )));
        }
        if self.planes.is_empty() {
            return Err(CompileError::Options("--planes is empty".into()));
        }
        if let Some(k) = self.planes.iter().find(|&&k| k == 0 || k > self.bits) {
            return Err(CompileError::Options(format!(
                "plane count {k} is outside 1..={} (--bits)",
                self.bits
            )));
        }
        if !(2..=8).contains(&self.act_bits) {
            return Err(CompileError::Options(format!(
                "--act-bits {} is outside 2..=8",
                self.act_bits
            )));
        }
        if self.qat_steps > 0 {
            if self.qat_batch == 0 {
                return Err(CompileError::Options(
                    "--qat-batch must be at least 1".into(),
                ));
            }
            if !(self.qat_lr.is_finite() && self.qat_lr > 0.0) {
                return Err(CompileError::Options(format!(
                    "--qat-lr {} must be positive and finite",
                    self.qat_lr
                )));
            }
        }
        Ok(())
    }
}

/// Quantizes `graph` in place into bit-plane operators.
pub fn quantize(
    graph: &mut Graph,
    calibration: Vec<Tensor>,
    options: &CompileOptions,
    ctx_hook: impl FnOnce(&mut PassContext),
) -> Result<(), CompileError> {
    quantize_in_context(graph, calibration, options, ctx_hook).map(|_| ())
}

/// Like [`quantize`], and returns the pass context afterwards, so that callers can read what
/// the passes reported (e.g. [`strata_passes::OnceQatReport`]).
pub fn quantize_in_context(
    graph: &mut Graph,
    calibration: Vec<Tensor>,
    options: &CompileOptions,
    ctx_hook: impl FnOnce(&mut PassContext),
) -> Result<PassContext, CompileError> {
    options.validate()?;
    let manager = PassManager::parse(&options.pipeline())?;
    let mut ctx = PassContext::with_calibration(calibration);
    ctx_hook(&mut ctx);
    manager.run(graph, &mut ctx, |_, _| {})?;
    Ok(ctx)
}

/// The provenance a `.strata` records about how it was made (`source`, `source_sha256`,
/// `calibration`, `calibration_method`, `calibration_samples`), so `strata inspect` can say
/// where a file came from and the CLI and the build-script API record the same keys.
pub fn provenance_metadata(
    source: &str,
    source_bytes: &[u8],
    calibration: &[std::path::PathBuf],
    options: &CompileOptions,
    samples: &[Tensor],
) -> BTreeMap<String, String> {
    use sha2::{Digest, Sha256};
    let names: Vec<String> = calibration
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let n = samples
        .first()
        .and_then(|t| t.shape().first())
        .copied()
        .unwrap_or(0);
    BTreeMap::from([
        ("source".to_string(), source.to_string()),
        (
            "source_sha256".to_string(),
            format!("{:x}", Sha256::digest(source_bytes)),
        ),
        ("calibration".to_string(), names.join(",")),
        (
            "calibration_method".to_string(),
            options.calib_method.clone(),
        ),
        ("calibration_samples".to_string(), n.to_string()),
    ])
}

/// Quantizes and serialises to `.strata` bytes; `metadata` is stored in the header beside the
/// compile options. With `budget_bytes`, the per-layer plane choice is stored too, and its
/// measurements under the metadata key `mixed_precision` (JSON).
pub fn compile_to_container(
    graph: Graph,
    calibration: Vec<Tensor>,
    options: &CompileOptions,
    metadata: BTreeMap<String, String>,
    ctx_hook: impl FnOnce(&mut PassContext),
) -> Result<Vec<u8>, CompileError> {
    compile_with_context(graph, calibration, options, metadata, ctx_hook).map(|(b, _)| b)
}

/// Like [`compile_to_container`], and returns the pass context afterwards (what the passes
/// reported, e.g. [`strata_passes::OnceQatReport`]).
pub fn compile_with_context(
    mut graph: Graph,
    calibration: Vec<Tensor>,
    options: &CompileOptions,
    mut metadata: BTreeMap<String, String>,
    ctx_hook: impl FnOnce(&mut PassContext),
) -> Result<(Vec<u8>, PassContext), CompileError> {
    // Mixed precision compares against the FP32 model on the same samples.
    let reference = match options.budget_bytes {
        Some(budget) => {
            let fp32 = strata_runtime::run(&graph, &calibration)
                .map_err(crate::mixed_precision::MixedError::from)?
                .into_iter()
                .next()
                .ok_or_else(|| crate::mixed_precision::MixedError::Output("missing".into()))?;
            Some((budget, calibration.clone(), fp32))
        }
        None => None,
    };
    let ctx = quantize_in_context(&mut graph, calibration, options, ctx_hook)?;
    metadata.insert("pipeline".into(), options.pipeline());
    let mut layer_planes = BTreeMap::new();
    if let Some((budget, calibration, fp32)) = reference {
        let plan = crate::mixed_precision::choose(&graph, &calibration, &fp32, budget)?;
        metadata.insert(
            "mixed_precision".into(),
            serde_json::to_string(&plan).map_err(|e| CompileError::Options(e.to_string()))?,
        );
        layer_planes = plan.layer_planes;
    }
    let bytes = write_container(
        &graph,
        &ContainerOptions {
            metadata,
            layer_planes,
        },
    )?;
    Ok((bytes, ctx))
}
