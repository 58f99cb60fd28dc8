//! Helpers shared by the pass tests: seeded pseudo-random values and a small CNN that
//! covers every quantizable layer kind. Each test binary uses a different subset.
#![allow(dead_code)]

use strata_ir::ops::{Conv, Gemm, Pool};
use strata_ir::{DType, Graph, Op, Shape, Tensor, TensorType, ValueRef};

/// Deterministic values in [-1, 1) (xorshift), so failures reproduce.
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

pub fn f32_ty(dims: &[usize]) -> TensorType {
    TensorType::new(DType::F32, Shape::known(dims))
}

pub fn batch_ty(dims: &[usize]) -> TensorType {
    let mut d = vec![strata_ir::Dim::Batch];
    d.extend(dims.iter().map(|&x| strata_ir::Dim::Known(x)));
    TensorType::new(DType::F32, Shape(d))
}

pub fn weight(g: &mut Graph, name: &str, shape: &[usize], seed: u64) -> ValueRef {
    let n: usize = shape.iter().product();
    let fan_in = (n / shape[0]) as f32;
    let v = values(n, seed)
        .into_iter()
        .map(|x| x * 1.7 / fan_in.sqrt())
        .collect();
    g.add_constant(name, Tensor::from_f32(shape.to_vec(), v).unwrap())
}

pub fn op(g: &mut Graph, name: &str, op: Op, inputs: &[ValueRef]) -> ValueRef {
    ValueRef::first(
        g.add_op_inferred(name, op, inputs, vec![name.to_string()])
            .unwrap(),
    )
}

pub fn conv(kernel: usize, pad: usize, group: usize) -> Op {
    Op::Conv(Conv {
        kernel: vec![kernel, kernel],
        strides: vec![1, 1],
        pads: vec![pad; 4],
        dilations: vec![1, 1],
        group,
        has_bias: true,
    })
}

/// An MNIST-like small CNN: conv(1→4, 3×3) → relu → maxpool → grouped conv(4→8, group 2) →
/// relu → maxpool → flatten → matmul(32→16) → relu → gemm(16→10). Covers every layer kind.
pub fn small_cnn() -> Graph {
    let mut g = Graph::new("small_cnn");
    let x = g.add_input("x", batch_ty(&[1, 8, 8]));
    let w1 = weight(&mut g, "w1", &[4, 1, 3, 3], 1);
    let b1 = g.add_constant("b1", Tensor::from_f32(vec![4], values(4, 2)).unwrap());
    let c1 = op(&mut g, "conv1", conv(3, 1, 1), &[x, w1, b1]);
    let r1 = op(
        &mut g,
        "relu1",
        Op::Unary(strata_ir::ops::UnaryOp::Relu),
        &[c1],
    );
    let pool = Op::MaxPool(Pool {
        kernel: vec![2, 2],
        strides: vec![2, 2],
        pads: vec![0; 4],
        dilations: vec![1, 1],
        ceil_mode: false,
        count_include_pad: false,
    });
    let p1 = op(&mut g, "pool1", pool.clone(), &[r1]);
    let w2 = weight(&mut g, "w2", &[8, 2, 3, 3], 3);
    let b2 = g.add_constant(
        "b2",
        Tensor::from_f32(vec![8], values(8, 4).iter().map(|v| v * 0.1).collect()).unwrap(),
    );
    let c2 = op(&mut g, "conv2", conv(3, 1, 2), &[p1, w2, b2]);
    let r2 = op(
        &mut g,
        "relu2",
        Op::Unary(strata_ir::ops::UnaryOp::Relu),
        &[c2],
    );
    let p2 = op(&mut g, "pool2", pool, &[r2]);
    let f = op(&mut g, "flat", Op::Flatten { axis: 1 }, &[p2]);
    let w3 = weight(&mut g, "w3", &[32, 16], 5);
    let m = op(&mut g, "mm", Op::MatMul, &[f, w3]);
    let r3 = op(
        &mut g,
        "relu3",
        Op::Unary(strata_ir::ops::UnaryOp::Relu),
        &[m],
    );
    let w4 = weight(&mut g, "w4", &[10, 16], 6);
    let c4 = g.add_constant("c4", Tensor::from_f32(vec![10], values(10, 7)).unwrap());
    let gemm = Op::Gemm(Gemm {
        alpha: 1.0,
        beta: 0.5,
        trans_a: false,
        trans_b: true,
        has_c: true,
    });
    let y = op(&mut g, "fc", gemm, &[r3, w4, c4]);
    g.set_outputs(vec![y]);
    strata_ir::verify(&g).unwrap();
    g
}

/// Image-like inputs in [0, 1).
pub fn images(n: usize, seed: u64) -> Tensor {
    let v = values(n * 64, seed).into_iter().map(f32::abs).collect();
    Tensor::from_f32(vec![n, 1, 8, 8], v).unwrap()
}
