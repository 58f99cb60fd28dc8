//! The op set. One file per op family holds the attribute types and their shape inference;
//! this module ties them into [`Op`], the payload of every operation node.

mod batch;
pub mod bitplane;
mod check;
pub mod conv;
mod cost;
pub mod elementwise;
pub mod layout;
pub mod linear;
pub mod normalization;
pub mod pool;
pub mod qdq;
pub mod recurrent;
pub mod reduce;
pub mod resize;

pub use bitplane::{Bitplane, BitplaneKernel, PlaneSpec};
pub use conv::{Conv, ConvTranspose};
pub use cost::WeightUse;
pub use elementwise::{BinaryOp, Clip, CompareOp, UnaryOp, VariadicOp};
pub use layout::{Pad, PadMode, Reshape, Slice, Split};
pub use linear::Gemm;
pub use normalization::{BatchNorm, Softmax};
pub use pool::{GlobalPoolKind, Pool};
pub use qdq::Qdq;
pub use recurrent::{Direction, Gru, Lstm};
pub use reduce::{ArgMax, Reduce, ReduceMean};
pub use resize::{CoordMode, NearestMode, Resize, ResizeMode};

use crate::{DType, InferError, TensorType};

/// An operation. Inputs are positional (see each variant); optional ONNX inputs that are
/// absent are recorded in the attributes (`has_bias`, `has_c`, …) so inputs stay dense.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `x, w[, b]`
    Conv(Conv),
    /// `x, w[, b]`
    ConvTranspose(ConvTranspose),
    /// `a, b[, c]`
    Gemm(Gemm),
    /// `a, b` — numpy matmul semantics (batched, broadcasting leading dims, 1-D promotion).
    MatMul,
    /// `a, b` — broadcasting.
    Binary(BinaryOp),
    /// `x0, x1, …` (at least one) — all broadcast together.
    Variadic(VariadicOp),
    /// `x`
    Unary(UnaryOp),
    /// `a, b` — broadcasting; bool out.
    Compare(CompareOp),
    /// `cond, x, y` — all three broadcast together.
    Where,
    /// `x, slope` — slope unidirectionally broadcast to x.
    PRelu,
    /// `x[, min][, max]`
    Clip(Clip),
    /// `x, scale, bias, mean, var`
    BatchNorm(BatchNorm),
    /// `x`
    Softmax(Softmax),
    /// `x`
    MaxPool(Pool),
    /// `x`
    AveragePool(Pool),
    /// `x` → `[N, C, 1, …]`
    GlobalPool(GlobalPoolKind),
    /// `x` → 2-D `[prod(dims[..axis]), prod(dims[axis..])]`
    Flatten { axis: usize },
    /// `x`
    Reshape(Reshape),
    /// `x`
    Transpose { perm: Vec<usize> },
    /// `x0, x1, …` (at least one)
    Concat { axis: usize },
    /// `x`
    Pad(Pad),
    /// `x`
    Squeeze { axes: Vec<usize> },
    /// `x` — `axes` index the output.
    Unsqueeze { axes: Vec<usize> },
    /// `x`
    Identity,
    /// `x` → i64 `[end - start]`, the dimensions `start..end` of x's shape.
    Shape { start: usize, end: usize },
    /// `data, indices` — indices of any integer type, negative values count from the end.
    Gather { axis: usize },
    /// `x`
    Slice(Slice),
    /// `x` → one output per size.
    Split(Split),
    /// `x`
    ReduceMean(ReduceMean),
    /// `x`
    ReduceMax(Reduce),
    /// `x`
    ReduceSum(Reduce),
    /// `x` → i64 indices.
    ArgMax(ArgMax),
    /// `x` — broadcast to the numpy broadcast of its shape and `shape`.
    Expand { shape: Vec<usize> },
    /// `x`
    Resize(Resize),
    /// `x, scale, zero_point` → the zero point's (quantized) type.
    QuantizeLinear(Qdq),
    /// `x, scale, zero_point` → the scale's (float) type.
    DequantizeLinear(Qdq),
    /// `x`
    Cast { to: DType },
    /// `x, w, r[, b][, initial_h][, initial_c][, p]` → `y, y_h, y_c` (see [`recurrent`]).
    Lstm(Lstm),
    /// `x, w, r[, b][, initial_h]` → `y, y_h` (see [`recurrent`]).
    Gru(Gru),
    /// `x, planes, alpha, beta, bias, act` — a Conv or Linear layer with vertically layered
    /// weights (see [`bitplane`]).
    Bitplane(Bitplane),
}

