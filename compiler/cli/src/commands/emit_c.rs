//! `strata emit-c`: a C99 library (`DIR/NAME.h`, `DIR/NAME.c`) from a model.

use std::path::PathBuf;

use anyhow::{Context, Result};
use strata_compiler::backend::c::{write_c, EmitOptions, Target};
use strata_compiler::build::emit_options;

#[derive(clap::Args)]
pub struct Args {
    model: PathBuf,
    /// Planes stored in the weights (`NAME_run` runs at this count). Default: the stored
    /// mixed-precision choice (each layer keeps its own count, K = the largest), else what
    /// `strata run` runs: each layer's largest count with a side table among the planes
    /// present.
    #[arg(long)]
    planes: Option<u8>,
    /// Code-generation target: generic (portable C99), x86-64-v3 (AVX2), aarch64 (NEON),
    /// armv7m (Cortex-M: packed planes, integer-only loops).
    #[arg(long, value_enum, default_value_t = Target::Generic)]
    target: Target,
    #[command(flatten)]
    code_bits: super::CodeBitsArg,
    /// Prefix of the files, functions and macros (a C identifier).
    #[arg(long)]
    name: String,
    /// Output directory.
    #[arg(short, long)]
    output: PathBuf,
    #[command(flatten)]
    shapes: super::InputShapes,
}

pub fn run(args: Args) -> Result<()> {
    let loaded = args.shapes.load(&args.model)?;
    let graph = loaded.graph;
    let shown = args.model.display().to_string();
    let mut options = match &loaded.container {
        Some(info) => emit_options(&graph, info, args.planes, args.target, args.name, &shown)?,
        None => EmitOptions {
            planes: args
                .planes
                .context("--planes is needed for a model that is not .strata")?,
            name: args.name,
            target: args.target,
            layer_planes: None,
            adaptive: None,
            code_bits: Default::default(),
        },
    };
    options.code_bits = args.code_bits.code_bits;
    let written = write_c(&graph, &options, &args.output).with_context(|| shown.clone())?;
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
