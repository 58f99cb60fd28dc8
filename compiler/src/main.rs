//! The `strata` command-line tool.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use strata_compiler::{inspect, load_model, npy};
use strata_ir::text::{print_with, PrintOptions};
use strata_ir::Tensor;
use strata_passes::PassManager;

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
    },
    /// List the passes a pipeline can name.
    Passes,
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
            let graph = load_model(&model)?;
            let summary = inspect::summarize(&graph)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&summary)?);
            } else {
                println!("{summary}");
            }
        }
        Command::Opt {
            model,
            passes,
            print_after_all,
            elide_constants_over,
            output,
        } => {
            let mut graph = load_model(&model)?;
            let options = PrintOptions {
                elide_constants_over: (elide_constants_over > 0).then_some(elide_constants_over),
                ..Default::default()
            };
            if !passes.trim().is_empty() {
                let manager = PassManager::parse(&passes)?.print_after_all(print_after_all);
                manager.run(
                    &mut graph,
                    &mut strata_passes::PassContext::default(),
                    |name, g| {
                        println!("// ----- IR after {name} -----");
                        println!("{}", print_with(g, &options));
                    },
                )?;
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
        } => run(&model, &inputs, &out, labels.as_deref())?,
        Command::Passes => {
            for p in strata_passes::PASSES {
                println!("{:<22} {}", p.name, p.summary);
            }
        }
    }
    Ok(())
}

fn run(model: &Path, inputs: &[PathBuf], out: &Path, labels: Option<&Path>) -> Result<()> {
    let graph = load_model(model)?;
    if inputs.len() != graph.inputs().len() {
        bail!(
            "{} takes {} inputs but {} --input files were given",
            model.display(),
            graph.inputs().len(),
            inputs.len()
        );
    }
    let tensors = inputs
        .iter()
        .map(|p| npy::read_npy(p))
        .collect::<Result<Vec<Tensor>, _>>()?;
    let labels = labels.map(npy::read_npy).transpose()?;
    let start = Instant::now();
    let outputs = strata_runtime::run(&graph, &tensors)?;
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
