//! The compile pipeline behind `strata compile` and the build-script API: a trained float
//! graph and calibration samples in, a vertically layered `.strata` container out.

use std::collections::BTreeMap;

use strata_ir::container::{write_container, ContainerError, ContainerOptions};
use strata_ir::quant::ActBits;
use strata_ir::{Graph, Tensor};
use strata_passes::{CalibrationKind, PassContext, PassError, PassManager, PipelineError};

/// How to quantize. Defaults follow DESIGN.md: 8-bit codes, plane counts 2..=8, int8 activations.
#[derive(Debug, Clone, PartialEq)]
pub struct CompileOptions {
    /// `B`: bits of the codes (planes stored in the full model).
    pub bits: u8,
    /// Plane counts that get a side table (each in `1..=bits`).
    pub planes: Vec<u8>,
    /// Activation bits of the integer path: a width for every plane count, or
    /// [`ActBits::Planes`] (`W k A k`: `max(k, 2)` bits at plane count `k`).
    pub act_bits: ActBits,
    /// Activation range estimator.
    pub calib_method: CalibrationKind,
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
            act_bits: ActBits::default(),
            calib_method: CalibrationKind::Percentile,
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
    /// An option is out of range; the message names the [`CompileOptions`] field.
    #[error("invalid compile options: {0}")]
    Options(String),
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    #[error(transparent)]
    Pass(#[from] PassError),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Mixed(#[from] crate::mixed_precision::MixedError),
    /// Boxed: the sidecar's errors are large and would bloat every compile `Result`.
    #[error(transparent)]
    Tables(Box<crate::qat_tables::TablesError>),
}

impl From<crate::qat_tables::TablesError> for CompileError {
    fn from(e: crate::qat_tables::TablesError) -> Self {
        CompileError::Tables(Box::new(e))
    }
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
            "{TABLES_PREPARE},calibrate{{method={}}},\
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
                "bits = {} is outside 2..=8",
                self.bits
            )));
        }
        if self.planes.is_empty() {
            return Err(CompileError::Options("planes is empty".into()));
        }
        if let Some(k) = self.planes.iter().find(|&&k| k == 0 || k > self.bits) {
            return Err(CompileError::Options(format!(
                "plane count {k} is outside 1..={} (bits)",
                self.bits
            )));
        }
        if let ActBits::Fixed(a) = self.act_bits {
            if !(2..=8).contains(&a) {
                return Err(CompileError::Options(format!(
                    "act_bits = {a} is outside 2..=8"
                )));
            }
        }
        if self.qat_steps > 0 {
            if self.qat_batch == 0 {
                return Err(CompileError::Options("qat_batch must be at least 1".into()));
            }
            if !(self.qat_lr.is_finite() && self.qat_lr > 0.0) {
                return Err(CompileError::Options(format!(
                    "qat_lr = {} must be positive and finite",
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

/// The passes before the tables are applied: the graph the tables' layers are matched in is
/// the one `vl-quantize` would see.
pub const TABLES_PREPARE: &str =
    "fold-constants,fold-batchnorm,conv-transpose-to-conv,matmul-to-conv,eliminate-dead-code";
/// The passes after: building the bit-plane ops from the tables.
pub const TABLES_APPLY: &str = "bitplane-rewrite,eliminate-dead-code";

/// The pipeline a `--qat-tables` compile records: `load-qat-tables` stands where
/// `calibrate` and `vl-quantize` stand otherwise (it is no pass of the registry; the file it
/// loaded is the metadata's `qat_tables`).
pub fn tables_pipeline() -> String {
    format!("{TABLES_PREPARE},load-qat-tables,{TABLES_APPLY}")
}

/// Quantizes `graph` in place with code scales and side tables trained elsewhere (the
/// sidecar at `tables`, docs/qat-tables.md): no calibration, no fitting. Returns the
/// loaded tables (with the file's SHA-256) and the pass context, whose `vl-quantize` result
/// holds what was applied.
pub fn quantize_with_tables(
    graph: &mut Graph,
    tables: &std::path::Path,
    ctx_hook: impl FnOnce(&mut PassContext),
) -> Result<(crate::qat_tables::LoadedTables, PassContext), CompileError> {
    let mut ctx = PassContext::default();
    ctx_hook(&mut ctx);
    PassManager::parse(TABLES_PREPARE)?.run(graph, &mut ctx, |_, _| {})?;
    let loaded = crate::qat_tables::read_tables(tables, graph)?;
    let vlq = strata_passes::qat_tables::from_tables(graph, &loaded.tables).map_err(|source| {
        crate::qat_tables::TablesError::Match {
            path: tables.to_path_buf(),
            source: Box::new(source),
        }
    })?;
    vlq.insert_into(&mut ctx);
    PassManager::parse(TABLES_APPLY)?.run(graph, &mut ctx, |_, _| {})?;
    Ok((loaded, ctx))
}

/// Like [`compile_with_context`] with tables instead of calibration: quantizes with
/// [`quantize_with_tables`] and serialises to `.strata` bytes. `metadata` gets the
/// `pipeline` ([`tables_pipeline`]) and `qat_tables_sha256` of the file read (the caller's
/// [`Provenance::with_qat_tables`] records its path).
pub fn compile_with_tables(
    mut graph: Graph,
    tables: &std::path::Path,
    mut metadata: BTreeMap<String, String>,
    ctx_hook: impl FnOnce(&mut PassContext),
) -> Result<(Vec<u8>, PassContext), CompileError> {
    let (loaded, ctx) = quantize_with_tables(&mut graph, tables, ctx_hook)?;
    metadata.insert("pipeline".into(), tables_pipeline());
    metadata.insert(Provenance::QAT_TABLES_SHA256.into(), loaded.sha256);
    let bytes = write_container(
        &graph,
        &ContainerOptions {
            metadata,
            ..ContainerOptions::default()
        },
    )?;
    Ok((bytes, ctx))
}

/// Where a `.strata` came from, recorded in its metadata so `strata inspect` can say and
/// `strata eval` can find the source model and calibration data again. The CLI and the
/// build-script API record the same keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// The source model's path as given.
    pub source: String,
    /// SHA-256 of the source model's bytes (hex).
    pub source_sha256: String,
    /// The calibration files' paths as given.
    pub calibration: Vec<String>,
    pub calibration_method: CalibrationKind,
    /// Calibration samples used (the batch size of the first file).
    pub calibration_samples: usize,
    /// Input shapes pinned when the source was imported (empty: none were needed).
    pub input_shapes: BTreeMap<String, strata_onnx::InputShape>,
    /// The QAT tables sidecar's path as given, when the model was packaged with
    /// `--qat-tables` instead of calibrated: then no calibration method is recorded, and the
    /// calibration files only when some were given.
    pub qat_tables: Option<String>,
    /// The labels file's path as given, when `once-qat` trained with labels (so `strata eval
    /// --baselines` trains its dedicated QAT baseline on the same labelled data).
    pub labels: Option<String>,
}

impl Provenance {
    /// The provenance of a compile of `source` (whose bytes are `source_bytes`) with
    /// `options`, calibrated on `samples` read from `calibration`.
    pub fn new(
        source: &str,
        source_bytes: &[u8],
        calibration: &[std::path::PathBuf],
        options: &CompileOptions,
        samples: &[Tensor],
    ) -> Provenance {
        use sha2::{Digest, Sha256};
        Provenance {
            source: source.to_string(),
            source_sha256: format!("{:x}", Sha256::digest(source_bytes)),
            calibration: calibration
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
            calibration_method: options.calib_method,
            calibration_samples: samples
                .first()
                .and_then(|t| t.shape().first())
                .copied()
                .unwrap_or(0),
            input_shapes: BTreeMap::new(),
            qat_tables: None,
            labels: None,
        }
    }

    /// The same provenance for a model trained with the labels at `labels`.
    pub fn with_labels(mut self, labels: &std::path::Path) -> Provenance {
        self.labels = Some(labels.display().to_string());
        self
    }

    /// The same provenance for a model packaged with the QAT tables at `tables`.
    pub fn with_qat_tables(mut self, tables: &std::path::Path) -> Provenance {
        self.qat_tables = Some(tables.display().to_string());
        self
    }

    /// The same provenance, recording the input shapes the source was imported with.
    pub fn with_input_shapes(
        mut self,
        shapes: &BTreeMap<String, strata_onnx::InputShape>,
    ) -> Provenance {
        self.input_shapes = shapes.clone();
        self
    }

    /// The metadata entries (`source`, `source_sha256`, `calibration`, `calibration_method`,
    /// `calibration_samples`, and `input_shapes` when some were pinned; with QAT tables,
    /// `qat_tables` instead of `calibration_method`, and the calibration entries only when
    /// calibration files were given).
    pub fn to_metadata(&self) -> BTreeMap<String, String> {
        let mut metadata = BTreeMap::from([
            (Self::SOURCE.to_string(), self.source.clone()),
            ("source_sha256".to_string(), self.source_sha256.clone()),
            (Self::CALIBRATION.to_string(), self.calibration.join(",")),
            (
                Self::CALIBRATION_METHOD.to_string(),
                self.calibration_method.name().to_string(),
            ),
            (
                "calibration_samples".to_string(),
                self.calibration_samples.to_string(),
            ),
        ]);
        if let Some(tables) = &self.qat_tables {
            metadata.remove(Self::CALIBRATION_METHOD);
            if self.calibration.is_empty() {
                metadata.remove(Self::CALIBRATION);
                metadata.remove("calibration_samples");
            }
            metadata.insert(Self::QAT_TABLES.to_string(), tables.clone());
        }
        if let Some(labels) = &self.labels {
            metadata.insert(Self::LABELS.to_string(), labels.clone());
        }
        if !self.input_shapes.is_empty() {
            let shapes: Vec<String> = self
                .input_shapes
                .iter()
                .map(|(name, shape)| format!("{name}={shape}"))
                .collect();
            metadata.insert(Self::INPUT_SHAPES.to_string(), shapes.join(";"));
        }
        metadata
    }

    /// Metadata key of the QAT tables sidecar's path (`--qat-tables`).
    pub const QAT_TABLES: &'static str = "qat_tables";
    /// Metadata key of the SHA-256 (hex) of the sidecar's bytes as read.
    pub const QAT_TABLES_SHA256: &'static str = "qat_tables_sha256";

    /// Metadata key of the pinned input shapes (`name=shape;name=shape`).
    pub const INPUT_SHAPES: &'static str = "input_shapes";

    /// The input shapes a container's metadata records, to import its source again the same
    /// way (an unreadable entry is an error naming it).
    pub fn recorded_input_shapes(
        metadata: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, strata_onnx::InputShape>, strata_onnx::InputShapeError> {
        let mut shapes = BTreeMap::new();
        if let Some(text) = metadata.get(Self::INPUT_SHAPES) {
            for entry in text.split(';').filter(|e| !e.is_empty()) {
                let (name, shape) = strata_onnx::parse_named_input_shape(entry)?;
                shapes.insert(name, shape);
            }
        }
        Ok(shapes)
    }

    /// Metadata key of the source model's path.
    pub const SOURCE: &'static str = "source";
    /// Metadata key of the calibration files' paths.
    pub const CALIBRATION: &'static str = "calibration";
    /// Metadata key of the QAT labels file's path (`--labels`).
    pub const LABELS: &'static str = "labels";
    /// Metadata key of the calibration method's name.
    pub const CALIBRATION_METHOD: &'static str = "calibration_method";

    /// The calibration method a container's metadata records (`None`: not recorded or
    /// unknown).
    pub fn recorded_method(metadata: &BTreeMap<String, String>) -> Option<CalibrationKind> {
        CalibrationKind::from_name(metadata.get(Self::CALIBRATION_METHOD)?)
    }
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
            crate::mixed_precision::MIXED_PRECISION_KEY.into(),
            serde_json::to_string(&plan).map_err(|e| CompileError::Options(e.to_string()))?,
        );
        layer_planes = plan.layer_planes;
    }
    let bytes = write_container(
        &graph,
        &ContainerOptions {
            metadata,
            layer_planes,
            adaptive: None,
        },
    )?;
    Ok((bytes, ctx))
}
