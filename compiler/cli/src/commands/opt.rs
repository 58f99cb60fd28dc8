//! `strata opt`: run a pass pipeline and print the IR text.

use std::path::PathBuf;

use anyhow::Result;
use strata_ir::text::{print_with, PrintOptions};
use strata_passes::{PassContext, PassManager};

#[derive(clap::Args)]
pub struct Args {
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
    #[command(flatten)]
    shapes: super::InputShapes,
}

pub fn run(args: Args) -> Result<()> {
    let mut graph = args.shapes.load(&args.model)?.graph;
    let options = PrintOptions {
        elide_constants_over: (args.elide_constants_over > 0).then_some(args.elide_constants_over),
        ..Default::default()
    };
    let pipeline = !args.passes.trim().is_empty();
    if pipeline {
        let manager = PassManager::parse(&args.passes)?.print_after_all(args.print_after_all);
        // The callback cannot fail, so a closed pipe is remembered and reported after.
        let mut printed = Ok(());
        manager.run(&mut graph, &mut PassContext::default(), |name, g| {
            if printed.is_ok() {
                printed = outln!("// ----- IR after {name} -----")
                    .and_then(|()| outln!("{}", print_with(g, &options)));
            }
        })?;
        printed?;
    }
    let text = print_with(&graph, &options);
    match args.output {
        Some(path) => super::write_file(&path, text.as_bytes())?,
        None if args.print_after_all && pipeline => {}
        None => outln!("{text}")?,
    }
    Ok(())
}
