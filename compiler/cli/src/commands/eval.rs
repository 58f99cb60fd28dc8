//! `strata eval`: accuracy, agreement with FP32 and weight bytes at every plane count, beside
//! the baselines, as a table, JSON or an SVG chart.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use strata_compiler::adaptive::{fit as fit_policy, AdaptiveTarget};
use strata_compiler::compile::Provenance;
use strata_compiler::eval::{
    evaluate, evaluate_cost, evaluate_with, CostReport, EvalError, EvalReport, EvalRequest,
};
use strata_compiler::{load_model, load_model_with, manifest, npy, plot};
use strata_ir::adaptive::AdaptivePolicy;
use strata_runtime::{QuantPath, RunOptions};

use super::run::RunBackend;

#[derive(clap::Args)]
pub struct Args {
    model: PathBuf,
    /// Preprocessed float32 inputs `[N, …]`.
    #[arg(long)]
    data: PathBuf,
    /// Integer labels `[N]`.
    #[arg(long)]
    labels: PathBuf,
    /// Plane counts to evaluate (default: every count with a side table that is present).
    #[arg(long, value_delimiter = ',')]
    planes: Option<Vec<u8>>,
    /// Also evaluate dedicated per-k PTQ and naive truncation of the source model, and, for a
    /// model trained by once-QAT (`--qat-steps`), dedicated per-k QAT (one k-bit model per
    /// plane count trained by the same pipeline, samples and labels at that count alone) and
    /// nested PTQ (the same compile without training).
    #[arg(long)]
    baselines: bool,
    /// The FP32 source model (default: the path recorded at compile time).
    #[arg(long)]
    source: Option<PathBuf>,
    /// Calibration inputs for the baselines (default: the path recorded at compile time).
    #[arg(long)]
    calib: Option<PathBuf>,
    /// Labels of the calibration inputs, for the dedicated QAT baseline of a model trained
    /// with `--labels` (default: the path recorded at compile time).
    #[arg(long)]
    calib_labels: Option<PathBuf>,
    /// Run the bit-plane layers through the integer (default) or dequantized float path.
    #[arg(long, value_enum, default_value_t = QuantPath::Integer)]
    path: QuantPath,
    #[arg(long)]
    json: bool,
    /// Write an SVG chart of top-1 against planes for every method.
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Store the top-1 of every evaluated plane count in the container's metadata
    /// (rewritten atomically), so `strata manifest` can show it.
    #[arg(long)]
    record: bool,
    /// Input shapes for importing the FP32 source model (default: those recorded at compile
    /// time).
    #[command(flatten)]
    shapes: super::InputShapes,
    /// What computes the Strata rows: the reference runtime, or native code compiled for
    /// this CPU through MLIR's JIT, one module per plane count (integer path; cargo feature
    /// `mlir`). The FP32 row and the baselines always run on the runtime.
    #[arg(long, value_enum, default_value_t = RunBackend::Runtime)]
    backend: RunBackend,
    /// Also print accuracy against cost: every uniform plane count, the stored per-layer
    /// choice and the stored adaptive policy (`strata adapt`), each with top-1, agreement
    /// with the full-plane model, average bit-operations and the runtime's time per input;
    /// `--plot` then draws top-1 against bit-operations, `--json` adds it as `cost`.
    #[arg(long)]
    adaptive: bool,
    /// With `--adaptive`: also fit a policy to each of these targets (`budget=F`,
    /// `max-drop=P`) on `--fit-data` and evaluate it (nothing is written).
    #[arg(long, value_delimiter = ',', requires = "fit_data")]
    fit: Vec<String>,
    /// Unlabelled samples to fit `--fit` targets on (training images, not the test set).
    #[arg(long, requires = "adaptive")]
    fit_data: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    if args.adaptive && (args.backend != RunBackend::Runtime || args.path != QuantPath::Integer) {
        bail!("--adaptive measures the runtime's integer path (drop --backend and --path)");
    }
    if args.backend == RunBackend::Mlir {
        super::mlir::ensure_enabled()?;
        if args.path != QuantPath::Integer {
            bail!("--backend mlir computes the integer path only (drop --path)");
        }
    }
    let shown = args.model.display().to_string();
    let loaded = load_model(&args.model)?;
    let Some(info) = &loaded.container else {
        bail!("{shown} is not a .strata model; compile it first");
    };
    let source = args
        .source
        .clone()
        .or_else(|| info.recorded_path(&args.model, Provenance::SOURCE));
    let mut load = args.shapes.load_options()?;
    if load.input_shapes.is_empty() {
        load.input_shapes = Provenance::recorded_input_shapes(&info.metadata)
            .with_context(|| format!("{shown}: recorded input shapes"))?;
    }
    let fp32 = match &source {
        Some(p) => Some(load_model_with(p, &load)?.graph),
        None => {
            eprintln!(
                "note: FP32 source model not found; pass --source for FP32 rows and agreement"
            );
            None
        }
    };
    if args.baselines && fp32.is_none() {
        bail!("--baselines needs the FP32 source model (--source)");
    }
    let baseline_calibration = if args.baselines {
        let path = args
            .calib
            .clone()
            .or_else(|| info.recorded_path(&args.model, Provenance::CALIBRATION))
            .context("--baselines needs the calibration inputs (--calib)")?;
        Some(npy::read_npy(&path)?)
    } else {
        None
    };
    let baseline_labels = if !args.baselines {
        if args.calib_labels.is_some() {
            bail!("--calib-labels is only used by --baselines");
        }
        None
    } else if let Some(path) = &args.calib_labels {
        Some(npy::read_npy(path)?)
    } else if let Some(recorded) = info.metadata.get(Provenance::LABELS) {
        // Training the dedicated QAT baseline without the labels the model saw would be
        // an unfair comparison, so a recorded but missing labels file is an error.
        let path = info
            .recorded_path(&args.model, Provenance::LABELS)
            .with_context(|| {
                format!(
                    "{shown} was trained with the labels {recorded}, which are not found: \
                     pass --calib-labels for the dedicated QAT baseline"
                )
            })?;
        Some(npy::read_npy(&path)?)
    } else {
        None
    };
    let request = EvalRequest {
        data: npy::read_npy(&args.data)?,
        labels: npy::read_npy(&args.labels)?,
        planes: args.planes.clone(),
        path: args.path,
        fp32,
        baseline_calibration,
        baseline_labels,
    };
    let report = match args.backend {
        RunBackend::Runtime => evaluate(&loaded.graph, info, &request, Some(super::progress_bar())),
        RunBackend::Mlir => {
            let data = std::slice::from_ref(&request.data);
            let mut jit = |options: &RunOptions| {
                let start = std::time::Instant::now();
                let which = match options.planes {
                    Some(k) => format!("K = {k}"),
                    None => "the stored per-layer counts".to_string(),
                };
                let outputs = super::mlir::run(
                    loaded.graph.clone(),
                    Some(info),
                    &args.model,
                    options.planes,
                    &options.per_layer,
                    data,
                )
                .map_err(|e| EvalError::Executor {
                    backend: "--backend mlir".to_string(),
                    reason: format!("{e:#}"),
                })?;
                // The logits are output 0, as the runtime's evaluation reads them.
                let logits = outputs.into_iter().next().ok_or(EvalError::NoOutputs)?;
                eprintln!(
                    "{which}: compiled and ran through the MLIR JIT in {:.2} s",
                    start.elapsed().as_secs_f64()
                );
                Ok(logits)
            };
            evaluate_with(
                &loaded.graph,
                info,
                &request,
                Some(super::progress_bar()),
                &mut jit,
            )
        }
    }
    .with_context(|| shown.clone())?;
    if args.record {
        let bytes = strata_ir::files::read_limited(&args.model, strata_ir::limits::MAX_FILE_BYTES)
            .with_context(|| format!("reading {shown}"))?;
        let data = format!(
            "{} ({} samples, {} path)",
            args.data.display(),
            request.data.shape().first().copied().unwrap_or(0),
            path_name(args.path)
        );
        let rewritten =
            manifest::record_top1(&bytes, &report, &data).with_context(|| shown.clone())?;
        super::write_file(&args.model, &rewritten)?;
        eprintln!("recorded top-1 in {shown}");
    }
    let cost = if args.adaptive {
        let mut policies: Vec<AdaptivePolicy> = info.adaptive.iter().cloned().collect();
        if let Some(fit_data) = &args.fit_data {
            let samples = npy::read_npy(fit_data)
                .with_context(|| format!("--fit-data {}", fit_data.display()))?;
            for target in &args.fit {
                let target: AdaptiveTarget = target.parse()?;
                let (policy, fit) =
                    fit_policy(&loaded.graph, info.available_planes, &samples, target)
                        .with_context(|| shown.clone())?;
                eprintln!(
                    "fitted {target} on {} samples: bit-operations {:.3}, agreement {:.2} %",
                    fit.samples,
                    fit.cost,
                    fit.agreement * 100.0
                );
                policies.push(policy);
            }
        }
        Some(
            evaluate_cost(
                &loaded.graph,
                info,
                &request.data,
                &request.labels,
                &policies,
            )
            .with_context(|| shown.clone())?,
        )
    } else {
        None
    };
    if let Some(path) = &args.plot {
        let svg = match &cost {
            Some(cost) => plot::pareto_svg(cost, &format!("{shown}: top-1 against bit-operations")),
            None => plot::accuracy_svg(&report, &format!("{shown}: top-1 against planes")),
        };
        super::write_file(path, svg.as_bytes())?;
    }
    if args.json {
        super::print_json_with(&report, "cost", cost.as_ref())?;
    } else {
        print_report(&report)?;
        if let Some(cost) = &cost {
            print_cost(cost)?;
        }
    }
    Ok(())
}

