//! Shared checks for shape inference: arity, element types, ranks, broadcasting and the
//! batch-dimension rules. Kept in one place so every family reports the same errors.

use crate::{DType, Dim, InferError, Shape, TensorType};

/// Fails unless `inputs.len()` is within `(min, max)`.
pub(crate) fn arity(
    inputs: &[&TensorType],
    (min, max): (usize, Option<usize>),
) -> Result<(), InferError> {
    let n = inputs.len();
    count((min, max), n).map_err(|expected| InferError::Arity { expected, got: n })
}

/// What shape inference returns: one type per output.
pub(crate) type Inferred = Result<Vec<TensorType>, InferError>;

/// The input of a one-input op, after checking there is exactly one.
pub(crate) fn sole<'t>(inputs: &[&'t TensorType]) -> Result<&'t TensorType, InferError> {
    arity(inputs, (1, Some(1)))?;
    Ok(inputs[0])
}

/// Checks a count against `(min, max)`; the error is the expected count as text (`2`,
/// `1 to 3`, `at least 1`), the one wording every layer reports.
pub(crate) fn count((min, max): (usize, Option<usize>), n: usize) -> Result<(), String> {
    if n >= min && max.is_none_or(|m| n <= m) {
        return Ok(());
    }
    Err(match max {
        Some(m) if m == min => format!("{min}"),
        Some(m) => format!("{min} to {m}"),
        None => format!("at least {min}"),
    })
}

/// A `DType` error for input `input` unless `ok`; `expected` says what would do. The one
/// place element-type failures are built, so every check words them alike.
fn dtype_check(
    input: usize,
    ty: &TensorType,
    ok: bool,
    expected: impl FnOnce() -> String,
) -> Result<(), InferError> {
    if ok {
        return Ok(());
    }
    Err(InferError::DType {
        input,
        got: ty.dtype,
        expected: expected(),
    })
}

/// Element types the activation, convolution and pooling ops compute in.
pub(crate) fn float(input: usize, ty: &TensorType) -> Result<(), InferError> {
    dtype_check(input, ty, ty.dtype.is_float(), || {
        "a float type (f32, f64)".into()
    })
}

/// Element types arithmetic is defined on (everything but bool).
pub(crate) fn numeric(input: usize, ty: &TensorType) -> Result<(), InferError> {
    dtype_check(input, ty, ty.dtype != DType::Bool, || {
        "a numeric type (f32, f64, i8, u8, i32, i64)".into()
    })
}

/// Index-like element types (Gather indices).
pub(crate) fn integer(input: usize, ty: &TensorType) -> Result<(), InferError> {
    dtype_check(input, ty, ty.dtype.is_integer(), || {
        "an integer type (i8, u8, i32, i64)".into()
    })
}

/// Fails unless input `input` has the same element type as input 0.
pub(crate) fn same_dtype(input: usize, ty: &TensorType, first: DType) -> Result<(), InferError> {
    dtype_check(input, ty, ty.dtype == first, || {
        format!("{first}, the element type of input 0")
    })
}

/// Fails unless input `input` has exactly element type `dtype`.
pub(crate) fn dtype_eq(input: usize, ty: &TensorType, dtype: DType) -> Result<(), InferError> {
    dtype_check(input, ty, ty.dtype == dtype, || dtype.to_string())
}

/// Fails unless input `input`'s rank is within `(min, max)`, worded as [`count`] words it.
fn rank_within(
    input: usize,
    ty: &TensorType,
    bounds: (usize, Option<usize>),
) -> Result<(), InferError> {
    let got = ty.rank();
    count(bounds, got).map_err(|expected| InferError::Rank {
        input,
        got,
        expected,
    })
}

pub(crate) fn rank_eq(input: usize, ty: &TensorType, rank: usize) -> Result<(), InferError> {
    rank_within(input, ty, (rank, Some(rank)))
}

pub(crate) fn rank_at_least(input: usize, ty: &TensorType, rank: usize) -> Result<(), InferError> {
    rank_within(input, ty, (rank, None))
}

/// Fails unless `axis < rank`.
pub(crate) fn axis(attr: &'static str, axis: usize, rank: usize) -> Result<(), InferError> {
    if axis < rank {
        Ok(())
    } else {
        Err(InferError::Axis { attr, axis, rank })
    }
}

