//! Convolution family: Conv and ConvTranspose (N-d, grouped, dilated, strided, padded).

use super::check::{self, Inferred};
use crate::text::fields::attr_fields;
use crate::text::{Attrs, ParseError};
use crate::Op;
use crate::{Dim, InferError, Shape, TensorType};

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

/// Checks the per-spatial-axis attribute lists shared by Conv, ConvTranspose and pooling.
pub(crate) fn check_window_attrs(
    spatial: usize,
    kernel: &[usize],
    strides: &[usize],
    pads: &[usize],
    dilations: &[usize],
) -> Result<(), InferError> {
    check::attr_len("kernel", kernel.len(), spatial)?;
    check::attr_len("strides", strides.len(), spatial)?;
    check::attr_len("pads", pads.len(), 2 * spatial)?;
    check::attr_len("dilations", dilations.len(), spatial)?;
    for (attr, list) in [
        ("kernel", kernel),
        ("strides", strides),
        ("dilations", dilations),
    ] {
        if list.contains(&0) {
            return Err(InferError::Attribute {
                attr,
                reason: "values must be at least 1".into(),
            });
        }
    }
    Ok(())
}

/// `(k - 1) * d + 1`, checked: the extent of a dilated kernel.
pub(crate) fn effective_kernel(k: usize, d: usize) -> Result<usize, InferError> {
    (k - 1)
        .checked_mul(d)
        .and_then(|x| x.checked_add(1))
        .ok_or_else(|| InferError::Attribute {
            attr: "dilations",
            reason: format!("kernel {k} with dilation {d} overflows"),
        })
}

/// Spatial dimensions of `x` (from axis 2), all of which must be known.
pub(crate) fn spatial_dims(x: &TensorType) -> Result<Vec<usize>, InferError> {
    x.shape.0[2..]
        .iter()
        .enumerate()
        .map(|(i, &d)| check::known(d, &format!("spatial dimension {i} of input 0")))
        .collect()
}

/// The attributes Conv and ConvTranspose share, for the input checks they share.
struct Window<'a> {
    kernel: &'a [usize],
    strides: &'a [usize],
    pads: &'a [usize],
    dilations: &'a [usize],
    group: usize,
    has_bias: bool,
}

impl Window<'_> {
    /// Checks arity, element types, ranks, window attributes, `group` and that the weight's
    /// spatial dims equal `kernel`; returns `(x, w, spatial rank, weight dims)`.
    fn check_inputs<'t>(
        &self,
        inputs: &[&'t TensorType],
    ) -> Result<(&'t TensorType, &'t TensorType, usize, Vec<usize>), InferError> {
        let n = 2 + self.has_bias as usize;
        check::arity(inputs, (n, Some(n)))?;
        let (x, w) = (inputs[0], inputs[1]);
        check::float(0, x)?;
        check::same_dtype(1, w, x.dtype)?;
        check::rank_at_least(0, x, 3)?;
        check::rank_eq(1, w, x.rank())?;
        let spatial = x.rank() - 2;
        check_window_attrs(
            spatial,
            self.kernel,
            self.strides,
            self.pads,
            self.dilations,
        )?;
        if self.group == 0 {
            return Err(InferError::Attribute {
                attr: "group",
                reason: "must be at least 1".into(),
            });
        }
        let wdims: Vec<usize> = w
            .shape
            .0
            .iter()
            .map(|&d| check::known(d, "the weight shape"))
            .collect::<Result<_, _>>()?;
        if wdims[2..] != self.kernel[..] {
            return Err(InferError::ShapeMismatch {
                input: 1,
                shape: w.shape.clone(),
                reason: format!("kernel attribute is {:?}", self.kernel),
            });
        }
        Ok((x, w, spatial, wdims))
    }
}

/// The optional bias (input 2) must be `[m]` of the input's element type.
fn check_bias(
    inputs: &[&TensorType],
    has_bias: bool,
    x: &TensorType,
    m: usize,
) -> Result<(), InferError> {
    if has_bias {
        let b = inputs[2];
        check::same_dtype(2, b, x.dtype)?;
        if b.shape != Shape::known(&[m]) {
            return Err(InferError::ShapeMismatch {
                input: 2,
                shape: b.shape.clone(),
                reason: format!("bias must be [{m}]"),
            });
        }
    }
    Ok(())
}