/// The `--adaptive` table, cheapest first.
fn print_cost(cost: &CostReport) -> std::io::Result<()> {
    outln!()?;
    outln!(
        "accuracy against cost ({} samples; agreement and bit-operations against {} planes; runtime, {} threads)",
        cost.samples,
        cost.full_planes,
        cost.threads
    )?;
    outln!(
        "{:<13} {:<16} {:>8} {:>9} {:>9} {:>11}  stages ran",
        "method",
        "config",
        "top-1 %",
        "agree %",
        "bit-ops",
        "µs/input"
    )?;
    for r in &cost.rows {
        let stages = r
            .stage_runs
            .as_ref()
            .map(|s| {
                s.iter()
                    .map(|n| n.to_string())
                    .collect::<Vec<_>>()
                    .join(" / ")
            })
            .unwrap_or_default();
        outln!(
            "{:<13} {:<16} {:>8.2} {:>9.2} {:>9.3} {:>11.1}  {}",
            r.method,
            r.label,
            r.top1 * 100.0,
            r.agreement * 100.0,
            r.bit_ops,
            r.micros_per_input,
            stages
        )?;
    }
    Ok(())
}

/// The `--path` name, as recorded with `eval --record`.
fn path_name(path: QuantPath) -> String {
    clap::ValueEnum::to_possible_value(&path)
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
}

