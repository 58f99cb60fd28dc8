//! Batch-1 latency of the runtime's integer path on a `.strata` model: one `run_with` per
//! image (the codes rebuilt from the planes on every call) against one `Session` for all
//! images (rebuilt once per plane count), at each plane count, interleaved, medians.
//!
//! `cargo run --release -p strata-runtime --example session_speed -- MODEL.strata IMAGES.bin
//! [N] [REPS] [K,K,…]` — IMAGES.bin: raw little-endian f32 samples of the model's input
//! shape with batch 1 (`scripts/bench_c.py` writes `target/bench_c/images.bin` for the
//! MNIST CNN). Set `RAYON_NUM_THREADS=1` for one thread.

use std::time::Instant;

use strata_runtime::{run_with, RunOptions, Session};

mod support;
use support::median;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let support::Bench {
        loaded,
        images,
        reps,
        ks,
    } = support::load("session_speed")?;
    let graph = &loaded.graph;
    let n = images.len();
    println!(
        "{} images, batch 1, {} thread(s), median of {reps} interleaved passes",
        n,
        strata_runtime::threads()
    );
    println!("| K | run_with per call (µs/image) | Session (µs/image) | ratio |");
    println!("|---|---|---|---|");
    for &k in &ks {
        let options = RunOptions {
            planes: Some(k),
            ..Default::default()
        };
        let session = Session::new(graph);
        let (mut fresh, mut kept) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            let t = Instant::now();
            for x in &images {
                run_with(graph, std::slice::from_ref(x), &options)?;
            }
            fresh.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
            let t = Instant::now();
            for x in &images {
                session.run_with(std::slice::from_ref(x), &options)?;
            }
            kept.push(t.elapsed().as_secs_f64() * 1e6 / n as f64);
        }
        let (a, b) = (median(fresh), median(kept));
        println!("| {k} | {a:.1} | {b:.1} | {:.2} |", b / a);
    }
    Ok(())
}
