//! Batch-1 latency of the runtime's integer path on a `.strata` model: one `run_with` per
//! image (the codes rebuilt from the planes on every call) against one `Session` for all
//! images (rebuilt once per plane count), at each plane count, interleaved, medians.
//!
//! `cargo run --release -p strata-runtime --example session_speed -- MODEL.strata IMAGES.bin
//! [N] [REPS] [K,K,…]` — IMAGES.bin: raw little-endian f32 samples of the model's input
//! shape with batch 1 (`scripts/bench_c.py` writes `target/bench_c/images.bin` for the
//! MNIST CNN). Set `RAYON_NUM_THREADS=1` for one thread.

use std::time::Instant;

use strata_ir::container::read_container;
use strata_ir::Tensor;
use strata_runtime::{run_with, RunOptions, Session};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err("usage: session_speed MODEL.strata IMAGES.bin [N] [REPS] [K,K,…]".into());
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
    let available = all.len() / per.max(1);
    let n: usize = args.get(3).map_or(Ok(100), |s| s.parse())?;
    let n = n.min(available);
    let reps: usize = args.get(4).map_or(Ok(5), |s| s.parse())?;
    let ks: Vec<u8> = match args.get(5) {
        Some(s) => s.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![loaded.available_planes],
    };
    if n == 0 || reps == 0 {
        return Err("need at least one image and one repetition".into());
    }
    let images: Vec<Tensor> = (0..n)
        .map(|i| Tensor::from_f32(shape.clone(), all[i * per..(i + 1) * per].to_vec()))
        .collect::<Result<_, _>>()?;
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
