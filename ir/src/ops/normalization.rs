//! Normalisation ops: inference-mode BatchNormalization and Softmax.

/// Inference-mode batch normalisation. Inputs: `x [N, C, …]`, `scale`, `bias`, `mean`, `var` (all `[C]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchNorm {
    pub epsilon: f32,
}

/// Softmax along `axis` (non-negative).
///
/// `coerce_2d` keeps the opset < 13 semantics: the input is viewed as 2-D
/// `[prod(dims[..axis]), prod(dims[axis..])]` and normalised over the second axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Softmax {
    pub axis: usize,
    pub coerce_2d: bool,
}
