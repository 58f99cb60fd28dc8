//! Element-wise ops: broadcasting binary arithmetic and the activation functions.

/// Binary arithmetic with numpy-style (multidirectional) broadcasting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
}

/// One-input element-wise functions; parameters are ONNX's attributes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnaryOp {
    Relu,
    LeakyRelu { alpha: f32 },
    Sigmoid,
    HardSigmoid { alpha: f32, beta: f32 },
    HardSwish,
    Tanh,
    Erf,
}

/// Clip to `[min, max]`. Inputs: `x`, then `min` if `has_min`, then `max` if `has_max`
/// (both scalars). Opset < 11 attribute bounds become constant inputs in the frontend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Clip {
    pub has_min: bool,
    pub has_max: bool,
}