impl Op {
    /// The op's name in the text form (`conv`, `max_pool`, …).
    pub fn mnemonic(&self) -> &'static str {
        match self {
            Op::Conv(_) => "conv",
            Op::ConvTranspose(_) => "conv_transpose",
            Op::Gemm(_) => "gemm",
            Op::MatMul => "matmul",
            Op::Binary(BinaryOp::Add) => "add",
            Op::Binary(BinaryOp::Sub) => "sub",
            Op::Binary(BinaryOp::Mul) => "mul",
            Op::Binary(BinaryOp::Div) => "div",
            Op::Binary(BinaryOp::Pow) => "pow",
            Op::Compare(CompareOp::Equal) => "equal",
            Op::Compare(CompareOp::Greater) => "greater",
            Op::Compare(CompareOp::Less) => "less",
            Op::Compare(CompareOp::GreaterOrEqual) => "greater_equal",
            Op::Compare(CompareOp::LessOrEqual) => "less_equal",
            Op::Where => "where",
            Op::Variadic(VariadicOp::Max) => "max",
            Op::Variadic(VariadicOp::Min) => "min",
            Op::Unary(UnaryOp::Relu) => "relu",
            Op::Unary(UnaryOp::LeakyRelu { .. }) => "leaky_relu",
            Op::Unary(UnaryOp::Sigmoid) => "sigmoid",
            Op::Unary(UnaryOp::HardSigmoid { .. }) => "hard_sigmoid",
            Op::Unary(UnaryOp::HardSwish) => "hard_swish",
            Op::Unary(UnaryOp::Tanh) => "tanh",
            Op::Unary(UnaryOp::Erf) => "erf",
            Op::Unary(UnaryOp::Exp) => "exp",
            Op::Unary(UnaryOp::Log) => "log",
            Op::Unary(UnaryOp::Sqrt) => "sqrt",
            Op::Unary(UnaryOp::Neg) => "neg",
            Op::Unary(UnaryOp::Abs) => "abs",
            Op::Unary(UnaryOp::Reciprocal) => "reciprocal",
            Op::Unary(UnaryOp::Floor) => "floor",
            Op::Unary(UnaryOp::Ceil) => "ceil",
            Op::PRelu => "prelu",
            Op::Clip(_) => "clip",
            Op::BatchNorm(_) => "batch_norm",
            Op::Softmax(_) => "softmax",
            Op::MaxPool(_) => "max_pool",
            Op::AveragePool(_) => "average_pool",
            Op::GlobalPool(GlobalPoolKind::Average) => "global_average_pool",
            Op::GlobalPool(GlobalPoolKind::Max) => "global_max_pool",
            Op::Flatten { .. } => "flatten",
            Op::Reshape(_) => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Concat { .. } => "concat",
            Op::Pad(_) => "pad",
            Op::Squeeze { .. } => "squeeze",
            Op::Unsqueeze { .. } => "unsqueeze",
            Op::Identity => "identity",
            Op::Shape { .. } => "shape",
            Op::Gather { .. } => "gather",
            Op::Slice(_) => "slice",
            Op::Split(_) => "split",
            Op::ReduceMean(_) => "reduce_mean",
            Op::ReduceMax(_) => "reduce_max",
            Op::ReduceSum(_) => "reduce_sum",
            Op::ArgMax(_) => "arg_max",
            Op::Expand { .. } => "expand",
            Op::Resize(_) => "resize",
            Op::QuantizeLinear(_) => "quantize_linear",
            Op::DequantizeLinear(_) => "dequantize_linear",
            Op::Cast { .. } => "cast",
            Op::Lstm(_) => "lstm",
            Op::Gru(_) => "gru",
            Op::Bitplane(Bitplane {
                kernel: BitplaneKernel::Conv(_),
                ..
            }) => "bitplane_conv",
            Op::Bitplane(Bitplane {
                kernel: BitplaneKernel::Linear,
                ..
            }) => "bitplane_linear",
        }
    }

    /// How many inputs the op takes given its attributes: `(min, max)`; `max = None` is unbounded.
    pub fn input_arity(&self) -> (usize, Option<usize>) {
        self.arity().0
    }

    /// Checks an input count against [`Op::input_arity`]; the error is the expected count as
    /// text (`2`, `1 to 3`, `at least 1`).
    pub fn check_input_count(&self, got: usize) -> Result<(), String> {
        check::count(self.input_arity(), got)
    }

    /// How many outputs the op produces: one, except Split (one per size).
    pub fn num_outputs(&self) -> usize {
        self.arity().1
    }

    /// Inputs `(min, max)` and outputs, in one exhaustive match so a new op states both.
    fn arity(&self) -> ((usize, Option<usize>), usize) {
        let exact = |n| ((n, Some(n)), 1);
        let exact_n = |n, outs| ((n, Some(n)), outs);
        match self {
            Op::Conv(c) => exact(2 + c.has_bias as usize),
            Op::ConvTranspose(c) => exact(2 + c.has_bias as usize),
            Op::Gemm(g) => exact(2 + g.has_c as usize),
            Op::MatMul | Op::Binary(_) | Op::Compare(_) | Op::PRelu | Op::Gather { .. } => exact(2),
            Op::Where | Op::QuantizeLinear(_) | Op::DequantizeLinear(_) => exact(3),
            Op::Clip(c) => exact(1 + c.has_min as usize + c.has_max as usize),
            Op::BatchNorm(_) => exact(5),
            Op::Bitplane(_) => exact(bitplane::NUM_INPUTS),
            Op::Concat { .. } | Op::Variadic(_) => ((1, None), 1),
            Op::Split(s) => ((1, Some(1)), s.sizes.len()),
            Op::Lstm(l) => exact_n(l.num_inputs(), 3),
            Op::Gru(g) => exact_n(g.num_inputs(), 2),
            Op::Unary(_)
            | Op::Softmax(_)
            | Op::MaxPool(_)
            | Op::AveragePool(_)
            | Op::GlobalPool(_)
            | Op::Flatten { .. }
            | Op::Reshape(_)
            | Op::Transpose { .. }
            | Op::Pad(_)
            | Op::Squeeze { .. }
            | Op::Unsqueeze { .. }
            | Op::Identity
            | Op::Shape { .. }
            | Op::Slice(_)
            | Op::ReduceMean(_)
            | Op::ReduceMax(_)
            | Op::ReduceSum(_)
            | Op::ArgMax(_)
            | Op::Expand { .. }
            | Op::Resize(_)
            | Op::Cast { .. } => exact(1),
        }
    }
}

