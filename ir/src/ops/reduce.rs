//! Reductions.

use super::check::{self, Inferred};
use crate::text::fields::attr_fields;
use crate::text::{Attrs, ParseError};
use crate::Op;
use crate::{Dim, InferError, Shape, TensorType};

/// Mean over `axes` (non-negative, sorted, deduplicated; never empty — the frontend turns
/// "reduce everything" into the full axis list and `noop_with_empty_axes` into Identity).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReduceMean {
    pub axes: Vec<usize>,
    pub keep_dims: bool,
}

impl ReduceMean {
    /// Reduced axes become 1 (`keep_dims`) or disappear. Reducing over the batch axis is
    /// fine: the result no longer depends on the batch size.
    pub fn infer(&self, inputs: &[&TensorType]) -> Inferred {
        let x = check::sole(inputs)?;
        check::numeric(0, x)?;
        if self.axes.is_empty() {
            return Err(InferError::Attribute {
                attr: "axes",
                reason: "must name at least one axis".into(),
            });
        }
        check::distinct_axes("axes", &self.axes, x.rank())?;
        let mut out = Vec::with_capacity(x.rank());
        for (i, &d) in x.shape.0.iter().enumerate() {
            if self.axes.contains(&i) {
                if self.keep_dims {
                    out.push(Dim::Known(1));
                }
            } else {
                out.push(d);
            }
        }
        Ok(vec![TensorType::new(x.dtype, Shape(out))])
    }
}

// Text form of ReduceMean: its attributes are its fields, in field order.
attr_fields!(ReduceMean { axes, keep_dims });

/// Rebuilds a reduction from its mnemonic and attributes; `None` for other mnemonics.
pub(crate) fn from_text(mnemonic: &str, a: &mut Attrs) -> Option<Result<Op, ParseError>> {
    match mnemonic {
        "reduce_mean" => Some(ReduceMean::from_attrs(a).map(Op::ReduceMean)),
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
}
