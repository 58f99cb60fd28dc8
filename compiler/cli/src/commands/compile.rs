//! `strata compile`: quantize a model into one vertically layered `.strata` file.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use strata_compiler::compile::{
    compile_with_context, compile_with_tables, CompileOptions, Provenance,
};
use strata_compiler::mixed_precision::MixedPlan;
use strata_compiler::model::read_inputs;
use strata_compiler::npy;
use strata_ir::quant::ActBits;
use strata_passes::{CalibrationKind, OnceQatReport, VlQuantization};

fn parse_act_bits(text: &str) -> Result<ActBits, String> {
    text.parse()
}

#[derive(clap::Args)]
pub struct Args {
    model: PathBuf,
    /// Calibration inputs: float32 `[N, …]`, already preprocessed (one file per graph input).
    /// Required, unless --qat-tables gives the quantization (then only recorded).
    #[arg(long = "calib")]
    calib: Vec<PathBuf>,
    /// Package weights trained elsewhere (e.g. with `strata_torch`): this sidecar's code
    /// scales and side tables (docs/qat-tables.md) are used as they are, with no calibration
    /// or fitting. Bits, plane counts and activation bits come from the file.
    #[arg(long, value_name = "FILE.npz", conflicts_with_all = [
        "qat_steps", "calib_method", "bits", "planes", "act_bits", "budget_bytes",
        "labels", "qat_batch", "qat_lr", "seed", "qat_options",
    ])]
    qat_tables: Option<PathBuf>,
    /// `B`: bits of the codes, i.e. planes in the complete model.
    #[arg(long, default_value_t = 8)]
    bits: u8,
    /// Plane counts that get a side table, e.g. `2,3,4,5,6,7,8` (default: 2..=bits).
    #[arg(long, value_delimiter = ',')]
    planes: Option<Vec<u8>>,
    /// Activation bits of the integer path: a width in 2..=8 for every plane count, or
    /// `planes` (alias `k`) for `W k A k`: plane count k quantizes its activations to
    /// max(k, 2) bits (narrow enough for bit-serial kernels, less accurate at low k).
    #[arg(long, default_value = "8", value_parser = parse_act_bits)]
    act_bits: ActBits,
    /// Activation range estimator.
    #[arg(long, value_enum, default_value_t = CalibrationKind::Percentile)]
    calib_method: CalibrationKind,
    /// Quantization-aware training steps of all plane counts at once (`once-qat`); 0: none.
    #[arg(long, default_value_t = 0)]
    qat_steps: usize,
    /// Integer labels `[N]` of the calibration samples: adds cross-entropy to the QAT loss.
    #[arg(long)]
    labels: Option<PathBuf>,
    /// Samples per QAT step.
    #[arg(long, default_value_t = 64)]
    qat_batch: usize,
    /// Peak Adam learning rate of the QAT side tables (cosine schedule).
    #[arg(long, default_value_t = 1e-3)]
    qat_lr: f32,
    /// Seed of the QAT batch sampler.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Mixed precision: choose a plane count per layer, by its measured sensitivity on the
    /// calibration data, so the C weight bytes (packed planes, as `--target armv7m` stores
    /// them) fit this size (e.g. `120000`, `117K`; K = 1024). The choice is stored in the
    /// file and used by `run` and `emit-c`.
    #[arg(long, value_parser = super::parse_size)]
    budget_bytes: Option<u64>,
    /// Further `once-qat` pass options, e.g. `weight-lr=0.05,tables-only=0.5` (see
    /// `strata passes`).
    #[arg(long, default_value = "")]
    qat_options: String,
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    shapes: super::InputShapes,
}

