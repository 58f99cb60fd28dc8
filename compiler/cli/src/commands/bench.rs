//! `strata bench`: measurements of this machine that reports compare against.

use anyhow::Result;

/// What to measure.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum What {
    /// An n×n×n f32 product through the runtime's GEMM.
    Gemm,
}

#[derive(clap::Args)]
pub struct Args {
    what: What,
    /// `n` of the product.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Timed repeats (after one warm-up).
    #[arg(long, default_value_t = 10)]
    repeats: usize,
    /// Print JSON instead of a line of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let What::Gemm = args.what;
    let r = strata_compiler::bench::gemm(args.size, args.repeats)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&r)?)?;
    } else {
        outln!(
            "sgemm {n}x{n}x{n}, {} threads: best {:.1} GFLOP/s ({:.4} s), median {:.1} \
             GFLOP/s ({:.4} s)",
            r.threads,
            r.best_gflops,
            r.best_seconds,
            r.median_gflops,
            r.median_seconds,
            n = r.size
        )?;
    }
    Ok(())
}
