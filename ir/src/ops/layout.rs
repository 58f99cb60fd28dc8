//! Data-movement ops: reshaping, transposition, concatenation, padding, slicing, indexing.
//!
//! All axes are normalised to non-negative by the frontend; every shape-determining parameter
//! is a static attribute, because Strata's shapes are static apart from the batch dimension.

use super::check::{self, Inferred};
use crate::text::fields::{attr_enum, attr_fields};
use crate::text::{Attrs, ParseError};
use crate::Op;
use crate::{DType, Dim, InferError, Shape, TensorType};

/// ONNX Reshape with a constant target shape (`0` copies a dimension unless `allow_zero`,
/// `-1` is inferred).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reshape {
    pub shape: Vec<i64>,
    pub allow_zero: bool,
}

/// Padding. `pads = [begin_0, …, end_0, …]` over every axis; negative values crop. `value`
/// fills the border in `constant` mode; the other modes copy input elements there.
#[derive(Debug, Clone)]
pub struct Pad {
    pub pads: Vec<i64>,
    pub value: f64,
    pub mode: PadMode,
}

/// What a Pad writes into the border (ONNX `mode`; numpy's `np.pad` modes of the same names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PadMode {
    /// `value`.
    Constant,
    /// The nearest edge element (`edge`).
    Edge,
    /// The mirror image without repeating the edge (`reflect`: `[1,2,3]` → `3,2,[1,2,3],2,1`).
    Reflect,
    /// The input repeated periodically (`wrap`, opset 19).
    Wrap,
}

/// ONNX Slice with constant parameters; `starts`, `ends`, `axes`, `steps` have equal lengths
/// and are stored as given (out-of-range starts/ends are clamped by shape inference, as ONNX does).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slice {
    pub starts: Vec<i64>,
    pub ends: Vec<i64>,
    pub axes: Vec<usize>,
    pub steps: Vec<i64>,
}

/// Split along `axis` into pieces of the given sizes (one output each).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Split {
    pub axis: usize,
    pub sizes: Vec<usize>,
}

/// Flatten to `[prod(dims[..axis]), prod(dims[axis..])]`; `axis == rank` is allowed.
pub fn infer_flatten(axis: usize, inputs: &[&TensorType]) -> Inferred {
    let x = check::sole(inputs)?;
    if axis > x.rank() {
        return Err(InferError::Axis {
            attr: "axis",
            axis,
            rank: x.rank() + 1,
        });
    }
    let outer = check::merge_dims(&x.shape.0[..axis], "flatten (outer dimensions)")?;
    let inner = check::merge_dims(&x.shape.0[axis..], "flatten (inner dimensions)")?;
    Ok(vec![TensorType::new(x.dtype, Shape(vec![outer, inner]))])
}

