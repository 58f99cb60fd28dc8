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

use strata_ir::container::read_container;
use strata_ir::Tensor;
use strata_runtime::{RunOptions, Session};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: planes_speed MODEL.strata IMAGES.bin [N] [ROUNDS] [K,K,…]".into());
    }
    let loaded = read_container(&std::fs::read(&args[1])?)?;
    let graph = &loaded.graph;
    let input = graph.node(graph.inputs()[0])?.outputs[0].ty.clone();
    let shape: Vec<usize> = input.shape.resolve(1);
    let per: usize = shape.iter().product();
    let bytes = std::fs::read(&args[2])?;
    let all: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let n: usize = args.get(3).map_or(Ok(100), |s| s.parse())?;
    let n = n.min(all.len() / per.max(1));
    let rounds: usize = args.get(4).map_or(Ok(5), |s| s.parse())?;
    let ks: Vec<u8> = match args.get(5) {
        Some(s) => s.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![loaded.available_planes],
    };
    if n == 0 || rounds == 0 || ks.is_empty() {
        return Err("need at least one image, one round and one plane count".into());
    }
    let images: Vec<Tensor> = (0..n)
        .map(|i| Tensor::from_f32(shape.clone(), all[i * per..(i + 1) * per].to_vec()))
        .collect::<Result<_, _>>()?;
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