impl Conv {
    /// ONNX Conv: `out = floor((in + pb + pe - ((k-1)·d + 1)) / s) + 1` per spatial axis.
    pub fn infer(&self, inputs: &[&TensorType]) -> Inferred {
        let window = Window {
            kernel: &self.kernel,
            strides: &self.strides,
            pads: &self.pads,
            dilations: &self.dilations,
            group: self.group,
            has_bias: self.has_bias,
        };
        let (x, w, spatial, wdims) = window.check_inputs(inputs)?;
        let m = wdims[0];
        let c = check::known(x.shape.0[1], "the channel dimension of input 0")?;
        if wdims[1].checked_mul(self.group) != Some(c) {
            return Err(InferError::ShapeMismatch {
                input: 1,
                shape: w.shape.clone(),
                reason: format!(
                    "input has {c} channels, weight expects {} × group {}",
                    wdims[1], self.group
                ),
            });
        }
        if m % self.group != 0 {
            return Err(InferError::ShapeMismatch {
                input: 1,
                shape: w.shape.clone(),
                reason: format!("{m} output channels not divisible by group {}", self.group),
            });
        }
        check_bias(inputs, self.has_bias, x, m)?;
        let ins = spatial_dims(x)?;
        let mut out = vec![x.shape.0[0], Dim::Known(m)];
        for (i, &in_i) in ins.iter().enumerate() {
            let ek = effective_kernel(self.kernel[i], self.dilations[i])?;
            let padded = in_i as u128 + self.pads[i] as u128 + self.pads[spatial + i] as u128;
            let ek = ek as u128;
            if padded < ek {
                return Err(InferError::ShapeMismatch {
                    input: 0,
                    shape: x.shape.clone(),
                    reason: format!(
                        "spatial axis {i}: padded size {padded} is smaller than the dilated kernel {ek}"
                    ),
                });
            }
            out.push(Dim::Known(
                ((padded - ek) / self.strides[i] as u128 + 1) as usize,
            ));
        }
        Ok(vec![TensorType::new(x.dtype, Shape(out))])
    }
}

impl ConvTranspose {
    /// ONNX ConvTranspose: `out = s·(in - 1) + output_padding + ((k-1)·d + 1) - pb - pe`.
    pub fn infer(&self, inputs: &[&TensorType]) -> Inferred {
        let window = Window {
            kernel: &self.kernel,
            strides: &self.strides,
            pads: &self.pads,
            dilations: &self.dilations,
            group: self.group,
            has_bias: self.has_bias,
        };
        let (x, w, spatial, wdims) = window.check_inputs(inputs)?;
        check::attr_len("output_padding", self.output_padding.len(), spatial)?;
        let c = check::known(x.shape.0[1], "the channel dimension of input 0")?;
        if wdims[0] != c {
            return Err(InferError::ShapeMismatch {
                input: 1,
                shape: w.shape.clone(),
                reason: format!("input has {c} channels, weight expects {}", wdims[0]),
            });
        }
        if c % self.group != 0 {
            return Err(InferError::ShapeMismatch {
                input: 0,
                shape: x.shape.clone(),
                reason: format!("{c} channels not divisible by group {}", self.group),
            });
        }
        let m = wdims[1]
            .checked_mul(self.group)
            .ok_or_else(|| InferError::Attribute {
                attr: "group",
                reason: "output channel count overflows".into(),
            })?;
        check_bias(inputs, self.has_bias, x, m)?;
        let ins = spatial_dims(x)?;
        let mut out = vec![x.shape.0[0], Dim::Known(m)];
        for (i, &in_i) in ins.iter().enumerate() {
            let ek = effective_kernel(self.kernel[i], self.dilations[i])? as u128;
            let full = (self.strides[i] as u128) * (in_i.max(1) as u128 - 1)
                + self.output_padding[i] as u128
                + ek;
            let cut = self.pads[i] as u128 + self.pads[spatial + i] as u128;
            if in_i == 0 || full <= cut || full - cut > usize::MAX as u128 {
                return Err(InferError::ShapeMismatch {
                    input: 0,
                    shape: x.shape.clone(),
                    reason: format!(
                        "spatial axis {i}: pads {cut} leave no output (full size {full})"
                    ),
                });
            }
            out.push(Dim::Known((full - cut) as usize));
        }
        Ok(vec![TensorType::new(x.dtype, Shape(out))])
    }
}

// Text form of the convolution ops: their attributes are their fields, in field order.
attr_fields!(Conv {
    kernel,
    strides,
    pads,
    dilations,
    group,
    has_bias
});
attr_fields!(ConvTranspose {
    kernel,
    strides,
    pads,
    dilations,
    output_padding,
    group,
    has_bias
});