impl Reshape {
    /// ONNX Reshape with the batch rules: a `0` copying the batch dimension keeps it; a single
    /// `-1` becomes the batch dimension when the known sizes on both sides already agree.
    pub fn infer(&self, inputs: &[&TensorType]) -> Inferred {
        let x = check::sole(inputs)?;
        let bad = |reason: String| InferError::Attribute {
            attr: "shape",
            reason,
        };
        let mut infer_at = None;
        let mut out: Vec<Option<Dim>> = Vec::with_capacity(self.shape.len());
        for (i, &s) in self.shape.iter().enumerate() {
            match s {
                -1 => {
                    if infer_at.replace(i).is_some() {
                        return Err(bad("more than one -1".into()));
                    }
                    out.push(None);
                }
                0 if !self.allow_zero => {
                    let d = x.shape.0.get(i).copied().ok_or_else(|| {
                        bad(format!(
                            "0 at position {i} copies a dimension the rank-{} input lacks",
                            x.rank()
                        ))
                    })?;
                    out.push(Some(d));
                }
                s if s < 0 => return Err(bad(format!("invalid size {s}"))),
                s => {
                    let s = usize::try_from(s).map_err(|_| bad(format!("size {s} too large")))?;
                    out.push(Some(Dim::Known(s)));
                }
            }
        }
        if self.allow_zero && infer_at.is_some() && self.shape.contains(&0) {
            return Err(bad(
                "-1 together with 0 under allow_zero is ambiguous".into()
            ));
        }
        let in_known = checked_product(x.shape.0.iter().filter_map(|d| d.known()))
            .ok_or_else(|| bad("input size overflows".into()))?;
        let tgt_known = checked_product(out.iter().filter_map(|d| d.and_then(Dim::known)))
            .ok_or_else(|| bad("target size overflows".into()))?;
        let in_batch = x.shape.0.iter().filter(|d| **d == Dim::Batch).count();
        let tgt_batch = out.iter().filter(|d| **d == Some(Dim::Batch)).count();
        if in_batch > 1 || tgt_batch > in_batch {
            return Err(InferError::Batch(
                "reshape of a value with more than one batch dimension".into(),
            ));
        }
        let mismatch = || InferError::ShapeMismatch {
            input: 0,
            shape: x.shape.clone(),
            reason: format!("cannot be reshaped to {:?}", self.shape),
        };
        let inferred = if in_batch == tgt_batch {
            // Every batch dimension is carried over by a 0: the known parts must agree.
            match infer_at {
                None if in_known == tgt_known => None,
                None => return Err(mismatch()),
                Some(_) if tgt_known == 0 => {
                    if in_known == 0 {
                        return Err(bad(
                            "-1 is ambiguous when the other sizes multiply to 0".into()
                        ));
                    }
                    return Err(mismatch());
                }
                Some(_) if in_known % tgt_known == 0 => Some(Dim::Known(in_known / tgt_known)),
                Some(_) => return Err(mismatch()),
            }
        } else {
            // The batch dimension is not copied: only a -1 can take it over, and only when the
            // rest already matches exactly.
            match infer_at {
                Some(_) if in_known == tgt_known => Some(Dim::Batch),
                _ => {
                    return Err(InferError::Batch(format!(
                        "reshape to {:?} would fold the batch dimension into other dimensions",
                        self.shape
                    )))
                }
            }
        };
        let dims = out
            .into_iter()
            .map(|d| d.or(inferred).unwrap_or(Dim::Known(1)))
            .collect();
        Ok(vec![TensorType::new(x.dtype, Shape(dims))])
    }
}

fn checked_product(it: impl Iterator<Item = usize>) -> Option<usize> {
    it.into_iter().try_fold(1usize, |acc, d| acc.checked_mul(d))
}

/// Transpose: `perm` must be a permutation of the input's axes.
pub fn infer_transpose(perm: &[usize], inputs: &[&TensorType]) -> Inferred {
    let x = check::sole(inputs)?;
    check::attr_len("perm", perm.len(), x.rank())?;
    check::distinct_axes("perm", perm, x.rank())?;
    let dims = perm.iter().map(|&p| x.shape.0[p]).collect();
    Ok(vec![TensorType::new(x.dtype, Shape(dims))])
}

/// Concat: same type and rank everywhere, equal dimensions except along `axis`, which adds up.
pub fn infer_concat(axis: usize, inputs: &[&TensorType]) -> Inferred {
    check::arity(inputs, (1, None))?;
    let first = inputs[0];
    check::axis("axis", axis, first.rank())?;
    let mut dims = first.shape.0.clone();
    for (i, t) in inputs.iter().enumerate().skip(1) {
        check::same_dtype(i, t, first.dtype)?;
        check::rank_eq(i, t, first.rank())?;
        for (j, (&d, &e)) in first.shape.0.iter().zip(&t.shape.0).enumerate() {
            if j != axis && d != e {
                return Err(InferError::ShapeMismatch {
                    input: i,
                    shape: t.shape.clone(),
                    reason: format!("dimension {j} is {e}, input 0 has {d}"),
                });
            }
        }
        let a = check::known(dims[axis], "the concatenation axis")?;
        let b = check::known(t.shape.0[axis], "the concatenation axis")?;
        let sum = a.checked_add(b).ok_or_else(|| InferError::ShapeMismatch {
            input: i,
            shape: t.shape.clone(),
            reason: "concatenated size overflows".into(),
        })?;
        dims[axis] = Dim::Known(sum);
    }
    Ok(vec![TensorType::new(first.dtype, Shape(dims))])
}

