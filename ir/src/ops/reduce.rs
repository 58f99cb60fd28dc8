//! Reductions over axes (mean, max, sum) and ArgMax.

use super::check::{self, Inferred};
use crate::text::fields::attr_fields;
use crate::text::{Attrs, ParseError};
use crate::Op;
use crate::{DType, Dim, InferError, Shape, TensorType};

/// The attributes of every axis reduction (ReduceMean, ReduceMax, ReduceSum): `axes`
/// (non-negative, sorted, deduplicated; never empty — the frontend turns "reduce everything"
/// into the full axis list and `noop_with_empty_axes` into Identity) and `keep_dims`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reduce {
    pub axes: Vec<usize>,
    pub keep_dims: bool,
}

/// ReduceMean's attributes (the name the op had before the other reductions shared them).
pub type ReduceMean = Reduce;

/// ONNX ArgMax: the index (i64) of the largest element along `axis`; ties go to the first
/// index, or the last with `select_last_index`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ArgMax {
    pub axis: usize,
    pub keep_dims: bool,
    pub select_last_index: bool,
}

/// The output shape of reducing `axes` of `x`: reduced axes become 1 (`keep_dims`) or
/// disappear. Reducing over the batch axis is fine: the result no longer depends on the
/// batch size.
fn reduced_shape(x: &TensorType, axes: &[usize], keep_dims: bool) -> Shape {
    let mut out = Vec::with_capacity(x.rank());
    for (i, &d) in x.shape.0.iter().enumerate() {
        if axes.contains(&i) {
            if keep_dims {
                out.push(Dim::Known(1));
            }
        } else {
            out.push(d);
        }
    }
    Shape(out)
}

impl Reduce {
    /// Same element type out; numeric input (bool too when `bool_ok`: ReduceMax, opset 20).
    pub fn infer(&self, inputs: &[&TensorType], bool_ok: bool) -> Inferred {
        let x = check::sole(inputs)?;
        if !(bool_ok && x.dtype == DType::Bool) {
            check::numeric(0, x)?;
        }
        if self.axes.is_empty() {
            return Err(InferError::Attribute {
                attr: "axes",
                reason: "must name at least one axis".into(),
            });
        }
        check::distinct_axes("axes", &self.axes, x.rank())?;
        Ok(vec![TensorType::new(
            x.dtype,
            reduced_shape(x, &self.axes, self.keep_dims),
        )])
    }
}

impl ArgMax {
    /// i64 indices, `axis` removed or kept as 1.
    pub fn infer(&self, inputs: &[&TensorType]) -> Inferred {
        let x = check::sole(inputs)?;
        check::numeric(0, x)?;
        check::axis("axis", self.axis, x.rank())?;
        Ok(vec![TensorType::new(
            DType::I64,
            reduced_shape(x, &[self.axis], self.keep_dims),
        )])
    }
}

// Text form: the attributes are the fields, in field order.
attr_fields!(Reduce { axes, keep_dims });
attr_fields!(ArgMax {
    axis,
    keep_dims,
    select_last_index
});

/// Rebuilds a reduction from its mnemonic and attributes; `None` for other mnemonics.
pub(crate) fn from_text(mnemonic: &str, a: &mut Attrs) -> Option<Result<Op, ParseError>> {
    match mnemonic {
        "reduce_mean" => Some(Reduce::from_attrs(a).map(Op::ReduceMean)),
        "reduce_max" => Some(Reduce::from_attrs(a).map(Op::ReduceMax)),
        "reduce_sum" => Some(Reduce::from_attrs(a).map(Op::ReduceSum)),
        "arg_max" => Some(ArgMax::from_attrs(a).map(Op::ArgMax)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::check::run;
    use crate::Op;

    #[test]
    fn reduce_mean() {
        let keep = Op::ReduceMean(ReduceMean {
            axes: vec![2, 3],
            keep_dims: true,
        });
        assert_eq!(run(&keep, &["f32[N,64,7,7]"]).unwrap(), ["f32[N,64,1,1]"]);
        let drop = Op::ReduceMean(ReduceMean {
            axes: vec![0, 2],
            keep_dims: false,
        });
        assert_eq!(run(&drop, &["f32[N,64,7]"]).unwrap(), ["f32[64]"]);
        assert!(matches!(
            run(&drop, &["f32[2,2]"]),
            Err(InferError::Axis { .. })
        ));
        let dup = Op::ReduceMean(ReduceMean {
            axes: vec![1, 1],
            keep_dims: false,
        });
        assert!(matches!(
            run(&dup, &["f32[2,2]"]),
            Err(InferError::Attribute { .. })
        ));
        let none = Op::ReduceMean(ReduceMean {
            axes: vec![],
            keep_dims: false,
        });
        assert!(matches!(
            run(&none, &["f32[2,2]"]),
            Err(InferError::Attribute { .. })
        ));
    }

    #[test]
    fn reduce_max_sum_and_arg_max() {
        let r = Reduce {
            axes: vec![1],
            keep_dims: false,
        };
        let max = Op::ReduceMax(r.clone());
        let sum = Op::ReduceSum(r);
        assert_eq!(run(&max, &["bool[2,3]"]).unwrap(), ["bool[2]"]);
        assert_eq!(run(&sum, &["i64[N,3]"]).unwrap(), ["i64[N]"]);
        assert!(matches!(
            run(&sum, &["bool[2,3]"]),
            Err(InferError::DType { input: 0, .. })
        ));
        let am = |axis, keep_dims| {
            Op::ArgMax(ArgMax {
                axis,
                keep_dims,
                select_last_index: false,
            })
        };
        assert_eq!(run(&am(1, true), &["f32[N,10]"]).unwrap(), ["i64[N,1]"]);
        assert_eq!(run(&am(0, false), &["f32[3,4]"]).unwrap(), ["i64[4]"]);
        assert!(matches!(
            run(&am(2, false), &["f32[3,4]"]),
            Err(InferError::Axis { .. })
        ));
        assert!(matches!(
            run(&am(0, false), &["bool[3]"]),
            Err(InferError::DType { .. })
        ));
    }
}