/// Rebuilds a convolution op from its mnemonic and attributes; `None` for other mnemonics.
pub(crate) fn from_text(mnemonic: &str, a: &mut Attrs) -> Option<Result<Op, ParseError>> {
    match mnemonic {
        "conv" => Some(Conv::from_attrs(a).map(Op::Conv)),
        "conv_transpose" => Some(ConvTranspose::from_attrs(a).map(Op::ConvTranspose)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::check::{assert_infers, assert_rejects, run};
    use crate::Op;

    fn conv(
        kernel: &[usize],
        strides: &[usize],
        pads: &[usize],
        dil: &[usize],
        group: usize,
        bias: bool,
    ) -> Op {
        Op::Conv(Conv {
            kernel: kernel.to_vec(),
            strides: strides.to_vec(),
            pads: pads.to_vec(),
            dilations: dil.to_vec(),
            group,
            has_bias: bias,
        })
    }

    /// A ConvTranspose with unit dilations.
    fn conv_t(
        kernel: &[usize],
        strides: &[usize],
        pads: &[usize],
        out_pad: &[usize],
        group: usize,
        bias: bool,
    ) -> Op {
        Op::ConvTranspose(ConvTranspose {
            kernel: kernel.to_vec(),
            strides: strides.to_vec(),
            pads: pads.to_vec(),
            dilations: vec![1; kernel.len()],
            output_padding: out_pad.to_vec(),
            group,
            has_bias: bias,
        })
    }

    #[test]
    fn conv_output_sizes() {
        assert_infers(&[
            (
                &conv(&[3, 3], &[1, 1], &[1, 1, 1, 1], &[1, 1], 1, true),
                &["f32[N,1,28,28]", "f32[32,1,3,3]", "f32[32]"],
                &["f32[N,32,28,28]"],
            ),
            // stride 2, asymmetric pads, dilation 2: (7 + 0 + 1 - 5) / 2 + 1 = 2; (9 + 1 + 0 - 3)/2 + 1 = 4
            (
                &conv(&[3, 3], &[2, 2], &[0, 1, 1, 0], &[2, 1], 1, false),
                &["f32[2,4,7,9]", "f32[8,4,3,3]"],
                &["f32[2,8,2,4]"],
            ),
            // depthwise, 1-D
            (
                &conv(&[5], &[1], &[0, 0], &[1], 6, false),
                &["f64[1,6,10]", "f64[12,1,5]"],
                &["f64[1,12,6]"],
            ),
        ]);
    }

    #[test]
    fn conv_errors() {
        let op = conv(&[3, 3], &[1, 1], &[0, 0, 0, 0], &[1, 1], 1, false);
        assert_rejects!(&op, {
            ["i32[1,1,5,5]", "i32[1,1,3,3]"] => InferError::DType { input: 0, .. },
            ["f32[1,2,5,5]", "f32[1,1,3,3]"] => InferError::ShapeMismatch { input: 1, .. },
            ["f32[1,1,2,5]", "f32[1,1,3,3]"] => InferError::ShapeMismatch { input: 0, .. },
            ["f32[1,1,N,5]", "f32[1,1,3,3]"] => InferError::Batch(_),
            ["f32[1,1,5,5]", "f32[1,1,2,2]"] => InferError::ShapeMismatch { input: 1, .. },
            ["f32[1,1,5,5]"] => InferError::Arity { .. },
        });
        let bad_kernel = conv(&[3], &[1, 1], &[0, 0, 0, 0], &[1, 1], 1, false);
        let bad_strides = conv(&[3, 3], &[0, 1], &[0, 0, 0, 0], &[1, 1], 1, false);
        for (bad, attr) in [(bad_kernel, "kernel"), (bad_strides, "strides")] {
            let got = run(&bad, &["f32[1,1,5,5]", "f32[1,1,3,3]"]);
            assert!(matches!(got, Err(InferError::Attribute { attr: a, .. }) if a == attr));
        }
        let biased = conv(&[3, 3], &[1, 1], &[0, 0, 0, 0], &[1, 1], 1, true);
        assert_rejects!(&biased, {
            ["f32[1,1,5,5]", "f32[1,1,3,3]", "f32[2]"] => InferError::ShapeMismatch { input: 2, .. },
        });
    }

    #[test]
    fn conv_transpose_output_sizes() {
        assert_infers(&[
            // ONNX test_convtranspose: [1,1,3,3] with w [1,2,3,3] → [1,2,5,5]
            (
                &conv_t(&[3, 3], &[1, 1], &[0, 0, 0, 0], &[0, 0], 1, false),
                &["f32[N,1,3,3]", "f32[1,2,3,3]"],
                &["f32[N,2,5,5]"],
            ),
            // strides 3,2 with output_padding 1,1 and pads: 3*(3-1)+1+3-0-0 = 10, 2*(3-1)+1+3-1-1 = 6
            (
                &conv_t(&[3, 3], &[3, 2], &[0, 1, 0, 1], &[1, 1], 2, true),
                &["f32[1,2,3,3]", "f32[2,2,3,3]", "f32[4]"],
                &["f32[1,4,10,6]"],
            ),
        ]);
        let op = conv_t(&[1], &[1], &[1, 1], &[0], 1, false);
        assert_rejects!(&op, {
            ["f32[1,1,2]", "f32[1,1,1]"] => InferError::ShapeMismatch { input: 0, .. },
        });
    }
}
