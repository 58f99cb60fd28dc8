//! ONNX QuantizeLinear / DequantizeLinear: the QDQ ops of pre-quantized models. The frontend
//! imports them so that such a model runs as written (a DequantizeLinear of a constant
//! weight folds to a float constant at import; a Q→DQ pair on activations stays a float
//! fake-quantization), per tensor or per axis.

use super::check::{self, Inferred};
use crate::{DType, Dim, InferError, TensorType};

/// Inputs `x, scale, zero_point` (the frontend supplies a zero `zero_point` when the model
/// omits it, so its element type always names the quantized type). `scale` and
/// `zero_point` are single-element (per tensor) or 1-D along `axis` of `x` (per axis).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Qdq {
    pub axis: usize,
}

/// The quantized element types Strata represents.
fn quantized(input: usize, ty: &TensorType) -> Result<(), InferError> {
    if matches!(ty.dtype, DType::I8 | DType::U8) {
        return Ok(());
    }
    Err(InferError::DType {
        input,
        got: ty.dtype,
        expected: "a quantized type (i8, u8)".into(),
    })
}

impl Qdq {
    /// `scale` and `zero_point` have the same shape: one element, or `[x.shape[axis]]`.
    fn check_params(
        &self,
        x: &TensorType,
        scale: &TensorType,
        zp: &TensorType,
    ) -> Result<(), InferError> {
        if scale.shape != zp.shape {
            return Err(InferError::ShapeMismatch {
                input: 2,
                shape: zp.shape.clone(),
                reason: format!("the zero point must have the scale's shape {}", scale.shape),
            });
        }
        let per_tensor = scale.shape.0.iter().all(|&d| d == Dim::Known(1));
        if per_tensor {
            return Ok(());
        }
        check::axis("axis", self.axis, x.rank())?;
        let along = x.shape.0[self.axis];
        if scale.rank() != 1 || along == Dim::Batch || scale.shape.0[0] != along {
            return Err(InferError::ShapeMismatch {
                input: 1,
                shape: scale.shape.clone(),
                reason: format!(
                    "a per-axis scale must be 1-D with the size of axis {} of {} (blocked quantization is not supported)",
                    self.axis, x.shape
                ),
            });
        }
        Ok(())
    }

    /// QuantizeLinear: float `x`, scale of x's type → the zero point's type (i8/u8).
    pub fn infer_quantize(&self, inputs: &[&TensorType]) -> Inferred {
        check::arity(inputs, (3, Some(3)))?;
        let (x, scale, zp) = (inputs[0], inputs[1], inputs[2]);
        check::float(0, x)?;
        check::same_dtype(1, scale, x.dtype)?;
        quantized(2, zp)?;
        self.check_params(x, scale, zp)?;
        Ok(vec![TensorType::new(zp.dtype, x.shape.clone())])
    }

    /// DequantizeLinear: `x` (i8/u8), zero point of x's type, float scale → the scale's type.
    pub fn infer_dequantize(&self, inputs: &[&TensorType]) -> Inferred {
        check::arity(inputs, (3, Some(3)))?;
        let (x, scale, zp) = (inputs[0], inputs[1], inputs[2]);
        quantized(0, x)?;
        check::float(1, scale)?;
        check::same_dtype(2, zp, x.dtype)?;
        self.check_params(x, scale, zp)?;
        Ok(vec![TensorType::new(scale.dtype, x.shape.clone())])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::check::run;
    use crate::Op;

    #[test]
    fn shapes_and_types() {
        let q = Op::QuantizeLinear(Qdq { axis: 1 });
        let dq = Op::DequantizeLinear(Qdq { axis: 0 });
        assert_eq!(
            run(&q, &["f32[N,3]", "f32[]", "u8[]"]).unwrap(),
            ["u8[N,3]"]
        );
        assert_eq!(
            run(&q, &["f32[N,3]", "f32[3]", "i8[3]"]).unwrap(),
            ["i8[N,3]"]
        );
        assert_eq!(
            run(&dq, &["i8[4,3]", "f32[4]", "i8[4]"]).unwrap(),
            ["f32[4,3]"]
        );
        assert!(matches!(
            run(&q, &["f32[N,3]", "f32[3]", "i32[3]"]),
            Err(InferError::DType { input: 2, .. })
        ));
        assert!(matches!(
            run(&dq, &["i8[4,3]", "f32[3]", "i8[3]"]),
            Err(InferError::ShapeMismatch { input: 1, .. })
        ));
        assert!(matches!(
            run(&dq, &["i8[4,3]", "f32[4]", "i8[]"]),
            Err(InferError::ShapeMismatch { input: 2, .. })
        ));
    }
}