impl Args {
    fn options(&self) -> CompileOptions {
        CompileOptions {
            budget_bytes: self.budget_bytes,
            bits: self.bits,
            planes: self
                .planes
                .clone()
                .unwrap_or_else(|| (2..=self.bits).collect()),
            act_bits: self.act_bits,
            calib_method: self.calib_method,
            qat_steps: self.qat_steps,
            qat_batch: self.qat_batch,
            qat_lr: self.qat_lr,
            seed: self.seed,
            qat_options: self.qat_options.clone(),
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let start = Instant::now();
    if args.calib.is_empty() && args.qat_tables.is_none() {
        bail!(
            "--calib FILE.npy is required: the calibration inputs (float32 [N, …], one file per \
             graph input); or give --qat-tables FILE.npz to package tables trained elsewhere"
        );
    }
    let options = args.options();
    let shown = args.model.display().to_string();
    let load = args.shapes.load_options()?;
    let graph = args.shapes.load(&args.model)?.graph;
    let samples = if args.calib.is_empty() {
        Vec::new()
    } else {
        read_inputs(&graph, &args.calib).with_context(|| format!("--calib: {shown}"))?
    };
    if args.labels.is_some() && options.qat_steps == 0 {
        bail!("--labels is only used by QAT: give --qat-steps too");
    }
    let labels = args.labels.as_deref().map(npy::read_npy).transpose()?;
    let source = strata_ir::files::read_limited(&args.model, strata_ir::limits::MAX_FILE_BYTES)
        .with_context(|| format!("reading {shown}"))?;
    let mut provenance = Provenance::new(&shown, &source, &args.calib, &options, &samples)
        .with_input_shapes(&load.input_shapes);
    if let Some(labels) = &args.labels {
        provenance = provenance.with_labels(labels);
    }
    let (bytes, ctx) = match &args.qat_tables {
        Some(tables) => {
            let metadata = provenance.with_qat_tables(tables).to_metadata();
            let (bytes, ctx) = compile_with_tables(graph, tables, metadata, |_| {})
                .with_context(|| shown.clone())?;
            if let Some(q) = VlQuantization::from_context(&ctx) {
                eprintln!(
                    "packaged {} layers with the tables of {} (bits {}, k = {:?}, act-bits {})",
                    q.layers.len(),
                    tables.display(),
                    q.bits,
                    q.plane_counts,
                    q.act_bits
                );
            }
            (bytes, ctx)
        }
        None => compile_with_context(graph, samples, &options, provenance.to_metadata(), |ctx| {
            ctx.progress = Some(super::progress_bar());
            ctx.labels = labels;
        })
        .with_context(|| shown.clone())?,
    };
    if let Some(report) = OnceQatReport::from_context(&ctx) {
        eprintln!("{}", report.summary());
    }
    let layers = VlQuantization::from_context(&ctx).map_or(0, |q| q.layers.len());
    // What the pipeline left float, read back from the file it wrote.
    let float_matmuls = strata_ir::container::read_container(&bytes)
        .map(|loaded| float_matmuls(&loaded.graph))
        .unwrap_or_default();
    if let Some(first) = float_matmuls.first() {
        eprintln!(
            "{}: {} MatMul(s) with a constant weight stay float (`{first}` first): \
             vl-quantize layers Conv, Gemm, MatMul of 2-D inputs, and `matmul-to-conv` makes \
             Convs of those on inputs of rank 3 and 4 whose first axis is the batch",
            if layers == 0 { "warning" } else { "note" },
            float_matmuls.len(),
        );
    }
    if layers == 0 {
        eprintln!(
            "warning: no layer was quantized: the file holds the float model only, with no \
             bit-planes"
        );
    }
    super::write_file(&args.output, &bytes)?;
    if options.budget_bytes.is_some() {
        report_mixed(&bytes)?;
    }
    eprintln!(
        "wrote {} ({} bytes) in {:.1} s",
        args.output.display(),
        bytes.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Prints the mixed-precision choice a budgeted compile stored, beside the uniform plane
/// count of at most the same size.
fn report_mixed(bytes: &[u8]) -> Result<()> {
    let loaded = strata_ir::container::read_container(bytes)?;
    let Some(plan) = MixedPlan::from_metadata(&loaded.metadata) else {
        return Ok(());
    };
    let plan = plan.context("the stored mixed-precision plan")?;
    eprintln!(
        "mixed precision: {:?}: {} weight bytes (budget {}), calibration mean |logit - FP32| {:.4}",
        plan.layer_planes, plan.weight_bytes, plan.budget_bytes, plan.calibration_error
    );
    match &plan.uniform {
        Some(u) => eprintln!(
            "  uniform k={} within the budget: {} weight bytes, calibration mean |logit - FP32| {:.4}",
            u.planes, u.weight_bytes, u.calibration_error
        ),
        None => eprintln!("  no uniform plane count fits the budget"),
    }
    Ok(())
}

/// The MatMuls of a compiled graph whose weight is a constant: the quantization passes left
/// them float, which a user should hear about rather than find a model without bit-planes.
fn float_matmuls(graph: &strata_ir::Graph) -> Vec<String> {
    graph
        .node_ids()
        .filter_map(|id| {
            let node = graph.node(id).ok()?;
            if !matches!(node.kind, strata_ir::NodeKind::Op(strata_ir::Op::MatMul)) {
                return None;
            }
            let ins = graph.node_inputs(id);
            let constant = |i: usize| {
                ins.get(i)
                    .is_some_and(|&v| graph.constant_value(v).is_some())
            };
            (constant(1) && !constant(0)).then(|| node.name.clone())
        })
        .collect()
}