/// Fails unless the axes are in range and distinct.
pub(crate) fn distinct_axes(
    attr: &'static str,
    axes: &[usize],
    rank: usize,
) -> Result<(), InferError> {
    for (i, &a) in axes.iter().enumerate() {
        axis(attr, a, rank)?;
        if axes[..i].contains(&a) {
            return Err(InferError::Attribute {
                attr,
                reason: format!("axis {a} appears more than once"),
            });
        }
    }
    Ok(())
}

/// A dimension that must be known at compile time; `what` says why, for the error.
pub(crate) fn known(dim: Dim, what: &str) -> Result<usize, InferError> {
    dim.known()
        .ok_or_else(|| InferError::Batch(format!("{what} must be known at compile time")))
}

/// Fails unless an attribute list has the expected length.
pub(crate) fn attr_len(attr: &'static str, len: usize, expected: usize) -> Result<(), InferError> {
    if len == expected {
        Ok(())
    } else {
        Err(InferError::Attribute {
            attr,
            reason: format!("has {len} values, expected {expected}"),
        })
    }
}

/// Broadcasts two dimensions; `None` when they are incompatible.
fn broadcast_dim(a: Dim, b: Dim) -> Result<Option<Dim>, String> {
    Ok(match (a, b) {
        (Dim::Known(x), Dim::Known(y)) if x == y => Some(a),
        (Dim::Known(1), other) | (other, Dim::Known(1)) => Some(other),
        (Dim::Batch, Dim::Batch) => Some(Dim::Batch),
        (Dim::Batch, Dim::Known(n)) | (Dim::Known(n), Dim::Batch) => {
            return Err(format!(
                "the batch dimension N would be broadcast against {n}, which fixes the batch size"
            ))
        }
        _ => None,
    })
}

/// Numpy (multidirectional) broadcasting. The batch symbol broadcasts with itself and with 1.
pub(crate) fn broadcast(a: &Shape, b: &Shape) -> Result<Shape, InferError> {
    let rank = a.rank().max(b.rank());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.rank() >= rank {
            a.0[i + a.rank() - rank]
        } else {
            Dim::Known(1)
        };
        let db = if i + b.rank() >= rank {
            b.0[i + b.rank() - rank]
        } else {
            Dim::Known(1)
        };
        match broadcast_dim(da, db) {
            Ok(Some(d)) => out.push(d),
            Ok(None) => {
                return Err(InferError::Broadcast {
                    a: a.clone(),
                    b: b.clone(),
                })
            }
            Err(reason) => return Err(InferError::Batch(reason)),
        }
    }
    Ok(Shape(out))
}

/// Unidirectional broadcasting: `from` (input `input`) must broadcast *to* `target` unchanged.
pub(crate) fn broadcast_to(input: usize, from: &Shape, target: &Shape) -> Result<(), InferError> {
    let mismatch = || InferError::ShapeMismatch {
        input,
        shape: from.clone(),
        reason: format!("cannot be broadcast to {target}"),
    };
    if from.rank() > target.rank() {
        return Err(mismatch());
    }
    let off = target.rank() - from.rank();
    for (i, &d) in from.0.iter().enumerate() {
        let t = target.0[off + i];
        match (d, t) {
            (Dim::Known(1), _) => {}
            (Dim::Known(x), Dim::Known(y)) if x == y => {}
            (Dim::Batch, Dim::Batch) => {}
            (Dim::Batch, Dim::Known(n)) | (Dim::Known(n), Dim::Batch) => {
                return Err(InferError::Batch(format!(
                    "input {input}: the batch dimension N would be broadcast against {n}"
                )))
            }
            _ => return Err(mismatch()),
        }
    }
    Ok(())
}

/// Product of a group of dimensions that is collapsed into one (Flatten). The batch symbol
/// survives only when everything it is merged with has size 1; otherwise the result would be
/// a multiple of the batch size, which the IR cannot express.
pub(crate) fn merge_dims(dims: &[Dim], what: &str) -> Result<Dim, InferError> {
    let known: usize = dims.iter().filter_map(|d| d.known()).product();
    let batches = dims.iter().filter(|d| **d == Dim::Batch).count();
    match batches {
        0 => Ok(Dim::Known(known)),
        1 if known == 1 => Ok(Dim::Batch),
        _ => Err(InferError::Batch(format!(
            "{what} would merge the batch dimension with other dimensions"
        ))),
    }
}

