//! `strata inspect`: interface, op histogram, parameters and MACs per layer, and a
//! container's header facts.

use std::path::PathBuf;

use anyhow::{Context, Result};
use strata_compiler::inspect;

#[derive(clap::Args)]
pub struct Args {
    /// `.onnx` model, `.strata` container or Strata IR text (`.sir`).
    model: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    shapes: super::InputShapes,
}

pub fn run(args: Args) -> Result<()> {
    let loaded = args.shapes.load(&args.model)?;
    let summary =
        inspect::summarize(&loaded.graph).with_context(|| args.model.display().to_string())?;
    let container = loaded.container.map(|info| info.summary(&loaded.graph));
    if args.json {
        super::print_json_with(&summary, "container", container.as_ref())?;
    } else {
        outln!("{summary}")?;
        if let Some(c) = &container {
            use std::io::Write as _;
            write!(std::io::stdout().lock(), "{c}")?;
        }
    }
    Ok(())
}