impl Pad {
    /// Each axis grows by `begin + end` (negative values crop); the batch axis must be unpadded.
    pub fn infer(&self, inputs: &[&TensorType]) -> Inferred {
        let x = check::sole(inputs)?;
        let r = x.rank();
        check::attr_len("pads", self.pads.len(), 2 * r)?;
        let mut dims = Vec::with_capacity(r);
        for (i, &d) in x.shape.0.iter().enumerate() {
            let (b, e) = (self.pads[i], self.pads[r + i]);
            match d {
                Dim::Batch if b == 0 && e == 0 => dims.push(Dim::Batch),
                Dim::Batch => {
                    return Err(InferError::Batch(format!(
                        "axis {i} is the batch dimension and cannot be padded"
                    )))
                }
                // Copying modes need elements to copy into a grown border.
                Dim::Known(0) if self.mode != PadMode::Constant && (b > 0 || e > 0) => {
                    return Err(InferError::Attribute {
                        attr: "pads",
                        reason: format!(
                            "axis {i} is empty and {} padding has nothing to copy",
                            self.mode.name()
                        ),
                    })
                }
                Dim::Known(n) => {
                    let size = n as i128 + b as i128 + e as i128;
                    if size < 0 || size > usize::MAX as i128 {
                        return Err(InferError::Attribute {
                            attr: "pads",
                            reason: format!(
                                "axis {i} of size {n} padded by {b}, {e} has size {size}"
                            ),
                        });
                    }
                    dims.push(Dim::Known(size as usize));
                }
            }
        }
        Ok(vec![TensorType::new(x.dtype, Shape(dims))])
    }
}

/// ONNX Expand with a constant target: the output is the numpy broadcast of the input's
/// shape and `shape` (so a 1 in `shape` keeps the input's dimension, including the batch).
pub fn infer_expand(shape: &[usize], inputs: &[&TensorType]) -> Inferred {
    let x = check::sole(inputs)?;
    let target = Shape(shape.iter().map(|&d| Dim::Known(d)).collect());
    let out = check::broadcast(&x.shape, &target)?;
    Ok(vec![TensorType::new(x.dtype, out)])
}

/// Squeeze: the listed axes (distinct, in range) must have size 1 and are removed.
pub fn infer_squeeze(axes: &[usize], inputs: &[&TensorType]) -> Inferred {
    let x = check::sole(inputs)?;
    check::distinct_axes("axes", axes, x.rank())?;
    for &a in axes {
        match x.shape.0[a] {
            Dim::Known(1) => {}
            Dim::Batch => {
                return Err(InferError::Batch(format!(
                    "axis {a} is the batch dimension and cannot be squeezed"
                )))
            }
            d => {
                return Err(InferError::ShapeMismatch {
                    input: 0,
                    shape: x.shape.clone(),
                    reason: format!("axis {a} has size {d}, not 1"),
                })
            }
        }
    }
    let dims = x
        .shape
        .0
        .iter()
        .enumerate()
        .filter(|(i, _)| !axes.contains(i))
        .map(|(_, &d)| d)
        .collect();
    Ok(vec![TensorType::new(x.dtype, Shape(dims))])
}

/// Unsqueeze: `axes` index the output, whose rank is `rank + axes.len()`.
pub fn infer_unsqueeze(axes: &[usize], inputs: &[&TensorType]) -> Inferred {
    let x = check::sole(inputs)?;
    let out_rank = x.rank() + axes.len();
    check::distinct_axes("axes", axes, out_rank)?;
    let mut rest = x.shape.0.iter();
    let dims = (0..out_rank)
        .map(|i| {
            if axes.contains(&i) {
                Dim::Known(1)
            } else {
                // There are exactly `rank` positions not in `axes`.
                rest.next().copied().unwrap_or(Dim::Known(1))
            }
        })
        .collect();
    Ok(vec![TensorType::new(x.dtype, Shape(dims))])
}

/// Shape: i64 vector of the dimensions `start..end` (empty when `start >= end`).
pub fn infer_shape(start: usize, end: usize, inputs: &[&TensorType]) -> Inferred {
    let x = check::sole(inputs)?;
    for (attr, v) in [("start", start), ("end", end)] {
        if v > x.rank() {
            return Err(InferError::Axis {
                attr,
                axis: v,
                rank: x.rank() + 1,
            });
        }
    }
    Ok(vec![TensorType::known(
        DType::I64,
        &[end.saturating_sub(start)],
    )])
}

