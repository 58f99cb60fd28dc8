//! Convolution family: Conv and ConvTranspose (N-d, grouped, dilated, strided, padded).

/// A convolution. Inputs: `x [N, C, spatial…]`, `w [M, C/group, k…]`, optional `b [M]`.
///
/// Padding is always explicit: the frontend resolves ONNX `auto_pad` against the (static)
/// spatial sizes, so every later stage sees one form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Conv {
    /// Kernel spatial size (redundant with the weight's type; kept so the op reads alone).
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    /// `[begin_0, begin_1, …, end_0, end_1, …]`, ONNX order.
    pub pads: Vec<usize>,
    pub dilations: Vec<usize>,
    pub group: usize,
    pub has_bias: bool,
}

/// A transposed convolution. Inputs: `x [N, C, spatial…]`, `w [C, M/group, k…]`, optional `b [M]`.
///
/// ONNX `output_shape` and `auto_pad` are resolved by the frontend into `pads` and
/// `output_padding`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ConvTranspose {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    /// `[begin_0, …, end_0, …]`, ONNX order.
    pub pads: Vec<usize>,
    pub dilations: Vec<usize>,
    pub output_padding: Vec<usize>,
    pub group: usize,
    pub has_bias: bool,
}
