//! Resize (ONNX `Resize`, opset 10+): nearest and (multi-)linear interpolation with the
//! common coordinate transformations, as CNN upsampling (YOLO, FPN) uses it.

use super::check::{self, Inferred};
use crate::text::fields::{attr_enum, attr_fields};
use crate::text::{Attrs, ParseError};
use crate::Op;
use crate::{Dim, InferError, Shape, TensorType};

/// Resize with static output sizes. Output axis `i` has `sizes[i]` elements, except that an
/// axis with `scales[i] == 1` keeps its input size (ONNX gives such an axis its input size
/// whether the model gave scales or sizes; it is how the batch axis stays free, and the
/// frontend writes 0 into `sizes` there). `scales[i]` is the scale the coordinate
/// transformation divides by: the model's scale, or `sizes[i] / input[i]` when it gave sizes.
#[derive(Debug, Clone)]
pub struct Resize {
    pub mode: ResizeMode,
    pub coord: CoordMode,
    pub nearest: NearestMode,
    pub scales: Vec<f32>,
    pub sizes: Vec<usize>,
}

/// How output values are made from input values (ONNX `mode`; `cubic` is not supported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResizeMode {
    Nearest,
    /// Linear along each resized axis (bilinear on NCHW images).
    Linear,
}

/// Where output index `x` samples the input (ONNX `coordinate_transformation_mode`, without
/// `tf_crop_and_resize`). `s` is the scale, `n`/`m` the input/output lengths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoordMode {
    /// `(x + 0.5) / s - 0.5`
    HalfPixel,
    /// half_pixel shifted so the result stays centred when `m / s` is not `n` (opset 19).
    HalfPixelSymmetric,
    /// half_pixel, but −0.5 when `s · n == 1`.
    PytorchHalfPixel,
    /// `x · (n - 1) / (s · n - 1)`, 0 when `s · n == 1`.
    AlignCorners,
    /// `x / s` (the only behaviour of Resize-10).
    Asymmetric,
    /// `(x + 0.5) / s` (nearest only; Resize 11–12).
    TfHalfPixelForNn,
}

/// How `nearest` rounds a fractional input coordinate (ONNX `nearest_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

impl Resize {
    /// Same element type (float), same rank; each axis resized per the struct's rule. The
    /// batch axis must keep its size (scale 1).
    pub fn infer(&self, inputs: &[&TensorType]) -> Inferred {
        let x = check::sole(inputs)?;
        check::float(0, x)?;
        let r = x.rank();
        check::attr_len("scales", self.scales.len(), r)?;
        check::attr_len("sizes", self.sizes.len(), r)?;
        if let Some(s) = self.scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(InferError::Attribute {
                attr: "scales",
                reason: format!("{s} is not a positive finite scale"),
            });
        }
        if self.mode == ResizeMode::Linear && self.coord == CoordMode::TfHalfPixelForNn {
            return Err(InferError::Attribute {
                attr: "coord",
                reason: "tf_half_pixel_for_nn is defined for nearest mode only".into(),
            });
        }
        let mut dims = Vec::with_capacity(r);
        for (i, &d) in x.shape.0.iter().enumerate() {
            let keep = self.scales[i] == 1.0;
            dims.push(match d {
                Dim::Batch if keep => Dim::Batch,
                Dim::Batch => {
                    return Err(InferError::Batch(format!(
                        "axis {i} is the batch dimension and cannot be resized (scale {})",
                        self.scales[i]
                    )))
                }
                Dim::Known(n) if keep => Dim::Known(n),
                Dim::Known(n) if n == 0 && self.sizes[i] > 0 => {
                    return Err(InferError::Attribute {
                        attr: "sizes",
                        reason: format!("axis {i} is empty and cannot be resized"),
                    })
                }
                Dim::Known(_) => Dim::Known(self.sizes[i]),
            });
        }
        Ok(vec![TensorType::new(x.dtype, Shape(dims))])
    }
}

attr_fields!(Resize {
    mode,
    coord,
    nearest,
    scales,
    sizes
});
attr_enum!(ResizeMode, "nearest or linear", [Nearest => "nearest", Linear => "linear"]);
attr_enum!(
    CoordMode,
    "a coordinate transformation mode",
    [
        HalfPixel => "half_pixel",
        HalfPixelSymmetric => "half_pixel_symmetric",
        PytorchHalfPixel => "pytorch_half_pixel",
        AlignCorners => "align_corners",
        Asymmetric => "asymmetric",
        TfHalfPixelForNn => "tf_half_pixel_for_nn",
    ]
);
attr_enum!(
    NearestMode,
    "a nearest mode",
    [
        RoundPreferFloor => "round_prefer_floor",
        RoundPreferCeil => "round_prefer_ceil",
        Floor => "floor",
        Ceil => "ceil",
    ]
);

/// Bitwise on the scales (see [`crate::ops::Gemm`]'s `PartialEq`).
impl PartialEq for Resize {
    fn eq(&self, o: &Self) -> bool {
        self.mode == o.mode
            && self.coord == o.coord
            && self.nearest == o.nearest
            && self.sizes == o.sizes
            && self.scales.len() == o.scales.len()
            && self
                .scales
                .iter()
                .zip(&o.scales)
                .all(|(a, b)| a.to_bits() == b.to_bits())
    }
}

/// Rebuilds a Resize from its mnemonic and attributes; `None` for other mnemonics.
pub(crate) fn from_text(mnemonic: &str, a: &mut Attrs) -> Option<Result<Op, ParseError>> {
    match mnemonic {
        "resize" => Some(Resize::from_attrs(a).map(Op::Resize)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::check::run;

    fn resize(scales: &[f32], sizes: &[usize]) -> Op {
        Op::Resize(Resize {
            mode: ResizeMode::Nearest,
            coord: CoordMode::Asymmetric,
            nearest: NearestMode::Floor,
            scales: scales.to_vec(),
            sizes: sizes.to_vec(),
        })
    }

    #[test]
    fn shapes() {
        let up = resize(&[1.0, 1.0, 2.0, 2.0], &[0, 3, 8, 10]);
        assert_eq!(run(&up, &["f32[N,3,4,5]"]).unwrap(), ["f32[N,3,8,10]"]);
        assert!(matches!(
            run(&resize(&[2.0, 1.0], &[4, 3]), &["f32[N,3]"]),
            Err(InferError::Batch(_))
        ));
        assert!(matches!(
            run(&resize(&[1.0, 0.0], &[2, 3]), &["f32[2,3]"]),
            Err(InferError::Attribute { attr: "scales", .. })
        ));
        assert!(matches!(
            run(&resize(&[1.0], &[2]), &["f32[2,3]"]),
            Err(InferError::Attribute { .. })
        ));
        assert!(matches!(
            run(&up, &["i64[1,3,4,5]"]),
            Err(InferError::DType { .. })
        ));
    }
}
