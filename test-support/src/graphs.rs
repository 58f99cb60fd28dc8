//! Graph builders: value types, constants, op nodes and a few layers.

use strata_ir::ops::{Conv, ConvTranspose, Gemm, Pool};
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
    let k = [kernel, kernel];
    Op::Conv(conv_attrs(&k, &[1, 1], &[pad; 4], &[1, 1], group, true))
}

/// A convolution from its attributes in field order, one slice per axis list, so a test
/// states a whole (possibly asymmetric, strided, dilated, grouped) convolution in one line.
pub fn conv_attrs(
    kernel: &[usize],
    strides: &[usize],
    pads: &[usize],
    dilations: &[usize],
    group: usize,
    has_bias: bool,
) -> Conv {
    let [kernel, strides, pads, dilations] = [kernel, strides, pads, dilations].map(<[_]>::to_vec);
    Conv {
        kernel,
        strides,
        pads,
        dilations,
        group,
        has_bias,
    }
}

/// A transposed convolution: [`conv_attrs`] plus the output padding (one per spatial axis).
pub fn conv_transpose_attrs(
    kernel: &[usize],
    strides: &[usize],
    pads: &[usize],
    dilations: &[usize],
    output_padding: &[usize],
    group: usize,
    has_bias: bool,
) -> ConvTranspose {
    let c = conv_attrs(kernel, strides, pads, dilations, group, has_bias);
    ConvTranspose {
        kernel: c.kernel,
        strides: c.strides,
        pads: c.pads,
        dilations: c.dilations,
        output_padding: output_padding.to_vec(),
        group,
        has_bias,
    }
}

/// Pooling attributes in field order (see [`conv_attrs`]).
pub fn pool_attrs(
    kernel: &[usize],
    strides: &[usize],
    pads: &[usize],
    dilations: &[usize],
    ceil_mode: bool,
    count_include_pad: bool,
) -> Pool {
    let [kernel, strides, pads, dilations] = [kernel, strides, pads, dilations].map(<[_]>::to_vec);
    Pool {
        kernel,
        strides,
        pads,
        dilations,
        ceil_mode,
        count_include_pad,
    }
}

/// A non-overlapping `k`×`k` max pool (stride `k`, no padding): the CNNs' down-sampling.
pub fn max_pool(k: usize) -> Op {
    Op::MaxPool(pool_attrs(&[k, k], &[k, k], &[0; 4], &[1, 1], false, false))
}

/// `alpha · op(A) · op(B) + beta · C` with its flags in field order.
pub fn gemm(alpha: f32, beta: f32, trans_a: bool, trans_b: bool, has_c: bool) -> Op {
    let attrs = Gemm {
        alpha,
        beta,
        trans_a,
        trans_b,
        has_c,
    };
    Op::Gemm(attrs)
}

/// A Gemm (8 → 5, with a bias) over an input of 4 vectors and no batch axis (`[4, 8]`), as
/// after an LSTM whose steps a fully connected layer reads: once quantized, a bit-plane
/// linear layer the backends apply to every vector of its input.
pub fn sequence_gemm() -> Graph {
    let mut g = Graph::new("steps");
    let x = g.add_input("x", f32_ty(&[4, 8]));
    let w = f32c(&mut g, "w", &[8, 5], |i| (i as f32 * 0.71).sin());
    let b = g.add_constant(
        "b",
        Tensor::from_f32(vec![5], vec![0.1, -0.2, 0.3, 0.0, 0.5]).expect("length matches"),
    );
    let y = op(&mut g, "fc", gemm(1.0, 1.0, false, false, true), &[x, w, b]);
    g.set_outputs(vec![y]);
    strata_ir::verify(&g).expect("the graph verifies");
    g
}
