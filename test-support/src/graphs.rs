//! Graph builders: value types, constants, op nodes and a few layers.

use strata_ir::ops::Conv;
use strata_ir::{DType, Dim, Graph, Op, Shape, Tensor, TensorType, ValueRef};

use crate::rng::values;

/// A type from optional dimensions: `None` is the batch symbol `N`.
pub fn ty(dtype: DType, dims: &[Option<usize>]) -> TensorType {
    TensorType::new(
        dtype,
        Shape(
            dims.iter()
                .map(|d| d.map_or(Dim::Batch, Dim::Known))
                .collect(),
        ),
    )
}

/// A fully known f32 type.
pub fn f32_ty(dims: &[usize]) -> TensorType {
    TensorType::new(DType::F32, Shape::known(dims))
}

/// An f32 type `[N, dims…]`.
pub fn batch_ty(dims: &[usize]) -> TensorType {
    let mut d = vec![Dim::Batch];
    d.extend(dims.iter().map(|&x| Dim::Known(x)));
    TensorType::new(DType::F32, Shape(d))
}

/// An f32 constant whose element `i` is `f(i)`.
pub fn f32c(g: &mut Graph, name: &str, shape: &[usize], f: impl Fn(usize) -> f32) -> ValueRef {
    let n: usize = shape.iter().product();
    g.add_constant(
        name,
        Tensor::from_f32(shape.to_vec(), (0..n).map(f).collect()).expect("length matches"),
    )
}

/// A seeded weight constant scaled by `1.7 / sqrt(fan_in)` (fan-in: all axes but the first).
pub fn weight(g: &mut Graph, name: &str, shape: &[usize], seed: u64) -> ValueRef {
    let n: usize = shape.iter().product();
    let fan_in = (n / shape[0]) as f32;
    let v = values(n, seed)
        .into_iter()
        .map(|x| x * 1.7 / fan_in.sqrt())
        .collect();
    g.add_constant(
        name,
        Tensor::from_f32(shape.to_vec(), v).expect("length matches"),
    )
}

/// Adds a one-output op node whose output value has the node's name; panics naming the node
/// when its inputs do not type-check.
#[track_caller]
pub fn op(g: &mut Graph, name: &str, op: Op, inputs: &[ValueRef]) -> ValueRef {
    let id = g
        .add_op_inferred(name, op, inputs, vec![name.to_string()])
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    ValueRef::first(id)
}

/// A square 2-D convolution with stride 1, `pad` on every side, and a bias.
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
