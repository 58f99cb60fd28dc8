//! End-to-end check on a real trained network: the MNIST CNN in `models/mnist_cnn.onnx`
//! imported by the ONNX frontend and run by the reference runtime must reproduce ONNX
//! Runtime 1.31.1's logits on 500 test images (`tests/fixtures/mnist/`, made by
//! `scripts/make_mnist_fixtures.py`), classify them identically, and give the same
//! answer whatever the batch size.

use std::fs::File;
use std::io::BufReader;

use strata_compiler::onnx::{import_file, ImportOptions};
use strata_ir::{Graph, Tensor};
use strata_test_support::repo_root as root;

const N: usize = 500;
const CLASSES: usize = 10;
const PIXELS: usize = 28 * 28;

fn read_npy<T: npyz::Deserialize>(name: &str) -> (Vec<u64>, Vec<T>) {
    let path = root().join("tests/fixtures/mnist").join(name);
    let file = File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let npy = npyz::NpyFile::new(BufReader::new(file))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let shape = npy.shape().to_vec();
    let data = npy
        .into_vec::<T>()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (shape, data)
}

struct Fixtures {
    images: Vec<f32>,
    labels: Vec<i64>,
    reference: Vec<f32>,
}

fn fixtures() -> Fixtures {
    let (ishape, images) = read_npy::<f32>("images.npy");
    assert_eq!(ishape, [N as u64, 1, 28, 28]);
    let (lshape, labels) = read_npy::<i64>("labels.npy");
    assert_eq!(lshape, [N as u64]);
    let (rshape, reference) = read_npy::<f32>("logits_onnxruntime.npy");
    assert_eq!(rshape, [N as u64, CLASSES as u64]);
    Fixtures {
        images,
        labels,
        reference,
    }
}

fn model() -> Graph {
    import_file(
        &root().join("models/mnist_cnn.onnx"),
        &ImportOptions::default(),
    )
    .expect("import models/mnist_cnn.onnx")
}

/// Runs images `[start, start+len)` as one batch and returns the logits row-major.
fn run_batch(g: &Graph, images: &[f32], start: usize, len: usize) -> Vec<f32> {
    let x = Tensor::from_f32(
        vec![len, 1, 28, 28],
        images[start * PIXELS..(start + len) * PIXELS].to_vec(),
    )
    .expect("image batch");
    let out = strata_runtime::run(g, &[x]).expect("run mnist_cnn");
    assert_eq!(out.len(), 1, "one output (logits)");
    assert_eq!(out[0].shape(), [len, CLASSES]);
    out[0].as_f32().expect("f32 logits").to_vec()
}

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0
}

fn correct(logits: &[f32], labels: &[i64]) -> usize {
    logits
        .chunks(CLASSES)
        .zip(labels)
        .filter(|(row, &l)| argmax(row) as i64 == l)
        .count()
}

#[test]
fn mnist_cnn_matches_onnxruntime() {
    let f = fixtures();
    let g = model();
    let logits = run_batch(&g, &f.images, 0, N);

    let max_err = logits
        .iter()
        .zip(&f.reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("mnist_cnn: max |logit - onnxruntime| = {max_err:e} over {N} images");
    assert!(max_err <= 1e-4, "max |logit - onnxruntime| = {max_err}");

    let ours = correct(&logits, &f.labels);
    let reference = correct(&f.reference, &f.labels);
    // The fixture set was generated with ONNX Runtime 1.31.1: 496 of the first 500 correct.
    assert_eq!(reference, 496, "fixture logits changed");
    assert_eq!(
        ours, reference,
        "top-1 correct: strata {ours}, onnxruntime {reference}"
    );
    let same_class = logits
        .chunks(CLASSES)
        .zip(f.reference.chunks(CLASSES))
        .filter(|(a, b)| argmax(a) == argmax(b))
        .count();
    assert_eq!(same_class, N, "predicted classes differ from onnxruntime");
}

/// Largest elementwise difference; batch composition must not change a sample's logits
/// beyond float reassociation noise (a GEMM may block differently for other batch sizes).
fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn mnist_cnn_batch_size_independent() {
    let f = fixtures();
    let g = model();
    let full = run_batch(&g, &f.images, 0, N);
    let mut worst = 0.0f32;
    // Batch 1 on a few images spread over the set, batch 7 over the first 70 and the tail.
    for i in [0, 1, 2, 137, 250, 499] {
        let one = run_batch(&g, &f.images, i, 1);
        let d = max_diff(&one, &full[i * CLASSES..(i + 1) * CLASSES]);
        assert!(d <= 1e-5, "batch 1 vs full batch, image {i}: max diff {d}");
        worst = worst.max(d);
    }
    for start in (0..70).step_by(7).chain([N - 7]) {
        let seven = run_batch(&g, &f.images, start, 7);
        let d = max_diff(&seven, &full[start * CLASSES..(start + 7) * CLASSES]);
        assert!(
            d <= 1e-5,
            "batch 7 vs full batch, images {start}..{}: max diff {d}",
            start + 7
        );
        worst = worst.max(d);
    }
    println!("mnist_cnn: batch 1/7 vs batch {N}: max diff {worst:e}");
}
