//! `strata run`: execute a model with the reference runtime on `.npy` inputs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use strata_compiler::eval::correct;
use strata_compiler::model::read_inputs;
use strata_compiler::npy;
use strata_runtime::{run_with, QuantPath, RunOptions};

#[derive(clap::Args)]
pub struct Args {
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
    #[command(flatten)]
    planes: PlaneArgs,
    /// Run the policy stored by `strata adapt`: each sample at the first stage whose output
    /// is confident enough (runtime, integer path; prints how many samples each stage ran
    /// and the average bit-operations).
    #[arg(long, conflicts_with_all = ["planes", "layer_planes", "path"])]
    adaptive: bool,
    /// What executes the model: the reference runtime, or native code compiled for this CPU
    /// through MLIR's JIT (`.strata` models, integer path; cargo feature `mlir`).
    #[arg(long, value_enum, default_value_t = RunBackend::Runtime)]
    backend: RunBackend,
    #[command(flatten)]
    shapes: super::InputShapes,
}

/// The executor of `strata run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RunBackend {
    Runtime,
    Mlir,
}

/// How the bit-plane layers of a `.strata` model run.
#[derive(clap::Args)]
pub struct PlaneArgs {
    /// Plane count for every bit-plane layer of a `.strata` model (default: the stored
    /// mixed-precision choice, else all planes present).
    #[arg(long)]
    planes: Option<u8>,
    /// Per-layer plane counts, `node=k,node=k` (overrides --planes for those layers).
    #[arg(long, value_delimiter = ',')]
    layer_planes: Vec<String>,
    /// Bit-plane layers through the integer (default) or dequantized float path.
    #[arg(long, value_enum, default_value_t = QuantPath::Integer)]
    path: QuantPath,
}

impl PlaneArgs {
    /// The runtime options these flags stand for.
    pub fn run_options(&self) -> Result<RunOptions> {
        let mut per_layer = BTreeMap::new();
        for item in &self.layer_planes {
            let Some((node, k)) = item.rsplit_once('=') else {
                bail!("--layer-planes entry `{item}` is not `node=k`");
            };
            let k: u8 = k.parse().with_context(|| {
                format!("--layer-planes entry `{item}`: `{k}` is not a plane count")
            })?;
            per_layer.insert(node.to_string(), k);
        }
        Ok(RunOptions {
            planes: self.planes,
            per_layer,
            path: self.path,
        })
    }
}

/// `--adaptive`: the stored policy over the planes present; reports each stage's share and
/// the bit-operations spent against the full-plane model's.
fn run_adaptive(
    graph: &strata_ir::Graph,
    info: Option<&strata_compiler::model::ContainerInfo>,
    shown: &str,
    tensors: &[strata_ir::Tensor],
) -> Result<strata_ir::Tensor> {
    let Some(info) = info else {
        bail!("{shown}: --adaptive runs `.strata` models");
    };
    let Some(policy) = info
        .adaptive_policy(graph)
        .with_context(|| shown.to_string())?
    else {
        bail!("{shown}: the file has no adaptive policy (fit one with `strata adapt`)");
    };
    let [x] = tensors else {
        bail!(
            "--adaptive runs graphs with one input ({} given)",
            tensors.len()
        );
    };
    let session = strata_runtime::Session::new(graph);
    let run = session.run_adaptive(x, &policy)?;
    let cost =
        strata_compiler::adaptive::policy_cost(graph, info.available_planes, &policy, &run.ran)?;
    let ks = strata_compiler::adaptive::stage_planes(&policy);
    let shares: Vec<String> = ks
        .iter()
        .zip(&run.ran)
        .map(|(k, n)| format!("{k} ran {n}"))
        .collect();
    eprintln!(
        "adaptive ({}): stages {}; bit-operations {:.3} of the full model's",
        policy.target,
        shares.join(", "),
        cost
    );
    Ok(run.output)
}

pub fn run(args: Args) -> Result<()> {
    let mut options = args.planes.run_options()?;
    let shown = args.model.display().to_string();
    let loaded = args.shapes.load(&args.model)?;
    let graph = loaded.graph;
    // No --planes: the stored mixed-precision choice; --layer-planes entries still win.
    if let Some(info) = &loaded.container {
        let defaults = info
            .apply_default_planes(&graph, &mut options)
            .with_context(|| shown.clone())?;
        if !defaults.is_empty() {
            eprintln!("mixed precision (stored per-layer plane counts): {defaults:?}");
        }
    }
    let tensors = read_inputs(&graph, &args.inputs).with_context(|| format!("--input: {shown}"))?;
    let labels = args.labels.as_deref().map(npy::read_npy).transpose()?;
    let start = Instant::now();
    let outputs = match args.backend {
        RunBackend::Runtime if args.adaptive => {
            vec![run_adaptive(
                &graph,
                loaded.container.as_ref(),
                &shown,
                &tensors,
            )?]
        }
        RunBackend::Mlir if args.adaptive => {
            bail!(
                "--adaptive runs on the runtime (the MLIR backend has no adaptive entry point yet)"
            )
        }
        RunBackend::Runtime => run_with(&graph, &tensors, &options)?,
        RunBackend::Mlir => {
            if args.planes.path != QuantPath::Integer {
                bail!("--backend mlir computes the integer path only (drop --path)");
            }
            super::mlir::run(
                graph,
                loaded.container.as_ref(),
                &args.model,
                args.planes.planes,
                &options.per_layer,
                &tensors,
            )?
        }
    };
    let elapsed = start.elapsed();
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    for (i, t) in outputs.iter().enumerate() {
        super::write_file(&args.out.join(format!("output_{i}.npy")), &npy::encode(t))?;
    }
    let batch = tensors
        .first()
        .and_then(|t| t.shape().first())
        .copied()
        .unwrap_or(1);
    eprintln!(
        "ran {shown} on batch {batch} in {:.3} s; wrote {} output(s) to {}",
        elapsed.as_secs_f64(),
        outputs.len(),
        args.out.display()
    );
    if let Some(labels) = labels {
        let logits = outputs.first().context("the model has no outputs")?;
        let hits = correct(logits, &labels).context("output 0 against --labels")?;
        let right = hits.iter().filter(|&&c| c).count();
        outln!(
            "top-1: {:.2} % ({right}/{})",
            100.0 * right as f64 / hits.len().max(1) as f64,
            hits.len()
        )?;
    }
    Ok(())
}