impl Op {
    /// Output types from input types, following the ONNX operator semantics with Strata's
    /// static shapes (see each family module for the rules). Used by the frontend to type
    /// new nodes and by the verifier to check declared types. Every output is checked
    /// against [`crate::limits`] at batch size 1, so a graph never declares a value too large
    /// to hold (e.g. a Gemm with an empty reduction axis and 2^32 outputs).
    pub fn infer(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, InferError> {
        let outputs = self.infer_unchecked(inputs)?;
        for (output, ty) in outputs.iter().enumerate() {
            crate::limits::check_type(ty, 1)
                .map_err(|source| InferError::TooLarge { output, source })?;
        }
        Ok(outputs)
    }

    fn infer_unchecked(&self, inputs: &[&TensorType]) -> Result<Vec<TensorType>, InferError> {
        match self {
            Op::Conv(c) => c.infer(inputs),
            Op::ConvTranspose(c) => c.infer(inputs),
            Op::Gemm(g) => g.infer(inputs),
            Op::MatMul => linear::infer_matmul(inputs),
            Op::Binary(b) => b.infer(inputs),
            Op::Variadic(v) => v.infer(inputs),
            Op::Unary(u) => u.infer(inputs),
            Op::Compare(c) => c.infer(inputs),
            Op::Where => elementwise::infer_where(inputs),
            Op::PRelu => elementwise::infer_prelu(inputs),
            Op::Clip(c) => c.infer(inputs),
            Op::BatchNorm(b) => b.infer(inputs),
            Op::Softmax(s) => s.infer(inputs),
            Op::MaxPool(p) => p.infer(inputs, true),
            Op::AveragePool(p) => p.infer(inputs, false),
            Op::GlobalPool(g) => g.infer(inputs),
            Op::Flatten { axis } => layout::infer_flatten(*axis, inputs),
            Op::Reshape(r) => r.infer(inputs),
            Op::Transpose { perm } => layout::infer_transpose(perm, inputs),
            Op::Concat { axis } => layout::infer_concat(*axis, inputs),
            Op::Pad(p) => p.infer(inputs),
            Op::Squeeze { axes } => layout::infer_squeeze(axes, inputs),
            Op::Unsqueeze { axes } => layout::infer_unsqueeze(axes, inputs),
            Op::Identity => {
                check::arity(inputs, (1, Some(1)))?;
                Ok(vec![inputs[0].clone()])
            }
            Op::Shape { start, end } => layout::infer_shape(*start, *end, inputs),
            Op::Gather { axis } => layout::infer_gather(*axis, inputs),
            Op::Slice(s) => s.infer(inputs),
            Op::Split(s) => s.infer(inputs),
            Op::ReduceMean(r) | Op::ReduceSum(r) => r.infer(inputs, false),
            Op::ReduceMax(r) => r.infer(inputs, true),
            Op::ArgMax(a) => a.infer(inputs),
            Op::Expand { shape } => layout::infer_expand(shape, inputs),
            Op::Resize(r) => r.infer(inputs),
            Op::QuantizeLinear(q) => q.infer_quantize(inputs),
            Op::DequantizeLinear(q) => q.infer_dequantize(inputs),
            Op::Cast { to } => {
                check::arity(inputs, (1, Some(1)))?;
                Ok(vec![TensorType::new(*to, inputs[0].shape.clone())])
            }
            Op::Lstm(l) => l.infer(inputs),
            Op::Gru(g) => g.infer(inputs),
            Op::Bitplane(b) => b.infer(inputs),
        }
    }
}

impl Op {
    /// The op's attributes as the text form prints them, in a fixed order (field order).
    pub fn text_attrs(&self) -> Vec<(&'static str, crate::text::AttrValue)> {
        use crate::text::AttrValue;
        match self {
            Op::Conv(c) => c.text_attrs(),
            Op::ConvTranspose(c) => c.text_attrs(),
            Op::Gemm(g) => g.text_attrs(),
            Op::Unary(u) => u.text_attrs(),
            Op::Clip(c) => c.text_attrs(),
            Op::BatchNorm(b) => b.text_attrs(),
            Op::Softmax(s) => s.text_attrs(),
            Op::MaxPool(p) | Op::AveragePool(p) => p.text_attrs(),
            Op::Flatten { axis } | Op::Concat { axis } | Op::Gather { axis } => {
                vec![("axis", AttrValue::usize(*axis))]
            }
            Op::Reshape(r) => r.text_attrs(),
            Op::Transpose { perm } => vec![("perm", AttrValue::usizes(perm))],
            Op::Pad(p) => p.text_attrs(),
            Op::Squeeze { axes } | Op::Unsqueeze { axes } => {
                vec![("axes", AttrValue::usizes(axes))]
            }
            Op::Shape { start, end } => vec![
                ("start", AttrValue::usize(*start)),
                ("end", AttrValue::usize(*end)),
            ],
            Op::Slice(s) => s.text_attrs(),
            Op::Split(s) => s.text_attrs(),
            Op::ReduceMean(r) | Op::ReduceMax(r) | Op::ReduceSum(r) => r.text_attrs(),
            Op::ArgMax(a) => a.text_attrs(),
            Op::Expand { shape } => vec![("shape", AttrValue::usizes(shape))],
            Op::Resize(r) => r.text_attrs(),
            Op::QuantizeLinear(q) | Op::DequantizeLinear(q) => {
                vec![("axis", AttrValue::usize(q.axis))]
            }
            Op::Cast { to } => vec![("to", AttrValue::dtype(*to))],
            Op::Bitplane(b) => bitplane::text_attrs(b),
            Op::Lstm(l) => l.text_attrs(),
            Op::Gru(g) => g.text_attrs(),
            Op::MatMul
            | Op::Binary(_)
            | Op::Variadic(_)
            | Op::Compare(_)
            | Op::Where
            | Op::PRelu
            | Op::GlobalPool(_)
            | Op::Identity => vec![],
        }
    }

