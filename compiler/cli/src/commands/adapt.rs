//! `strata adapt`: fit an adaptive-precision policy to a target on unlabelled samples and
//! store it in a copy of the `.strata` file.

use std::path::PathBuf;

use anyhow::{Context, Result};
use strata_compiler::adaptive::{adapt_container, AdaptiveTarget};

#[derive(clap::Args)]
pub struct Args {
    model: PathBuf,
    /// The target: `budget=F` (average bit-operations ≤ F × the full-plane model's, the most
    /// agreement with it within that) or `max-drop=P` (at most P percentage points of
    /// samples whose top-1 differs from the full-plane model's, the fewest bit-operations).
    #[arg(long, value_name = "TARGET")]
    adaptive: String,
    /// Samples to fit on (`.npy`, float32 `[N, …]`, the model's one input; no labels):
    /// training images, not the test set.
    #[arg(long)]
    data: PathBuf,
    /// Use only the first N samples.
    #[arg(long)]
    samples: Option<usize>,
    #[arg(short, long)]
    output: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let target: AdaptiveTarget = args.adaptive.parse()?;
    let bytes = strata_ir::files::read_limited(&args.model, strata_ir::limits::MAX_FILE_BYTES)
        .with_context(|| format!("reading {}", args.model.display()))?;
    let mut data = strata_compiler::npy::read_npy(&args.data)
        .with_context(|| format!("--data {}", args.data.display()))?;
    if let Some(n) = args.samples {
        data = strata_compiler::build::first_rows(data, n)
            .with_context(|| format!("--data {}", args.data.display()))?;
    }
    let (out, fit) =
        adapt_container(&bytes, &data, target).with_context(|| args.model.display().to_string())?;
    super::write_file(&args.output, &out)?;
    let stages: Vec<String> = fit
        .stages
        .iter()
        .zip(&fit.answered)
        .enumerate()
        .map(|(s, (config, a))| match fit.min_margins.get(s) {
            Some(m) => format!("{config} (margin >= {m}, answers {:.1} %)", a * 100.0),
            None => format!("{config} (answers {:.1} %)", a * 100.0),
        })
        .collect();
    eprintln!(
        "wrote {}: {} on {} samples: {}; bit-operations {:.3} of the full model's, top-1 agreement with it {:.2} %",
        args.output.display(),
        fit.target,
        fit.samples,
        stages.join(" -> "),
        fit.cost,
        fit.agreement * 100.0
    );
    Ok(())
}
