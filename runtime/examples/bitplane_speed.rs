//! Times the bit-plane kernels (integer and float paths, several plane counts) against the
//! plain f32 Conv / Gemm they replace, on layer sizes typical of small CNNs.
//!
//! `cargo run --release -p strata-runtime --example bitplane_speed`

use std::time::Instant;

use strata_ir::ops::{Bitplane, BitplaneKernel, Conv, PlaneSpec};
use strata_ir::quant::{midpoint_side, pack_planes, quantize_rows, row_bytes};
use strata_ir::{Op, Tensor, TensorData};
use strata_runtime::kernels::{eval_op_with, QuantPath};
use strata_test_support::{conv_attrs, gemm, values};

/// Median wall time of `reps` runs, in milliseconds.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}

fn bench(name: &str, kernel: BitplaneKernel, float_op: Op, x: Tensor, rows: usize, cols: usize) {
    let w = values(rows * cols, 1);
    let (codes, scales) = quantize_rows(&w, rows, cols, 8).unwrap();
    let planes = Tensor::new(
        vec![8, rows, row_bytes(cols)],
        TensorData::U8(pack_planes(&codes, rows, cols, 8).unwrap()),
    )
    .expect("planes");
    let ks: Vec<u8> = vec![2, 4, 6, 8];
    let table = |f: &dyn Fn(u8, usize) -> f32| {
        let v = ks
            .iter()
            .flat_map(|&k| (0..rows).map(move |r| (k, r)))
            .map(|(k, r)| f(k, r))
            .collect();
        Tensor::from_f32(vec![ks.len(), rows], v).expect("table")
    };
    let alpha = table(&|k, r| midpoint_side(scales[r], 8, k).unwrap().0);
    let beta = table(&|k, r| midpoint_side(scales[r], 8, k).unwrap().1);
    let bias = table(&|_, _| 0.0);
    let act = Tensor::from_f32(
        vec![ks.len(), 2],
        ks.iter().flat_map(|_| [1.0 / 127.0, 0.0]).collect(),
    )
    .expect("act");
    let op = Op::Bitplane(Bitplane {
        kernel,
        spec: PlaneSpec {
            bits: 8,
            plane_counts: ks.clone(),
            act_bits: 8,
            rows,
            cols,
            act_bits_k: vec![],
        },
    });
    let mut wshape = vec![rows];
    if let Op::Conv(c) = &float_op {
        wshape.push(cols / c.kernel.iter().product::<usize>());
        wshape.extend(&c.kernel);
    } else {
        wshape.push(cols);
    }
    let wt = Tensor::from_f32(wshape, w).expect("w");
    let b = Tensor::from_f32(vec![rows], vec![0.0; rows]).expect("b");
    let fp = time(9, || {
        eval_op_with(&float_op, &[&x, &wt, &b], None, QuantPath::Integer).expect("fp32");
    });
    println!("{name}: fp32 {fp:.2} ms");
    for &k in &ks {
        let ins = [&x, &planes, &alpha, &beta, &bias, &act];
        let int = time(9, || {
            eval_op_with(&op, &ins, Some(k), QuantPath::Integer).expect("int");
        });
        let flt = time(9, || {
            eval_op_with(&op, &ins, Some(k), QuantPath::Float).expect("float");
        });
        println!("  k={k}: integer {int:.2} ms, float {flt:.2} ms");
    }
}

fn main() {
    let conv = conv_attrs(&[3, 3], &[1, 1], &[1, 1, 1, 1], &[1, 1], 1, true);
    let x = Tensor::from_f32(vec![16, 64, 32, 32], values(16 * 64 * 1024, 2)).expect("x");
    let kernel = BitplaneKernel::Conv(Conv {
        has_bias: false,
        ..conv.clone()
    });
    let name = "conv 64→64 3x3 on [16,64,32,32]";
    bench(name, kernel, Op::Conv(conv), x, 64, 576);
    let x = Tensor::from_f32(vec![64, 1024], values(64 * 1024, 3)).expect("x");
    let fc = gemm(1.0, 1.0, false, true, true);
    bench(
        "linear 1024→1024 on [64,1024]",
        BitplaneKernel::Linear,
        fc,
        x,
        1024,
        1024,
    );
}