/// Gather: `data[..axis] ++ indices.shape ++ data[axis+1..]`.
pub fn infer_gather(axis: usize, inputs: &[&TensorType]) -> Inferred {
    check::arity(inputs, (2, Some(2)))?;
    let (data, idx) = (inputs[0], inputs[1]);
    check::integer(1, idx)?;
    check::axis("axis", axis, data.rank())?;
    let mut dims = data.shape.0[..axis].to_vec();
    dims.extend_from_slice(&idx.shape.0);
    dims.extend_from_slice(&data.shape.0[axis + 1..]);
    Ok(vec![TensorType::new(data.dtype, Shape(dims))])
}

/// Ends at or beyond this are "to the end" whatever the size (ONNX exporters write INT_MAX
/// or i64::MAX); starts/ends at or below its negation are "from the very beginning".
const UNBOUNDED: i64 = i32::MAX as i64;

impl Slice {
    /// ONNX Slice: starts/ends are clamped per axis (`[0, dim]` for positive steps,
    /// `[-1, dim-1]` for negative ones after adding `dim` to negative values), and the length
    /// is `ceil((end - start) / step)`, at least 0. A batch axis may only be taken whole.
    pub fn infer(&self, inputs: &[&TensorType]) -> Inferred {
        let x = check::sole(inputs)?;
        let n = self.starts.len();
        check::attr_len("ends", self.ends.len(), n)?;
        check::attr_len("axes", self.axes.len(), n)?;
        check::attr_len("steps", self.steps.len(), n)?;
        check::distinct_axes("axes", &self.axes, x.rank())?;
        let mut dims = x.shape.0.clone();
        for i in 0..n {
            let (axis, start, end, step) =
                (self.axes[i], self.starts[i], self.ends[i], self.steps[i]);
            if step == 0 {
                return Err(InferError::Attribute {
                    attr: "steps",
                    reason: "a step must not be 0".into(),
                });
            }
            dims[axis] = match x.shape.0[axis] {
                Dim::Batch => {
                    let whole = match step {
                        1 => (start == 0 || start <= -UNBOUNDED) && end >= UNBOUNDED,
                        -1 => (start == -1 || start >= UNBOUNDED) && end <= -UNBOUNDED,
                        _ => false,
                    };
                    if !whole {
                        return Err(InferError::Batch(format!(
                            "axis {axis} is the batch dimension and can only be sliced whole"
                        )));
                    }
                    // Taken whole (possibly reversed): the size is unchanged.
                    Dim::Batch
                }
                Dim::Known(d) => Dim::Known(slice_len(d, start, end, step)),
            };
        }
        Ok(vec![TensorType::new(x.dtype, Shape(dims))])
    }
}

/// Number of elements ONNX Slice selects from an axis of size `dim` (step ≠ 0).
pub fn slice_len(dim: usize, start: i64, end: i64, step: i64) -> usize {
    let (start, end, step, dim) = (start as i128, end as i128, step as i128, dim as i128);
    let norm = |v: i128| if v < 0 { v + dim } else { v };
    let (s, e) = if step > 0 {
        (norm(start).clamp(0, dim), norm(end).clamp(0, dim))
    } else {
        (norm(start).clamp(0, dim - 1), norm(end).clamp(-1, dim - 1))
    };
    let span = if step > 0 { e - s } else { s - e };
    if span <= 0 {
        return 0;
    }
    let step = step.abs();
    ((span + step - 1) / step) as usize
}

impl Split {
    /// One output per size along `axis`; the sizes must add up to the (known) axis length.
    pub fn infer(&self, inputs: &[&TensorType]) -> Inferred {
        let x = check::sole(inputs)?;
        check::axis("axis", self.axis, x.rank())?;
        if self.sizes.is_empty() {
            return Err(InferError::Attribute {
                attr: "sizes",
                reason: "must have at least one piece".into(),
            });
        }
        let d = check::known(x.shape.0[self.axis], "the split axis")?;
        let total = self
            .sizes
            .iter()
            .try_fold(0usize, |acc, &s| acc.checked_add(s));
        if total != Some(d) {
            return Err(InferError::Attribute {
                attr: "sizes",
                reason: format!("sizes {:?} do not add up to axis length {d}", self.sizes),
            });
        }
        Ok(self
            .sizes
            .iter()
            .map(|&s| {
                let mut dims = x.shape.0.clone();
                dims[self.axis] = Dim::Known(s);
                TensorType::new(x.dtype, Shape(dims))
            })
            .collect())
    }
}