/// Test helper: `ty("f32[N,3,224,224]")`.
#[cfg(test)]
pub(crate) fn ty(s: &str) -> TensorType {
    let (d, rest) = s.split_once('[').expect("type has [");
    let dims = rest.trim_end_matches(']');
    let dims = if dims.is_empty() {
        vec![]
    } else {
        dims.split(',')
            .map(|x| match x {
                "N" => Dim::Batch,
                n => Dim::Known(n.parse().expect("dim")),
            })
            .collect()
    };
    TensorType::new(d.parse().expect("dtype"), Shape(dims))
}

/// Test helper: infer and render the output types as `f32[N,3]` strings.
#[cfg(test)]
pub(crate) fn run(op: &crate::Op, inputs: &[impl AsRef<str>]) -> Result<Vec<String>, InferError> {
    let tys: Vec<TensorType> = inputs.iter().map(|s| ty(s.as_ref())).collect();
    let refs: Vec<&TensorType> = tys.iter().collect();
    op.infer(&refs)
        .map(|v| v.iter().map(|t| t.to_string()).collect())
}

/// Test helper: asserts each `(op, inputs, outputs)` row infers those outputs.
#[cfg(test)]
pub(crate) fn assert_infers(cases: &[(&crate::Op, &[&str], &[&str])]) {
    for (op, inputs, outputs) in cases {
        let got = run(op, inputs).unwrap();
        assert_eq!(got, outputs.to_vec(), "{} on {inputs:?}", op.mnemonic());
    }
}

/// Test helper: `assert_rejects!(op, { inputs => pattern, … })` asserts inference fails on
/// each row's inputs with an error matching the row's pattern (one row per rejected case);
/// `assert_rejects!({ op, inputs => pattern, … })` names the op in each row.
#[cfg(test)]
macro_rules! assert_rejects {
    ({ $($op:expr, $inputs:expr => $err:pat),+ $(,)? }) => {$(
        let got = $crate::ops::check::run($op, &$inputs);
        assert!(matches!(got, Err($err)), "{:?} on {:?}: {got:?}", $op, $inputs);
    )+};
    ($op:expr, { $($inputs:expr => $err:pat),+ $(,)? }) => {
        $crate::ops::check::assert_rejects!({ $($op, $inputs => $err),+ })
    };
}
#[cfg(test)]
pub(crate) use assert_rejects;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_rules() {
        let b = |a: &str, c: &str| broadcast(&ty(a).shape, &ty(c).shape).map(|s| s.to_string());
        assert_eq!(b("f32[N,3,1]", "f32[4]").unwrap(), "[N,3,4]");
        assert_eq!(b("f32[1,3,1]", "f32[N,1,5]").unwrap(), "[N,3,5]");
        assert_eq!(b("f32[]", "f32[2,2]").unwrap(), "[2,2]");
        assert!(matches!(
            b("f32[3]", "f32[4]"),
            Err(InferError::Broadcast { .. })
        ));
        assert!(matches!(
            b("f32[N,3]", "f32[2,3]"),
            Err(InferError::Batch(_))
        ));
    }

    #[test]
    fn unidirectional() {
        let t = ty("f32[N,3,4]").shape;
        assert!(broadcast_to(1, &ty("f32[3,1]").shape, &t).is_ok());
        assert!(broadcast_to(1, &ty("f32[N,1,4]").shape, &t).is_ok());
        assert!(matches!(
            broadcast_to(1, &ty("f32[2,3,4]").shape, &t),
            Err(InferError::Batch(_))
        ));
        assert!(matches!(
            broadcast_to(1, &ty("f32[1,1,3,4]").shape, &t),
            Err(InferError::ShapeMismatch { input: 1, .. })
        ));
        assert!(matches!(
            broadcast_to(1, &ty("f32[5]").shape, &t),
            Err(InferError::ShapeMismatch { .. })
        ));
    }

    #[test]
    fn arity_messages() {
        let a = ty("f32[1]");
        assert_eq!(
            arity(&[&a], (2, Some(3))),
            Err(InferError::Arity {
                expected: "2 to 3".into(),
                got: 1
            })
        );
        assert!(arity(&[], (1, None)).is_err());
        assert!(arity(&[&a, &a, &a], (1, None)).is_ok());
    }
}
