//! Times `strata_runtime::run` on a [10000, 1, 28, 28] batch through an MNIST-shaped CNN
//! (Conv 1→32 3×3 · Relu · MaxPool 2 · Conv 32→64 3×3 · Relu · MaxPool 2 · Flatten ·
//! Gemm 3136→128 · Relu · Gemm 128→10) with random weights.
//!
//! Run with `cargo run -p strata-runtime --release --example mnist_speed [batch]`.

use std::time::Instant;

use strata_ir::ops::UnaryOp;
use strata_ir::{Graph, Op, Tensor};
use strata_test_support::{batch_ty, conv, gemm, max_pool, op, XorShift};

/// Seeded values scaled by `scale`, the same on every machine.
fn rand(rng: &mut XorShift, shape: Vec<usize>, scale: f32) -> Tensor {
    let n = shape.iter().product();
    let data = (0..n).map(|_| rng.unit() * scale).collect();
    Tensor::from_f32(shape, data).expect("shape matches data")
}

fn mnist_graph(rng: &mut XorShift) -> Graph {
    let mut g = Graph::new("mnist");
    let x = g.add_input("x", batch_ty(&[1, 28, 28]));
    let (relu, fc) = (Op::Unary(UnaryOp::Relu), gemm(1.0, 1.0, false, true, true));
    let w1 = g.add_constant("w1", rand(rng, vec![32, 1, 3, 3], 0.3));
    let b1 = g.add_constant("b1", rand(rng, vec![32], 0.1));
    let w2 = g.add_constant("w2", rand(rng, vec![64, 32, 3, 3], 0.06));
    let b2 = g.add_constant("b2", rand(rng, vec![64], 0.1));
    let w3 = g.add_constant("w3", rand(rng, vec![128, 3136], 0.02));
    let b3 = g.add_constant("b3", rand(rng, vec![128], 0.1));
    let w4 = g.add_constant("w4", rand(rng, vec![10, 128], 0.1));
    let b4 = g.add_constant("b4", rand(rng, vec![10], 0.1));
    // Output types are inferred: [N,32,28,28] → [N,32,14,14] → [N,64,14,14] → [N,64,7,7].
    let c1 = op(&mut g, "conv1", conv(3, 1, 1), &[x, w1, b1]);
    let r1 = op(&mut g, "relu1", relu.clone(), &[c1]);
    let p1 = op(&mut g, "pool1", max_pool(2), &[r1]);
    let c2 = op(&mut g, "conv2", conv(3, 1, 1), &[p1, w2, b2]);
    let r2 = op(&mut g, "relu2", relu.clone(), &[c2]);
    let p2 = op(&mut g, "pool2", max_pool(2), &[r2]);
    let f = op(&mut g, "flatten", Op::Flatten { axis: 1 }, &[p2]);
    let d1 = op(&mut g, "fc1", fc.clone(), &[f, w3, b3]);
    let r3 = op(&mut g, "relu3", relu, &[d1]);
    let d2 = op(&mut g, "fc2", fc, &[r3, w4, b4]);
    g.set_outputs(vec![d2]);
    g
}

fn main() {
    let batch: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let mut rng = XorShift::from_state(0x5eed_1234_abcd_ef01);
    let graph = mnist_graph(&mut rng);
    let input = rand(&mut rng, vec![batch, 1, 28, 28], 1.0);
    // Warm-up on a small batch (thread pools, page faults).
    let warm = rand(&mut rng, vec![64, 1, 28, 28], 1.0);
    strata_runtime::run(&graph, &[warm]).expect("warm-up run");
    let mut best = f64::INFINITY;
    let mut checksum = 0.0f64;
    for _ in 0..3 {
        let t = Instant::now();
        let out = strata_runtime::run(&graph, std::slice::from_ref(&input)).expect("run");
        best = best.min(t.elapsed().as_secs_f64());
        checksum = out[0]
            .as_f32()
            .map(|v| v.iter().map(|&x| x as f64).sum())
            .unwrap_or(0.0);
        assert_eq!(out[0].shape(), &[batch, 10]);
    }
    if std::env::args().any(|a| a == "--profile") {
        let (_, timings) =
            strata_runtime::run_profiled(&graph, std::slice::from_ref(&input)).expect("run");
        for t in timings {
            println!("  {:<10} {:<10} {:.3} s", t.node, t.op, t.seconds);
        }
    }
    println!(
        "mnist_speed: batch {batch}: best of 3 = {best:.3} s ({:.1} images/s), output checksum {checksum:.4}",
        batch as f64 / best
    );
}