// Text form of the data-movement ops with attribute structs: their fields, in field order.
attr_fields!(Reshape { shape, allow_zero });
/// Pad's text form: `mode` is printed only when it is not `constant` (and read as `constant`
/// when absent), so graphs and containers written before the copying modes still load.
impl Pad {
    pub(crate) fn text_attrs(&self) -> Vec<(&'static str, crate::text::AttrValue)> {
        use crate::text::fields::AttrField;
        let mut out = vec![
            ("pads", self.pads.to_attr()),
            ("value", self.value.to_attr()),
        ];
        if self.mode != PadMode::Constant {
            out.push(("mode", self.mode.to_attr()));
        }
        out
    }

    pub(crate) fn from_attrs(a: &mut Attrs) -> Result<Pad, ParseError> {
        use crate::text::fields::AttrField;
        let mode = match a.has("mode") {
            true => PadMode::take(a, "mode")?,
            false => PadMode::Constant,
        };
        Ok(Pad {
            pads: AttrField::take(a, "pads")?,
            value: AttrField::take(a, "value")?,
            mode,
        })
    }
}
attr_enum!(
    PadMode,
    "constant, edge, reflect or wrap",
    [Constant => "constant", Edge => "edge", Reflect => "reflect", Wrap => "wrap"]
);
attr_fields!(Slice {
    starts,
    ends,
    axes,
    steps
});
attr_fields!(Split { axis, sizes });

/// Rebuilds a data-movement op from its mnemonic and attributes; `None` for other mnemonics.
pub(crate) fn from_text(mnemonic: &str, a: &mut Attrs) -> Option<Result<Op, ParseError>> {
    Some(match mnemonic {
        "flatten" => a.usize("axis").map(|axis| Op::Flatten { axis }),
        "concat" => a.usize("axis").map(|axis| Op::Concat { axis }),
        "gather" => a.usize("axis").map(|axis| Op::Gather { axis }),
        "reshape" => Reshape::from_attrs(a).map(Op::Reshape),
        "transpose" => a.usizes("perm").map(|perm| Op::Transpose { perm }),
        "expand" => a.usizes("shape").map(|shape| Op::Expand { shape }),
        "pad" => Pad::from_attrs(a).map(Op::Pad),
        "squeeze" => a.usizes("axes").map(|axes| Op::Squeeze { axes }),
        "unsqueeze" => a.usizes("axes").map(|axes| Op::Unsqueeze { axes }),
        "identity" => Ok(Op::Identity),
        "shape" => (|| {
            Ok(Op::Shape {
                start: a.usize("start")?,
                end: a.usize("end")?,
            })
        })(),
        "slice" => Slice::from_attrs(a).map(Op::Slice),
        "split" => Split::from_attrs(a).map(Op::Split),
        "cast" => a.dtype("to").map(|to| Op::Cast { to }),
        _ => return None,
    })
}