fn print_report(report: &EvalReport) -> std::io::Result<()> {
    let opt = |v: Option<f64>, scale: f64, prec: usize| match v {
        Some(v) => format!("{:.*}", prec, v * scale),
        None => "-".to_string(),
    };
    outln!(
        "{:<18} {:>6} {:>8} {:>10} {:>10} {:>10} {:>12}",
        "method",
        "planes",
        "top-1 %",
        "agree %",
        "max |Δ|",
        "mean |Δ|",
        "weight bytes"
    )?;
    for r in &report.rows {
        outln!(
            "{:<18} {:>6} {:>8.2} {:>10} {:>10} {:>10} {:>12}",
            r.method,
            r.planes
                .map(|k| k.to_string())
                .unwrap_or_else(|| "-".into()),
            r.top1 * 100.0,
            opt(r.agreement, 100.0, 2),
            opt(r.max_logit_error, 1.0, 4),
            opt(r.mean_logit_error, 1.0, 4),
            r.weight_bytes
        )?;
    }
    for r in &report.rows {
        if let Some(layers) = &r.layer_planes {
            let list: Vec<String> = layers.iter().map(|(n, k)| format!("{n}={k}")).collect();
            outln!("{}: per-layer planes {}", r.method, list.join(","))?;
        }
    }
    if report.comparisons.is_empty() {
        return Ok(());
    }
    outln!()?;
    outln!("paired, on the same images: images only the Strata model / only the other gets right")?;
    outln!("(exact McNemar p: the chance of a split at least this uneven between equals)")?;
    outln!(
        "{:<6} {:<22} {:>12} {:>12} {:>10}",
        "planes",
        "against",
        "strata only",
        "other only",
        "p"
    )?;
    for c in &report.comparisons {
        let against = match c.against_planes {
            Some(k) => format!("{} k={k}", c.against),
            None => c.against.to_string(),
        };
        outln!(
            "{:<6} {:<22} {:>12} {:>12} {:>10}",
            c.planes,
            against,
            c.strata_only,
            c.other_only,
            format_p(c.p_value)
        )?;
    }
    Ok(())
}

/// A p-value with two significant digits, tiny ones in scientific notation.
fn format_p(p: f64) -> String {
    if p >= 0.01 {
        format!("{p:.2}")
    } else if p >= 1e-300 {
        format!("{p:.1e}")
    } else {
        "<1e-300".to_string()
    }
}
