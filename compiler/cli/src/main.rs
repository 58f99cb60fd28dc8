//! The `strata` command-line tool: argument parsing and printing over the
//! `strata-compiler` driver, one module per command in [`commands`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `writeln!` to standard output, returning the `io::Result` so a closed pipe
/// (`strata inspect m.onnx | head`) ends the command quietly instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod commands;

use commands::*;

/// Strata: one trained network in, one vertically layered quantized model out.
#[derive(Parser)]
#[command(name = "strata", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Write into an output path that exists and is not a regular file (follow a symlink,
    /// feed a FIFO, write to a device such as /dev/stdout) instead of refusing it.
    #[arg(long, global = true)]
    write_in_place: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Show a model's inputs and outputs, op counts, parameters and MACs per layer.
    Inspect(inspect::Args),
    /// Run a pass pipeline and print the resulting IR text.
    Opt(opt::Args),
    /// Execute a model with the reference runtime on `.npy` inputs.
    Run(run::Args),
    /// Quantize an ONNX model into one vertically layered `.strata` file.
    Compile(compile::Args),
    /// Accuracy, agreement with FP32 and weight bytes at every plane count.
    Eval(eval::Args),
    /// Generate a C99 library (`DIR/NAME.h`, `DIR/NAME.c`) from a `.strata` model: batch 1,
    /// no malloc, weights holding only planes 0..K-1.
    EmitC(emit_c::Args),
    /// Print a `.strata` model as MLIR (func/linalg/arith/tensor), verified; `--stage llvm`
    /// prints it after lowering to the LLVM dialect. Needs the `mlir` cargo feature.
    EmitMlir(mlir::EmitArgs),
    /// Build a library from a `.strata` model: C sources (`--backend c`) or, with
    /// `--backend mlir`, a native object `DIR/NAME.o` with the same header `DIR/NAME.h`.
    Build(build::Args),
    /// Footprint of every available plane count as C (weight, arena, scratch bytes, MACs,
    /// top-1 if recorded by `eval --record`); with --fit-flash/--fit-ram, the largest plane
    /// count that fits and why. Sizes: bytes with optional K/M/G suffix, K = 1024.
    Manifest(manifest::Args),
    /// Cut a `.strata` file to its first K planes. The output is a byte prefix of the input.
    Strip(strip::Args),
    /// Fit an adaptive-precision policy (per-input plane counts: a cheap stage answers the
    /// confident inputs, the rest escalate) to `--adaptive budget=F|max-drop=P` on unlabelled
    /// samples, and write the model with it.
    Adapt(adapt::Args),
    /// List the passes a pipeline can name.
    Passes,
    /// Measure this machine: `gemm` times an n×n×n f32 product through the runtime's GEMM
    /// (the peak the once-QAT GFLOP/s figure is compared with; `RAYON_NUM_THREADS` sets the
    /// threads).
    Bench(bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A mistyped cap must not silently run other kernels than the user asked for.
    if let Err(e) = strata_runtime::isa::cap_from_env() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    commands::set_write_in_place(cli.write_in_place);
    // The whole command runs on a worker of the global thread pool: the kernels' parallel
    // loops then start from inside the pool instead of each one handing its work to a
    // sleeping worker and blocking on a futex until it is done (≈ 10 % of a compile's CPU
    // time went into those wake-ups and context switches).
    // Its workers get the main thread's 8 MiB stack, not the 2 MiB default, so deep models
    // parse and walk as they did on the main thread.
    let pool = rayon::ThreadPoolBuilder::new()
        .stack_size(8 << 20)
        .build_global();
    let result = match pool {
        Ok(()) => rayon::scope(move |_| dispatch(cli.command)),
        // No pool of our own (never expected): run on this thread as before.
        Err(_) => dispatch(cli.command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`| head`): what it wanted was printed.
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", report(&e));
            ExitCode::FAILURE
        }
    }
}

/// Runs one subcommand.
fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Inspect(args) => inspect::run(args),
        Command::Opt(args) => opt::run(args),
        Command::Run(args) => run::run(args),
        Command::Compile(args) => compile::run(args),
        Command::Eval(args) => eval::run(args),
        Command::EmitC(args) => emit_c::run(args),
        Command::EmitMlir(args) => mlir::emit(args),
        Command::Build(args) => build::run(args),
        Command::Manifest(args) => manifest::run(args),
        Command::Strip(args) => strip::run(args),
        Command::Adapt(args) => adapt::run(args),
        Command::Passes => passes(),
        Command::Bench(args) => bench::run(args),
    }
}

/// The error and its causes joined by `: `, each said once. Many error types both include
/// their source in their own message and return it from `source()`, so printing every link
/// of the chain (`{:#}`) would repeat it (`X: msg: msg`); a cause already contained in the
/// message before it is skipped. Names quoted from a file are cut to a readable length
/// ([`strata_ir::limits::shorten_message`]).
fn report(e: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut previous: Option<String> = None;
    for cause in e.chain() {
        let msg = cause.to_string();
        let said = previous
            .as_deref()
            .is_some_and(|p| p.contains(msg.as_str()));
        if !said {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&msg);
        }
        previous = Some(msg);
    }
    strata_ir::limits::shorten_message(&out)
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn passes() -> anyhow::Result<()> {
    for p in strata_passes::PASSES {
        outln!("{:<22} {}", p.name, p.summary)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::report;

    #[derive(Debug, thiserror::Error)]
    #[error("{path}: {source}")]
    struct Outer {
        path: String,
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn report_says_each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(Outer {
            path: "m.onnx".into(),
            source: io,
        });
        assert_eq!(format!("{e:#}"), "m.onnx: no such file: no such file");
        assert_eq!(report(&e), "m.onnx: no such file");
        let e = e.context("loading the model");
        assert_eq!(report(&e), "loading the model: m.onnx: no such file");
    }
}