    /// Rebuilds an op from its mnemonic and text attributes; `None` for an unknown mnemonic.
    /// Attributes left untaken are reported by the caller as unknown.
    pub fn from_text(
        mnemonic: &str,
        attrs: &mut crate::text::Attrs,
    ) -> Option<Result<Op, crate::text::ParseError>> {
        conv::from_text(mnemonic, attrs)
            .or_else(|| linear::from_text(mnemonic, attrs))
            .or_else(|| elementwise::from_text(mnemonic, attrs))
            .or_else(|| normalization::from_text(mnemonic, attrs))
            .or_else(|| pool::from_text(mnemonic, attrs))
            .or_else(|| layout::from_text(mnemonic, attrs))
            .or_else(|| reduce::from_text(mnemonic, attrs))
            .or_else(|| resize::from_text(mnemonic, attrs))
            .or_else(|| recurrent::from_text(mnemonic, attrs))
            .or_else(|| match mnemonic {
                "quantize_linear" => Some(
                    attrs
                        .usize("axis")
                        .map(|axis| Op::QuantizeLinear(Qdq { axis })),
                ),
                "dequantize_linear" => Some(
                    attrs
                        .usize("axis")
                        .map(|axis| Op::DequantizeLinear(Qdq { axis })),
                ),
                _ => None,
            })
            .or_else(|| bitplane::from_text(mnemonic, attrs))
    }
}