/// Bitwise on `value`: a NaN pad value equals itself, and `-0.0` differs from `0.0`.
impl PartialEq for Pad {
    fn eq(&self, o: &Self) -> bool {
        self.pads == o.pads && self.value.to_bits() == o.value.to_bits() && self.mode == o.mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::check::{assert_infers, assert_rejects};
    use crate::Op;

    fn reshape(shape: &[i64], allow_zero: bool) -> Op {
        Op::Reshape(Reshape {
            shape: shape.to_vec(),
            allow_zero,
        })
    }

    #[test]
    fn flatten() {
        let f = |axis| Op::Flatten { axis };
        assert_infers(&[
            (&f(1), &["f32[N,64,7,7]"], &["f32[N,3136]"]),
            (&f(2), &["f32[2,3,4,5]"], &["f32[6,20]"]),
            (&f(0), &["f32[2,3]"], &["f32[1,6]"]),
            (&f(2), &["f32[2,3]"], &["f32[6,1]"]),
            (&f(2), &["f32[N,1,5]"], &["f32[N,5]"]),
        ]);
        assert_rejects!({
            &f(0), ["f32[N,3]"] => InferError::Batch(_),
            &f(2), ["f32[N,3,4]"] => InferError::Batch(_),
            &f(3), ["f32[2,3]"] => InferError::Axis { .. },
        });
    }

    #[test]
    fn reshape_static() {
        assert_infers(&[
            (&reshape(&[3, -1], false), &["f32[2,3,4]"], &["f32[3,8]"]),
            (
                &reshape(&[0, 0, -1], false),
                &["f32[2,3,4]"],
                &["f32[2,3,4]"],
            ),
            (&reshape(&[0, 4], true), &["f32[0,3]"], &["f32[0,4]"]),
            (&reshape(&[], false), &["f32[1,1]"], &["f32[]"]),
        ]);
        assert_rejects!({
            &reshape(&[5, -1], false), ["f32[2,3]"] => InferError::ShapeMismatch { .. },
            &reshape(&[7], false), ["f32[2,3]"] => InferError::ShapeMismatch { .. },
            &reshape(&[-1, -1], false), ["f32[2,3]"] => InferError::Attribute { .. },
            &reshape(&[-2, 3], false), ["f32[2,3]"] => InferError::Attribute { .. },
            &reshape(&[0, 0, 0], false), ["f32[6]"] => InferError::Attribute { .. },
            &reshape(&[0, -1], true), ["f32[0,3]"] => InferError::Attribute { .. },
        });
    }

    #[test]
    fn reshape_batch() {
        assert_infers(&[
            (
                &reshape(&[0, -1], false),
                &["f32[N,64,7,7]"],
                &["f32[N,3136]"],
            ),
            (
                &reshape(&[-1, 3136], false),
                &["f32[N,64,7,7]"],
                &["f32[N,3136]"],
            ),
            (&reshape(&[0, 8, 8], false), &["f32[N,64]"], &["f32[N,8,8]"]),
            (
                &reshape(&[0, 2, -1], false),
                &["f32[N,64]"],
                &["f32[N,2,32]"],
            ),
            // -1 takes the batch dimension wherever it sits.
            (&reshape(&[4, -1], false), &["f32[N,4]"], &["f32[4,N]"]),
        ]);
        assert_rejects!({
            &reshape(&[-1], false), ["f32[N,3]"] => InferError::Batch(_),
            &reshape(&[2, 3], false), ["f32[N,3]"] => InferError::Batch(_),
            &reshape(&[0, 5], false), ["f32[N,3]"] => InferError::ShapeMismatch { .. },
        });
    }

    #[test]
    fn transpose_concat_pad() {
        let t = |perm: &[usize]| Op::Transpose {
            perm: perm.to_vec(),
        };
        let c = Op::Concat { axis: 1 };
        let pad = |pads: &[i64]| {
            Op::Pad(Pad {
                pads: pads.to_vec(),
                value: 0.0,
                mode: PadMode::Constant,
            })
        };
        assert_infers(&[
            (&t(&[0, 2, 3, 1]), &["f32[N,3,4,5]"], &["f32[N,4,5,3]"]),
            (
                &c,
                &["f32[N,3,4]", "f32[N,5,4]", "f32[N,1,4]"],
                &["f32[N,9,4]"],
            ),
            (
                &pad(&[0, 1, -1, 0, 2, -1]),
                &["f32[N,3,4]"],
                &["f32[N,6,2]"],
            ),
        ]);
        assert_rejects!({
            &t(&[0, 0, 1, 2]), ["f32[N,3,4,5]"] => InferError::Attribute { .. },
            &c, ["f32[N,3,4]", "f32[N,5,3]"] => InferError::ShapeMismatch { input: 1, .. },
            &Op::Concat { axis: 0 }, ["f32[N,3]", "f32[N,3]"] => InferError::Batch(_),
            &c, ["f32[2,3]", "i64[2,3]"] => InferError::DType { input: 1, .. },
            &pad(&[1, 0, 0, 0]), ["f32[N,3]"] => InferError::Batch(_),
            &pad(&[0, -5, 0, 0]), ["f32[2,3]"] => InferError::Attribute { attr: "pads", .. },
        });
    }

    #[test]
    fn squeeze_unsqueeze_shape_gather() {
        let s = Op::Squeeze { axes: vec![1, 3] };
        let u = Op::Unsqueeze { axes: vec![0, 3] };
        let shape = |start, end| Op::Shape { start, end };
        let g = Op::Gather { axis: 1 };
        assert_infers(&[
            (&s, &["f32[N,1,4,1]"], &["f32[N,4]"]),
            (&u, &["f32[3,4]"], &["f32[1,3,4,1]"]),
            (&shape(1, 4), &["f32[N,3,4,5]"], &["i64[3]"]),
            (&shape(3, 1), &["f32[N,3,4,5]"], &["i64[0]"]),
            (&g, &["f32[N,10,4]", "i32[2,3]"], &["f32[N,2,3,4]"]),
            (&g, &["f32[N,10,4]", "u8[]"], &["f32[N,4]"]),
        ]);
        assert_rejects!({
            &s, ["f32[N,2,4,1]"] => InferError::ShapeMismatch { .. },
            &Op::Squeeze { axes: vec![0] }, ["f32[N]"] => InferError::Batch(_),
            &Op::Unsqueeze { axes: vec![4] }, ["f32[3,4]"] => InferError::Axis { .. },
            &shape(0, 5), ["f32[3,4]"] => InferError::Axis { .. },
            &g, ["f32[N,10]", "f32[2]"] => InferError::DType { input: 1, .. },
        });
    }

    fn slice(starts: &[i64], ends: &[i64], axes: &[usize], steps: &[i64]) -> Op {
        Op::Slice(Slice {
            starts: starts.to_vec(),
            ends: ends.to_vec(),
            axes: axes.to_vec(),
            steps: steps.to_vec(),
        })
    }

    #[test]
    fn slice_semantics() {
        assert_eq!(slice_len(10, 2, 7, 1), 5);
        assert_eq!(slice_len(10, 0, i64::MAX, 3), 4);
        assert_eq!(slice_len(10, -3, 1000, 1), 3);
        assert_eq!(slice_len(10, -1, i64::MIN, -1), 10);
        assert_eq!(slice_len(10, 20, -20, -2), 5); // 9,7,5,3,1
        assert_eq!(slice_len(10, 5, 5, 1), 0);
        assert_eq!(slice_len(10, 7, 2, 1), 0);
        assert_eq!(slice_len(0, 0, 5, 1), 0);
        assert_infers(&[
            (
                &slice(&[0, 1], &[i64::MAX, -1], &[0, 2], &[1, 2]),
                &["f32[N,3,10]"],
                &["f32[N,3,4]"],
            ),
            (
                &slice(&[-1], &[i32::MIN as i64], &[0], &[-1]),
                &["f32[N,3]"],
                &["f32[N,3]"],
            ),
        ]);
        assert_rejects!({
            &slice(&[1], &[i64::MAX], &[0], &[1]), ["f32[N,3]"] => InferError::Batch(_),
            &slice(&[0], &[1], &[0], &[0]), ["f32[4]"] => InferError::Attribute { attr: "steps", .. },
            &slice(&[0], &[1, 2], &[0], &[1]), ["f32[4]"] => InferError::Attribute { attr: "ends", .. },
        });
    }

    #[test]
    fn split() {
        let split = |axis, sizes: &[usize]| {
            Op::Split(Split {
                axis,
                sizes: sizes.to_vec(),
            })
        };
        let s = split(1, &[2, 3, 1]);
        assert_infers(&[(&s, &["f32[N,6]"], &["f32[N,2]", "f32[N,3]", "f32[N,1]"])]);
        assert_rejects!({
            &s, ["f32[N,7]"] => InferError::Attribute { attr: "sizes", .. },
            &split(0, &[1, 1]), ["f32[N,7]"] => InferError::Batch(_),
        });
    }

    #[test]
    fn cast_identity() {
        assert_infers(&[
            (&Op::Cast { to: DType::I8 }, &["f32[N,2]"], &["i8[N,2]"]),
            (&Op::Identity, &["bool[3]"], &["bool[3]"]),
        ]);
        assert_rejects!(&Op::Identity, { [] as [&str; 0] => InferError::Arity { .. } });
    }
}
