//! `strata strip`: cut a `.strata` file to its first K planes (a byte prefix).

use std::path::PathBuf;

use anyhow::{Context, Result};
use strata_ir::container::strip_container;

#[derive(clap::Args)]
pub struct Args {
    model: PathBuf,
    #[arg(long)]
    planes: u8,
    #[arg(short, long)]
    output: PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let bytes = strata_ir::files::read_limited(&args.model, strata_ir::limits::MAX_FILE_BYTES)
        .with_context(|| format!("reading {}", args.model.display()))?;
    let prefix =
        strip_container(&bytes, args.planes).with_context(|| args.model.display().to_string())?;
    super::write_file(&args.output, prefix)?;
    eprintln!(
        "wrote {} ({} of {} bytes, {} planes)",
        args.output.display(),
        prefix.len(),
        bytes.len(),
        args.planes
    );
    Ok(())
}
