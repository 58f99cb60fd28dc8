//! `strata build`: a library for one backend from a model — C sources (`--backend c`, as
//! `emit-c`) or an object file for this CPU (`--backend mlir`), each with the same header.

use std::path::PathBuf;

use anyhow::{Context, Result};
use strata_compiler::backend::c::{write_c, Target};
use strata_compiler::build::emit_options;

/// The code generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// C99 sources (`NAME.c`, `NAME.h`) for `--target`.
    C,
    /// A native object (`NAME.o`, `NAME.h`) for this CPU through MLIR/LLVM (cargo feature
    /// `mlir`).
    Mlir,
}

#[derive(clap::Args)]
pub struct Args {
    model: PathBuf,
    #[arg(long, value_enum, default_value_t = Backend::C)]
    backend: Backend,
    /// Planes stored in the weights (`NAME_run` runs at this count). Default: the stored
    /// mixed-precision choice, else each layer's largest count with a side table among the
    /// planes present (what `strata run` runs).
    #[arg(long)]
    planes: Option<u8>,
    /// The C backend's target (`--backend c`).
    #[arg(long, value_enum, default_value_t = Target::Generic)]
    target: Target,
    #[command(flatten)]
    code_bits: super::CodeBitsArg,
    /// `--backend mlir`: the LLVM target triple of the object (e.g. `aarch64-linux-gnu`;
    /// default: this machine).
    #[arg(long)]
    target_triple: Option<String>,
    /// `--backend mlir`: the LLVM CPU of the object (`-mcpu`, e.g. `neoverse-n1`); needs
    /// `--target-triple`.
    #[arg(long)]
    target_cpu: Option<String>,
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
    let written = match args.backend {
        Backend::Mlir => super::mlir::build(
            &args.shapes,
            &args.model,
            args.planes,
            args.name,
            (args.target_triple, args.target_cpu),
            &args.output,
        )?,
        Backend::C => {
            if args.target_triple.is_some() || args.target_cpu.is_some() {
                anyhow::bail!("--target-triple and --target-cpu are for --backend mlir (the C backend takes --target)");
            }
            let loaded = args.shapes.load(&args.model)?;
            let shown = args.model.display().to_string();
            let Some(info) = &loaded.container else {
                anyhow::bail!("{shown}: `strata build` compiles `.strata` models (run `strata compile` first)");
            };
            let mut options = emit_options(
                &loaded.graph,
                info,
                args.planes,
                args.target,
                args.name,
                &shown,
            )?;
            options.code_bits = args.code_bits.code_bits;
            write_c(&loaded.graph, &options, &args.output).with_context(|| shown.clone())?
        }
    };
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
