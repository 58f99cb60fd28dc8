//! Batch-1 latency of the runtime's integer path at several plane counts, each through one
//! `Session` (codes prepared once), interleaved call by call: every image runs at every `K`
//! in turn, so that load from other processes hits all counts alike. Prints the median µs
//! per call and its ratio to the first `K`.
//!
//! `cargo run --release -p strata-runtime --example planes_speed -- MODEL.strata IMAGES.bin
//! [N] [ROUNDS] [K,K,…]` — IMAGES.bin: raw little-endian f32 samples of the model's input
//! shape with batch 1 (`scripts/bench_c.py` writes `target/bench_c/images.bin` for the MNIST
//! CNN, `scripts/bench_mlir.py` `target/bench_mlir/resnet18_64.images.bin`). Set
//! `RAYON_NUM_THREADS=1` for one thread.

use std::time::Instant;

use strata_runtime::{RunOptions, Session};

mod support;
use support::median;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let support::Bench {
        loaded,
        images,
        reps: rounds,
        ks,
    } = support::load("planes_speed")?;
    let graph = &loaded.graph;
    let n = images.len();
    let options: Vec<RunOptions> = ks
        .iter()
        .map(|&k| RunOptions {
            planes: Some(k),
            ..Default::default()
        })
        .collect();
    let session = Session::new(graph);
    // Warm-up: prepares every count's codes, outside the timing.
    for o in &options {
        session.run_with(std::slice::from_ref(&images[0]), o)?;
    }
    let mut times = vec![Vec::new(); ks.len()];
    for _ in 0..rounds {
        for x in &images {
            for (o, t) in options.iter().zip(&mut times) {
                let start = Instant::now();
                session.run_with(std::slice::from_ref(x), o)?;
                t.push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    println!(
        "{n} images × {rounds} rounds, batch 1, {} thread(s), one Session, counts interleaved per call",
        strata_runtime::threads()
    );
    println!("| K | µs/call (median) | × K={} |", ks[0]);
    println!("|---|---|---|");
    let medians: Vec<f64> = times.into_iter().map(median).collect();
    for (k, m) in ks.iter().zip(&medians) {
        println!("| {k} | {m:.1} | {:.2} |", m / medians[0]);
    }
    Ok(())
}
