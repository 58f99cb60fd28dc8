//! The `strata` command-line tool.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::collections::BTreeMap;

use indicatif::{ProgressBar, ProgressStyle};
use strata_compiler::build::{emit_options, Target};
use strata_compiler::compile::{compile_with_context, provenance_metadata, CompileOptions};
use strata_compiler::eval::{
    correct, paired, score, weight_bytes, weight_bytes_per_layer, EvalReport,
};
use strata_compiler::manifest::{self, EVAL_DATA_KEY, EVAL_TOP1_KEY};
use strata_compiler::model::ContainerInfo;
use strata_compiler::{inspect, load_model, npy};
use strata_ir::container::strip_container;
use strata_ir::text::{print_with, PrintOptions};
use strata_ir::{Graph, Op, Tensor};
use strata_passes::baselines;
use strata_passes::{OnceQatReport, PassContext, PassManager, ProgressFn};
use strata_runtime::{run_with, QuantPath, RunOptions};

/// Strata: one trained network in, one vertically layered quantized model out.
#[derive(Parser)]
#[command(name = "strata", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a model's inputs and outputs, op counts, parameters and MACs per layer.
    Inspect {
        /// `.onnx` model or Strata IR text (`.sir`).
        model: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Run a pass pipeline and print the resulting IR text.
    Opt {
        model: PathBuf,
        /// Comma-separated passes with options in braces, e.g.
        /// `infer-shapes,fold-constants,fold-batchnorm,eliminate-dead-code`.
        #[arg(long, default_value = "")]
        passes: String,
        /// Print the IR after every pass, not only at the end.
        #[arg(long)]
        print_after_all: bool,
        /// Print constants with more than this many elements as `<elided>` (readable, but
        /// not parseable back). 0 prints every constant in full.
        #[arg(long, default_value_t = 64)]
        elide_constants_over: usize,
        /// Write the final IR to this file instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Execute a model with the reference runtime on `.npy` inputs.
    Run {
        model: PathBuf,
        /// One `.npy` per graph input, in graph-input order.
        #[arg(long = "input", required = true)]
        inputs: Vec<PathBuf>,
        /// Directory for `output_0.npy`, `output_1.npy`, … in graph-output order.
        #[arg(long)]
        out: PathBuf,
        /// Integer class labels `[N]`: prints the top-1 accuracy of output 0.
        #[arg(long)]
        labels: Option<PathBuf>,
        /// Plane count for every bit-plane layer of a `.strata` model (default: the stored
        /// mixed-precision choice, else all planes present).
        #[arg(long)]
        planes: Option<u8>,
        /// Per-layer plane counts, `node=k,node=k` (overrides --planes for those layers).
        #[arg(long, value_delimiter = ',')]
        layer_planes: Vec<String>,
        /// Bit-plane layers through the integer (default) or dequantized float path.
        #[arg(long, default_value = "integer", value_parser = ["integer", "float"])]
        path: String,
    },
    /// Quantize an ONNX model into one vertically layered `.strata` file.
    Compile {
        model: PathBuf,
        /// Calibration inputs: float32 `[N, …]`, already preprocessed (one file per graph input).
        #[arg(long = "calib", required = true)]
        calib: Vec<PathBuf>,
        /// `B`: bits of the codes, i.e. planes in the complete model.
        #[arg(long, default_value_t = 8)]
        bits: u8,
        /// Plane counts that get a side table, e.g. `2,3,4,5,6,7,8` (default: 2..=bits).
        #[arg(long, value_delimiter = ',')]
        planes: Option<Vec<u8>>,
        /// Activation bits of the integer path.
        #[arg(long, default_value_t = 8)]
        act_bits: u8,
        /// Activation range estimator.
        #[arg(long, default_value = "percentile", value_parser = ["minmax", "percentile", "mse"])]
        calib_method: String,
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
        /// calibration data, so the C weight bytes (packed planes, as `--target armv7m` stores them) fit this size (e.g. `120000`, `117K`;
        /// K = 1024). The choice is stored in the file and used by `run` and `emit-c`.
        #[arg(long, value_parser = parse_size_arg)]
        budget_bytes: Option<u64>,
        /// Further `once-qat` pass options, e.g. `weight-lr=0.05,tables-only=0.5` (see
        /// `strata passes`).
        #[arg(long, default_value = "")]
        qat_options: String,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Accuracy, agreement with FP32 and weight bytes at every plane count.
    Eval {
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
        /// Also evaluate dedicated per-k PTQ and naive truncation of the source model.
        #[arg(long)]
        baselines: bool,
        /// The FP32 source model (default: the path recorded at compile time).
        #[arg(long)]
        source: Option<PathBuf>,
        /// Calibration inputs for the baselines (default: the path recorded at compile time).
        #[arg(long)]
        calib: Option<PathBuf>,
        /// Run the bit-plane layers through the integer (default) or dequantized float path.
        #[arg(long, default_value = "integer", value_parser = ["integer", "float"])]
        path: String,
        #[arg(long)]
        json: bool,
        /// Write an SVG chart of top-1 against planes for every method.
        #[arg(long)]
        plot: Option<PathBuf>,
        /// Store the top-1 of every evaluated plane count in the container's metadata
        /// (rewritten atomically), so `strata manifest` can show it.
        #[arg(long)]
        record: bool,
    },
    /// Generate a C99 library (`DIR/NAME.h`, `DIR/NAME.c`) from a `.strata` model: batch 1,
    /// no malloc, weights holding only planes 0..K-1.
    EmitC {
        model: PathBuf,
        /// Planes stored in the weights (`NAME_run` runs at this count). Default: the stored
        /// mixed-precision choice (each layer keeps its own count, K = the largest), else
        /// every plane present.
        #[arg(long)]
        planes: Option<u8>,
        /// Code-generation target: generic (portable C99), x86-64-v3 (AVX2), aarch64 (NEON),
        /// armv7m (Cortex-M: packed planes, integer-only loops).
        #[arg(long, default_value = "generic")]
        target: String,
        /// Prefix of the files, functions and macros (a C identifier).
        #[arg(long)]
        name: String,
        /// Output directory.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// Footprint of every available plane count as C (weight, arena, scratch bytes, MACs,
    /// top-1 if recorded by `eval --record`); with --fit-flash/--fit-ram, the largest plane
    /// count that fits and why. Sizes: bytes with optional K/M/G suffix, K = 1024.
    Manifest {
        model: PathBuf,
        /// C backend target the sizes are for.
        #[arg(long, default_value = "generic")]
        target: String,
        #[arg(long)]
        json: bool,
        /// Flash available for the weights, e.g. `200K`, `1.5M`, `512` (K = 1024).
        #[arg(long, value_parser = parse_size_arg)]
        fit_flash: Option<u64>,
        /// RAM available for the arena and scratch, e.g. `64K` (K = 1024).
        #[arg(long, value_parser = parse_size_arg)]
        fit_ram: Option<u64>,
    },
    /// Cut a `.strata` file to its first K planes. The output is a byte prefix of the input.
    Strip {
        model: PathBuf,
        #[arg(long)]
        planes: u8,
        #[arg(short, long)]
        output: PathBuf,
    },
    /// List the passes a pipeline can name.
    Passes,
    /// Measure this machine: `gemm` times an n×n×n f32 product through the runtime's GEMM
    /// (the peak the once-QAT GFLOP/s figure is compared with; `RAYON_NUM_THREADS` sets the
    /// threads).
    Bench {
        #[arg(value_parser = ["gemm"])]
        what: String,
        /// `n` of the product.
        #[arg(long, default_value_t = 1024)]
        size: usize,
        /// Timed repeats (after one warm-up).
        #[arg(long, default_value_t = 10)]
        repeats: usize,
        /// Print JSON instead of a line of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command) -> Result<()> {
    match command {
        Command::Inspect { model, json } => {
            let loaded = load_model(&model)?;
            let summary = inspect::summarize(&loaded.graph)?;
            if json {
                let mut value = serde_json::to_value(&summary)?;
                if let (Some(info), Some(obj)) = (&loaded.container, value.as_object_mut()) {
                    obj.insert("container".into(), container_json(&loaded.graph, info));
                }
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                println!("{summary}");
                if let Some(info) = &loaded.container {
                    print_container(&loaded.graph, info);
                }
            }
        }
        Command::Opt {
            model,
            passes,
            print_after_all,
            elide_constants_over,
            output,
        } => {
            let mut graph = load_model(&model)?.graph;
            let options = PrintOptions {
                elide_constants_over: (elide_constants_over > 0).then_some(elide_constants_over),
                ..Default::default()
            };
            if !passes.trim().is_empty() {
                let manager = PassManager::parse(&passes)?.print_after_all(print_after_all);
                manager.run(&mut graph, &mut PassContext::default(), |name, g| {
                    println!("// ----- IR after {name} -----");
                    println!("{}", print_with(g, &options));
                })?;
            }
            let text = print_with(&graph, &options);
            match output {
                Some(path) => npy::write_atomic(&path, text.as_bytes())
                    .with_context(|| format!("writing {}", path.display()))?,
                None if print_after_all && !passes.trim().is_empty() => {}
                None => println!("{text}"),
            }
        }
        Command::Run {
            model,
            inputs,
            out,
            labels,
            planes,
            layer_planes,
            path,
        } => {
            let options = run_options(planes, &layer_planes, &path)?;
            run(&model, &inputs, &out, labels.as_deref(), options)?
        }
        Command::Compile {
            model,
            calib,
            bits,
            planes,
            act_bits,
            calib_method,
            qat_steps,
            labels,
            qat_batch,
            qat_lr,
            seed,
            budget_bytes,
            qat_options,
            output,
        } => {
            let options = CompileOptions {
                budget_bytes,
                bits,
                planes: planes.unwrap_or_else(|| (2..=bits).collect()),
                act_bits,
                calib_method,
                qat_steps,
                qat_batch,
                qat_lr,
                seed,
                qat_options,
            };
            compile(&model, &calib, labels.as_deref(), &options, &output)?
        }
        Command::Eval {
            model,
            data,
            labels,
            planes,
            baselines,
            source,
            calib,
            path,
            json,
            plot,
            record,
        } => eval_cmd(EvalArgs {
            record,
            model,
            data,
            labels,
            planes,
            baselines,
            source,
            calib,
            path,
            json,
            plot,
        })?,
        Command::Strip {
            model,
            planes,
            output,
        } => {
            let bytes =
                std::fs::read(&model).with_context(|| format!("reading {}", model.display()))?;
            let prefix =
                strip_container(&bytes, planes).with_context(|| model.display().to_string())?;
            npy::write_atomic(&output, prefix)
                .with_context(|| format!("writing {}", output.display()))?;
            eprintln!(
                "wrote {} ({} of {} bytes, {planes} planes)",
                output.display(),
                prefix.len(),
                bytes.len()
            );
        }
        Command::EmitC {
            model,
            planes,
            target,
            name,
            output,
        } => {
            let target: Target = target.parse()?;
            let loaded = load_model(&model)?;
            let graph = loaded.graph;
            let shown = model.display().to_string();
            let options = match &loaded.container {
                Some(info) => emit_options(&graph, info, planes, target, name, &shown)?,
                None => strata_compiler::backend::c::EmitOptions {
                    planes: planes.context("--planes is needed for a model that is not .strata")?,
                    name,
                    target,
                    layer_planes: None,
                },
            };
            let written = strata_compiler::backend::c::write_c(&graph, &options, &output)
                .with_context(|| model.display().to_string())?;
            for path in written {
                eprintln!("wrote {}", path.display());
            }
        }
        Command::Manifest {
            model,
            target,
            json,
            fit_flash,
            fit_ram,
        } => manifest_cmd(&model, &target, json, fit_flash, fit_ram)?,
        Command::Passes => {
            for p in strata_passes::PASSES {
                println!("{:<22} {}", p.name, p.summary);
            }
        }
        Command::Bench {
            what: _,
            size,
            repeats,
            json,
        } => {
            let r = strata_compiler::bench::gemm(size, repeats)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "sgemm {n}x{n}x{n}, {} threads: best {:.1} GFLOP/s ({:.4} s), median {:.1} \
                     GFLOP/s ({:.4} s)",
                    r.threads,
                    r.best_gflops,
                    r.best_seconds,
                    r.median_gflops,
                    r.median_seconds,
                    n = r.size
                );
            }
        }
    }
    Ok(())
}

fn quant_path(path: &str) -> QuantPath {
    if path == "float" {
        QuantPath::Float
    } else {
        QuantPath::Integer
    }
}

fn run_options(planes: Option<u8>, layer_planes: &[String], path: &str) -> Result<RunOptions> {
    let mut per_layer = BTreeMap::new();
    for item in layer_planes {
        let Some((node, k)) = item.rsplit_once('=') else {
            bail!("--layer-planes entry `{item}` is not `node=k`");
        };
        let k: u8 = k.parse().with_context(|| {
            format!("--layer-planes entry `{item}`: `{k}` is not a plane count")
        })?;
        per_layer.insert(node.to_string(), k);
    }
    Ok(RunOptions {
        planes,
        per_layer,
        path: quant_path(path),
    })
}

/// Plane counts that carry side tables in the graph's bit-plane ops (the same for every layer
/// of a compiled model), and the smallest plane count present across layers.
fn plane_counts(graph: &Graph) -> Vec<u8> {
    let mut counts: Option<Vec<u8>> = None;
    for id in graph.node_ids() {
        if let Ok(Some(Op::Bitplane(bp))) = graph.node(id).map(|n| n.op()) {
            counts = Some(match counts {
                None => bp.spec.plane_counts.clone(),
                Some(c) => c
                    .into_iter()
                    .filter(|k| bp.spec.plane_counts.contains(k))
                    .collect(),
            });
        }
    }
    counts.unwrap_or_default()
}

fn container_json(graph: &Graph, info: &ContainerInfo) -> serde_json::Value {
    serde_json::json!({
        "bits": info.bits,
        "available_planes": info.available_planes,
        "plane_counts": plane_counts(graph),
        "file_bytes": info.file_bytes,
        "metadata": info.metadata,
        "layer_planes": info.layer_planes,
    })
}

fn print_container(graph: &Graph, info: &ContainerInfo) {
    let counts: Vec<String> = plane_counts(graph).iter().map(|k| k.to_string()).collect();
    println!(
        "container: {} bytes, {} of {} planes present; side tables for k = {}",
        info.file_bytes,
        info.available_planes,
        info.bits,
        counts.join(",")
    );
    if !info.layer_planes.is_empty() {
        println!(
            "mixed precision (per-layer plane counts): {:?}",
            info.layer_planes
        );
    }
    for (k, v) in &info.metadata {
        println!("  {k}: {v}");
    }
}

fn compile(
    model: &Path,
    calib: &[PathBuf],
    labels: Option<&Path>,
    options: &CompileOptions,
    output: &Path,
) -> Result<()> {
    let start = Instant::now();
    let graph = load_model(model)?.graph;
    let samples = read_graph_inputs(&graph, model, calib, "--calib")?;
    if labels.is_some() && options.qat_steps == 0 {
        bail!("--labels is only used by QAT: give --qat-steps too");
    }
    let labels = labels.map(npy::read_npy).transpose()?;
    let source = std::fs::read(model).with_context(|| format!("reading {}", model.display()))?;
    let metadata = provenance_metadata(
        &model.display().to_string(),
        &source,
        calib,
        options,
        &samples,
    );
    let (bytes, ctx) = compile_with_context(graph, samples, options, metadata, |ctx| {
        ctx.progress = Some(progress_reporter());
        ctx.labels = labels;
    })?;
    if let Some(report) = OnceQatReport::from_context(&ctx) {
        eprintln!("{}", report.summary());
    }
    npy::write_atomic(output, &bytes).with_context(|| format!("writing {}", output.display()))?;
    if options.budget_bytes.is_some() {
        report_mixed(&bytes)?;
    }
    eprintln!(
        "wrote {} ({} bytes) in {:.1} s",
        output.display(),
        bytes.len(),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A terminal progress bar for long passes (calibration), drawn on stderr only when it is a
/// terminal, so logs and CI output stay clean.
fn progress_reporter() -> ProgressFn {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg:48} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    Box::new(move |stage: &str, done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
        bar.set_message(stage.to_string());
        if done >= total {
            bar.finish_and_clear();
        }
    })
}

struct EvalArgs {
    model: PathBuf,
    data: PathBuf,
    labels: PathBuf,
    planes: Option<Vec<u8>>,
    baselines: bool,
    source: Option<PathBuf>,
    calib: Option<PathBuf>,
    path: String,
    json: bool,
    plot: Option<PathBuf>,
    record: bool,
}

/// Resolves a path recorded in the container: as written, else relative to the container.
fn recorded_path(model: &Path, recorded: Option<&String>) -> Option<PathBuf> {
    let recorded = PathBuf::from(recorded?);
    if recorded.exists() {
        return Some(recorded);
    }
    let beside = model.parent()?.join(&recorded);
    beside.exists().then_some(beside)
}

fn eval_cmd(args: EvalArgs) -> Result<()> {
    let loaded = load_model(&args.model)?;
    let Some(info) = &loaded.container else {
        bail!(
            "{} is not a .strata model; compile it first",
            args.model.display()
        );
    };
    let data = npy::read_npy(&args.data)?;
    let labels = npy::read_npy(&args.labels)?;
    let source = args
        .source
        .clone()
        .or_else(|| recorded_path(&args.model, info.metadata.get("source")));
    let fp32_graph = match &source {
        Some(p) => Some(load_model(p)?.graph),
        None => {
            eprintln!(
                "note: FP32 source model not found; pass --source for FP32 rows and agreement"
            );
            None
        }
    };
    let mut report = EvalReport::default();
    let fp32_logits = match &fp32_graph {
        Some(g) => {
            let logits = first_output(strata_runtime::run(g, std::slice::from_ref(&data))?)?;
            report.rows.push(score(
                "fp32",
                None,
                &logits,
                &labels,
                Some(&logits),
                weight_bytes(g, None),
            )?);
            Some(logits)
        }
        None => None,
    };
    let available: Vec<u8> = plane_counts(&loaded.graph)
        .into_iter()
        .filter(|&k| k <= info.available_planes)
        .collect();
    let planes = args.planes.clone().unwrap_or(available.clone());
    if let Some(k) = planes.iter().find(|k| !available.contains(k)) {
        bail!(
            "plane count {k} is not available in {} (available: {:?})",
            args.model.display(),
            available
        );
    }
    let path = quant_path(&args.path);
    let run_strata = |options: &RunOptions| -> Result<Tensor> {
        first_output(run_with(
            &loaded.graph,
            std::slice::from_ref(&data),
            options,
        )?)
    };
    // Per plane count, which samples the Strata model gets right (for the paired comparisons).
    let mut strata_correct: Vec<(u8, Vec<bool>)> = Vec::new();
    for &k in &planes {
        let logits = run_strata(&RunOptions {
            planes: Some(k),
            path,
            ..Default::default()
        })?;
        report.rows.push(score(
            "strata",
            Some(k),
            &logits,
            &labels,
            fp32_logits.as_ref(),
            weight_bytes(&loaded.graph, Some(k)),
        )?);
        strata_correct.push((k, correct(&logits, &labels)?));
    }
    // A stored mixed-precision choice is what `strata run` and `emit-c` use by default, so
    // it gets its own row (unless --planes asked for specific uniform counts).
    if args.planes.is_none() {
        let mixed = info
            .default_layer_planes(&loaded.graph)
            .with_context(|| args.model.display().to_string())?;
        if !mixed.is_empty() {
            let logits = run_strata(&RunOptions {
                path,
                per_layer: mixed.clone(),
                ..Default::default()
            })?;
            let bytes = weight_bytes_per_layer(&loaded.graph, |node| mixed.get(node).copied());
            let mut row = score(
                "strata-mixed",
                None,
                &logits,
                &labels,
                fp32_logits.as_ref(),
                bytes,
            )?;
            row.layer_planes = Some(mixed);
            report.rows.push(row);
        }
    }
    if args.baselines {
        if let Some(fp32) = &fp32_logits {
            let fp32_correct = correct(fp32, &labels)?;
            for (k, c) in &strata_correct {
                report
                    .comparisons
                    .push(paired(*k, "fp32", None, c, &fp32_correct));
            }
        }
        let Some(fp32) = &fp32_graph else {
            bail!("--baselines needs the FP32 source model (--source)");
        };
        let calib_path = args
            .calib
            .clone()
            .or_else(|| recorded_path(&args.model, info.metadata.get("calibration")))
            .context("--baselines needs the calibration inputs (--calib)")?;
        let calib = npy::read_npy(&calib_path)?;
        // The baselines start from the same simplified float graph and the same calibration
        // method the container was compiled with.
        let method = info
            .metadata
            .get("calibration_method")
            .map(String::as_str)
            .unwrap_or("percentile");
        let mut prepared = fp32.clone();
        let mut ctx = PassContext::with_calibration(vec![calib]);
        PassManager::parse(&format!(
            "fold-constants,fold-batchnorm,eliminate-dead-code,calibrate{{method={method}}}"
        ))?
        .run(&mut prepared, &mut ctx, |_, _| {})?;
        for method in ["dedicated-ptq", "naive-truncation"] {
            for &k in &planes {
                let graph = match method {
                    "dedicated-ptq" => baselines::dedicated_ptq(&prepared, k, &ctx)?,
                    _ => baselines::naive_truncation(&prepared, info.bits, k, &ctx)?,
                };
                let options = RunOptions {
                    planes: Some(k),
                    path,
                    ..Default::default()
                };
                let logits =
                    first_output(run_with(&graph, std::slice::from_ref(&data), &options)?)?;
                if let Some((_, c)) = strata_correct.iter().find(|(sk, _)| *sk == k) {
                    let other = correct(&logits, &labels)?;
                    report
                        .comparisons
                        .push(paired(k, method, Some(k), c, &other));
                }
                report.rows.push(score(
                    method,
                    Some(k),
                    &logits,
                    &labels,
                    fp32_logits.as_ref(),
                    weight_bytes(&graph, Some(k)),
                )?);
            }
        }
    }
    if args.record {
        record_top1(&args, &report, &data)?;
    }
    if let Some(plot) = &args.plot {
        let title = format!("{}: top-1 against planes", args.model.display());
        npy::write_atomic(
            plot,
            strata_compiler::plot::accuracy_svg(&report, &title).as_bytes(),
        )
        .with_context(|| format!("writing {}", plot.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    Ok(())
}

fn first_output(outputs: Vec<Tensor>) -> Result<Tensor> {
    outputs
        .into_iter()
        .next()
        .context("the model has no outputs")
}

fn print_report(report: &EvalReport) {
    let opt = |v: Option<f64>, scale: f64, prec: usize| match v {
        Some(v) => format!("{:.*}", prec, v * scale),
        None => "-".to_string(),
    };
    println!(
        "{:<18} {:>6} {:>8} {:>10} {:>10} {:>10} {:>12}",
        "method", "planes", "top-1 %", "agree %", "max |Δ|", "mean |Δ|", "weight bytes"
    );
    for r in &report.rows {
        println!(
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
        );
    }
    for r in &report.rows {
        if let Some(layers) = &r.layer_planes {
            let list: Vec<String> = layers.iter().map(|(n, k)| format!("{n}={k}")).collect();
            println!("{}: per-layer planes {}", r.method, list.join(","));
        }
    }
    if report.comparisons.is_empty() {
        return;
    }
    println!();
    println!(
        "paired, on the same images: images only the Strata model / only the other gets right"
    );
    println!("(exact McNemar p: the chance of a split at least this uneven between equals)");
    println!(
        "{:<6} {:<22} {:>12} {:>12} {:>10}",
        "planes", "against", "strata only", "other only", "p"
    );
    for c in &report.comparisons {
        let against = match c.against_planes {
            Some(k) => format!("{} k={k}", c.against),
            None => c.against.to_string(),
        };
        println!(
            "{:<6} {:<22} {:>12} {:>12} {:>10}",
            c.planes,
            against,
            c.strata_only,
            c.other_only,
            format_p(c.p_value)
        );
    }
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

/// Reads one `.npy` per graph input, in graph-input order.
fn read_graph_inputs(
    graph: &Graph,
    model: &Path,
    files: &[PathBuf],
    flag: &str,
) -> Result<Vec<Tensor>> {
    if files.len() != graph.inputs().len() {
        bail!(
            "{} takes {} inputs but {} {flag} files were given",
            model.display(),
            graph.inputs().len(),
            files.len()
        );
    }
    Ok(files
        .iter()
        .map(|p| npy::read_npy(p))
        .collect::<Result<Vec<Tensor>, _>>()?)
}

fn run(
    model: &Path,
    inputs: &[PathBuf],
    out: &Path,
    labels: Option<&Path>,
    mut options: RunOptions,
) -> Result<()> {
    let loaded = load_model(model)?;
    let graph = loaded.graph;
    // No --planes: the stored mixed-precision choice; --layer-planes entries still win.
    if let (None, Some(info)) = (options.planes, &loaded.container) {
        let defaults = info
            .default_layer_planes(&graph)
            .with_context(|| model.display().to_string())?;
        if !defaults.is_empty() {
            eprintln!("mixed precision (stored per-layer plane counts): {defaults:?}");
        }
        for (node, k) in defaults {
            options.per_layer.entry(node).or_insert(k);
        }
    }
    let options = &options;
    let tensors = read_graph_inputs(&graph, model, inputs, "--input")?;
    let labels = labels.map(npy::read_npy).transpose()?;
    let start = Instant::now();
    let outputs = run_with(&graph, &tensors, options)?;
    let elapsed = start.elapsed();
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    for (i, t) in outputs.iter().enumerate() {
        npy::write_npy(&out.join(format!("output_{i}.npy")), t)?;
    }
    let batch = tensors
        .first()
        .and_then(|t| t.shape().first())
        .copied()
        .unwrap_or(1);
    eprintln!(
        "ran {} on batch {} in {:.3} s; wrote {} output(s) to {}",
        model.display(),
        batch,
        elapsed.as_secs_f64(),
        outputs.len(),
        out.display()
    );
    if let Some(labels) = labels {
        let (correct, total) = top1(&outputs[0], &labels)?;
        println!(
            "top-1: {:.2} % ({correct}/{total})",
            100.0 * correct as f64 / total.max(1) as f64
        );
    }
    Ok(())
}

/// Counts rows of `logits [N, C]` whose argmax equals the label.
fn top1(logits: &Tensor, labels: &Tensor) -> Result<(usize, usize)> {
    let Some(values) = logits.as_f32() else {
        bail!("output 0 is {}, not f32 logits", logits.dtype());
    };
    let [n, c] = logits.shape() else {
        bail!(
            "output 0 has shape {:?}, expected [N, classes]",
            logits.shape()
        );
    };
    let Some(labels) = labels.to_i64_vec() else {
        bail!("labels must be integers, got {}", labels.dtype());
    };
    if labels.len() != *n {
        bail!("{} labels for {} rows of output", labels.len(), n);
    }
    let correct = values
        .chunks(*c)
        .zip(&labels)
        .filter(|(row, &label)| {
            let arg = row
                .iter()
                .enumerate()
                .fold((0usize, f32::NEG_INFINITY), |best, (i, &v)| {
                    if v > best.1 {
                        (i, v)
                    } else {
                        best
                    }
                })
                .0;
            arg as i64 == label
        })
        .count();
    Ok((correct, *n))
}

/// clap parser for sizes such as `200K` (K = 1024).
fn parse_size_arg(text: &str) -> Result<u64, String> {
    manifest::parse_size(text).map_err(|e| e.to_string())
}

fn manifest_cmd(
    model: &Path,
    target: &str,
    json: bool,
    fit_flash: Option<u64>,
    fit_ram: Option<u64>,
) -> Result<()> {
    let target: Target = target.parse()?;
    let loaded = load_model(model)?;
    let Some(info) = &loaded.container else {
        bail!(
            "{} is not a .strata model; compile it first",
            model.display()
        );
    };
    let m = manifest::manifest(&loaded.graph, info, target)
        .with_context(|| model.display().to_string())?;
    let fit =
        (fit_flash.is_some() || fit_ram.is_some()).then(|| manifest::fit(&m, fit_flash, fit_ram));
    if json {
        let mut value = serde_json::to_value(&m)?;
        if let (Some(f), Some(obj)) = (&fit, value.as_object_mut()) {
            obj.insert("fit".into(), serde_json::to_value(f)?);
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!(
            "{:>6} {:>12} {:>12} {:>12} {:>12} {:>10} {:>8}",
            "planes", "weight B", "arena B", "scratch B", "RAM B", "MACs", "top-1 %"
        );
        let line = |label: String, r: &manifest::ManifestRow| {
            println!(
                "{:>6} {:>12} {:>12} {:>12} {:>12} {:>10} {:>8}",
                label,
                r.weight_bytes,
                r.arena_bytes,
                r.scratch_bytes,
                r.ram_bytes,
                r.macs,
                r.top1
                    .map(|t| format!("{:.2}", 100.0 * t))
                    .unwrap_or_else(|| "-".into())
            );
        };
        for r in &m.planes {
            line(r.planes.to_string(), r);
        }
        if let Some(mixed) = &m.mixed {
            line("mixed".into(), &mixed.footprint);
            println!("mixed precision per layer: {:?}", mixed.layer_planes);
        }
        if let Some(data) = &m.top1_data {
            println!("top-1 recorded on {data}");
        }
        if let Some(f) = &fit {
            for r in &f.reasons {
                println!("{r}");
            }
        }
    }
    if let Some(f) = &fit {
        if f.chosen.is_none() {
            bail!(
                "no plane count of {} fits (see the reasons above)",
                model.display()
            );
        }
    }
    Ok(())
}

/// Rewrites the container with the strata rows' top-1 under `eval_top1` (and the data they
/// were measured on under `eval_data`). The graph, planes and per-layer choice are written
/// back unchanged, so only the metadata differs.
fn record_top1(args: &EvalArgs, report: &EvalReport, data: &Tensor) -> Result<()> {
    let bytes =
        std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let loaded = strata_ir::container::read_container(&bytes)
        .with_context(|| args.model.display().to_string())?;
    let mut top1: BTreeMap<String, f64> = match loaded.metadata.get(EVAL_TOP1_KEY) {
        Some(text) => serde_json::from_str(text).unwrap_or_default(),
        None => BTreeMap::new(),
    };
    for row in report.rows.iter().filter(|r| r.method == "strata") {
        if let Some(k) = row.planes {
            top1.insert(k.to_string(), row.top1);
        }
    }
    let mut metadata = loaded.metadata;
    metadata.insert(EVAL_TOP1_KEY.into(), serde_json::to_string(&top1)?);
    metadata.insert(
        EVAL_DATA_KEY.into(),
        format!(
            "{} ({} samples, {} path)",
            args.data.display(),
            data.shape().first().copied().unwrap_or(0),
            args.path
        ),
    );
    let rewritten = strata_ir::container::write_container(
        &loaded.graph,
        &strata_ir::container::ContainerOptions {
            metadata,
            layer_planes: loaded.layer_planes,
        },
    )
    .with_context(|| format!("rewriting {}", args.model.display()))?;
    npy::write_atomic(&args.model, &rewritten)
        .with_context(|| format!("writing {}", args.model.display()))?;
    eprintln!("recorded top-1 in {}", args.model.display());
    Ok(())
}

/// Prints the mixed-precision choice a budgeted compile stored, beside the uniform plane
/// count of at most the same size.
fn report_mixed(bytes: &[u8]) -> Result<()> {
    let loaded = strata_ir::container::read_container(bytes)?;
    let Some(text) = loaded.metadata.get("mixed_precision") else {
        return Ok(());
    };
    let plan: serde_json::Value = serde_json::from_str(text)?;
    eprintln!(
        "mixed precision: {:?}: {} weight bytes (budget {}), calibration mean |logit - FP32| {:.4}",
        loaded.layer_planes,
        plan["weight_bytes"],
        plan["budget_bytes"],
        plan["calibration_error"].as_f64().unwrap_or(f64::NAN)
    );
    if plan["uniform"].is_object() {
        eprintln!(
            "  uniform k={} within the budget: {} weight bytes, calibration mean |logit - FP32| {:.4}",
            plan["uniform"]["planes"],
            plan["uniform"]["weight_bytes"],
            plan["uniform"]["calibration_error"].as_f64().unwrap_or(f64::NAN)
        );
    } else {
        eprintln!("  no uniform plane count fits the budget");
    }
    Ok(())
}
