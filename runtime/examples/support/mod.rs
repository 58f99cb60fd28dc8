//! What the timing examples share: their arguments `MODEL.strata IMAGES.bin [N] [REPS]
//! [K,K,…]`, the model, and up to `N` batch-1 images cut from a raw little-endian f32 file.

use strata_ir::container::{read_container, Loaded};
use strata_ir::Tensor;

pub struct Bench {
    pub loaded: Loaded,
    pub images: Vec<Tensor>,
    /// Repetitions (or rounds).
    pub reps: usize,
    /// Plane counts to time (default: the planes present).
    pub ks: Vec<u8>,
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Parses the arguments of `name` and loads its inputs.
pub fn load(name: &str) -> Result<Bench, Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        return Err(format!("usage: {name} MODEL.strata IMAGES.bin [N] [REPS] [K,K,…]").into());
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
    let reps: usize = args.get(4).map_or(Ok(5), |s| s.parse())?;
    let ks: Vec<u8> = match args.get(5) {
        Some(s) => s.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![loaded.available_planes],
    };
    if n == 0 || reps == 0 || ks.is_empty() {
        return Err("need at least one image, one repetition and one plane count".into());
    }
    let images: Vec<Tensor> = (0..n)
        .map(|i| Tensor::from_f32(shape.clone(), all[i * per..(i + 1) * per].to_vec()))
        .collect::<Result<_, _>>()?;
    Ok(Bench {
        loaded,
        images,
        reps,
        ks,
    })
}
