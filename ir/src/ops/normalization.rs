//! Normalisation ops: inference-mode BatchNormalization and Softmax.

use super::check::{self, Inferred};
use crate::text::fields::attr_fields;
use crate::text::{Attrs, ParseError};
use crate::Op;
use crate::{InferError, Shape, TensorType};

/// Inference-mode batch normalisation. Inputs: `x [N, C, …]`, `scale`, `bias`, `mean`, `var` (all `[C]`).
#[derive(Debug, Clone, Copy)]
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

impl BatchNorm {
    /// `x [N, C, …]` with four `[C]` parameter vectors of x's element type; shape-preserving.
    pub fn infer(&self, inputs: &[&TensorType]) -> Inferred {
        check::arity(inputs, (5, Some(5)))?;
        let x = inputs[0];
        check::float(0, x)?;
        check::rank_at_least(0, x, 2)?;
        let c = check::known(x.shape.0[1], "the channel dimension of input 0")?;
        for (i, p) in inputs.iter().enumerate().skip(1) {
            check::same_dtype(i, p, x.dtype)?;
            if p.shape != Shape::known(&[c]) {
                return Err(InferError::ShapeMismatch {
                    input: i,
                    shape: p.shape.clone(),
                    reason: format!("batch-norm parameters must be [{c}]"),
                });
            }
        }
        Ok(vec![x.clone()])
    }
}

impl Softmax {
    /// Shape-preserving; `axis` must index the input.
    pub fn infer(&self, inputs: &[&TensorType]) -> Inferred {
        let x = check::sole(inputs)?;
        check::float(0, x)?;
        check::axis("axis", self.axis, x.rank())?;
        Ok(vec![x.clone()])
    }
}

// Text form of the normalisation ops: their attributes are their fields, in field order.
attr_fields!(BatchNorm { epsilon });
attr_fields!(Softmax { axis, coerce_2d });

/// Rebuilds a normalisation op from its mnemonic and attributes; `None` for other mnemonics.
pub(crate) fn from_text(mnemonic: &str, a: &mut Attrs) -> Option<Result<Op, ParseError>> {
    match mnemonic {
        "batch_norm" => Some(BatchNorm::from_attrs(a).map(Op::BatchNorm)),
        "softmax" => Some(Softmax::from_attrs(a).map(Op::Softmax)),
        _ => None,
    }
}

/// Bitwise on `epsilon` (see [`crate::ops::Gemm`]'s `PartialEq`).
impl PartialEq for BatchNorm {
    fn eq(&self, o: &Self) -> bool {
        self.epsilon.to_bits() == o.epsilon.to_bits()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::check::run;
    use crate::Op;

    #[test]
    fn batch_norm() {
        let bn = Op::BatchNorm(BatchNorm { epsilon: 1e-5 });
        let p = "f32[3]";
        assert_eq!(
            run(&bn, &["f32[N,3,8,8]", p, p, p, p]).unwrap(),
            ["f32[N,3,8,8]"]
        );
        assert!(matches!(
            run(&bn, &["f32[N,3,8,8]", p, p, "f32[4]", p]),
            Err(InferError::ShapeMismatch { input: 3, .. })
        ));
        assert!(matches!(
            run(&bn, &["f32[3]", p, p, p, p]),
            Err(InferError::Rank { .. })
        ));
    }

    #[test]
    fn softmax() {
        let s = Op::Softmax(Softmax {
            axis: 1,
            coerce_2d: false,
        });
        assert_eq!(run(&s, &["f32[N,10]"]).unwrap(), ["f32[N,10]"]);
        assert!(matches!(
            run(&s, &["f32[10]"]),
            Err(InferError::Axis {
                axis: 1,
                rank: 1,
                ..
            })
        ));
    }
}
