//! Reductions over axes (ReduceMean, ReduceMax, ReduceSum) and ArgMax.

use strata_ir::ops::{ArgMax, Reduce};
use strata_ir::{Tensor, TensorData};

use super::index::next_index;
use super::{make, strides_of, with_elem, Elem};
use crate::RuntimeError;

/// Which axes `r` reduces, checked against the input's rank.
fn reduced_axes(op: &'static str, r: &Reduce, rank: usize) -> Result<Vec<bool>, RuntimeError> {
    let mut reduced = vec![false; rank];
    for &a in &r.axes {
        if a >= rank {
            return Err(RuntimeError::Attribute {
                op,
                attr: "axes",
                reason: format!("axis {a} is out of range for rank {rank}"),
            });
        }
        reduced[a] = true;
    }
    Ok(reduced)
}

/// The output shape with reduced axes kept as 1 (`kept`) and as the op returns it.
fn shapes(shape: &[usize], reduced: &[bool], keep_dims: bool) -> (Vec<usize>, Vec<usize>) {
    let kept: Vec<usize> = (0..shape.len())
        .map(|j| if reduced[j] { 1 } else { shape[j] })
        .collect();
    let out = if keep_dims {
        kept.clone()
    } else {
        (0..shape.len())
            .filter(|&j| !reduced[j])
            .map(|j| shape[j])
            .collect()
    };
    (kept, out)
}

/// Folds every element of `values` (row-major over `shape`) into the accumulator of its
/// output position; the accumulators start at `init`.
fn fold<T: Copy, A: Copy>(
    values: &[T],
    shape: &[usize],
    reduced: &[bool],
    kept: &[usize],
    init: A,
    f: impl Fn(A, T) -> A,
) -> Vec<A> {
    let rank = shape.len();
    let out_strides = strides_of(kept);
    let mut acc = vec![init; kept.iter().product()];
    let mut idx = vec![0usize; rank];
    for (n, &v) in values.iter().enumerate() {
        if n > 0 {
            next_index(&mut idx, shape);
        }
        let o: usize = (0..rank)
            .filter(|&j| !reduced[j])
            .map(|j| idx[j] * out_strides[j])
            .sum();
        acc[o] = f(acc[o], v);
    }
    acc
}

/// Mean over `axes`, accumulated in f64 and converted back to the element type (integers
/// truncate toward zero, as the ONNX reference's `astype` does).
pub fn reduce_mean(r: &Reduce, t: &Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "reduce_mean";
    let reduced = reduced_axes(OP, r, t.rank())?;
    if matches!(t.data(), TensorData::Bool(_)) {
        return Err(RuntimeError::unsupported(OP, 0, t.dtype()));
    }
    let shape = t.shape();
    let (kept, out_shape) = shapes(shape, &reduced, r.keep_dims);
    let count: usize = (0..shape.len())
        .filter(|&j| reduced[j])
        .map(|j| shape[j])
        .product();
    let sums = fold(&t.to_f64_vec(), shape, &reduced, &kept, 0.0f64, |a, v| {
        a + v
    });
    let means = sums.into_iter().map(|s| s / count as f64);
    let data = match t.data() {
        TensorData::F32(_) => TensorData::F32(means.map(|m| m as f32).collect()),
        TensorData::F64(_) => TensorData::F64(means.collect()),
        TensorData::I8(_) => TensorData::I8(means.map(|m| m as i8).collect()),
        TensorData::U8(_) => TensorData::U8(means.map(|m| m as u8).collect()),
        TensorData::I32(_) => TensorData::I32(means.map(|m| m as i32).collect()),
        TensorData::I64(_) => TensorData::I64(means.map(|m| m as i64).collect()),
        TensorData::Bool(_) => return Err(RuntimeError::unsupported(OP, 0, t.dtype())),
    };
    make(OP, out_shape, data)
}

/// Sum over `axes`: floats accumulate in f64 (then round once), integers wrap (accumulated
/// in i64 and truncated, which wraps the same). An empty reduction is 0.
pub fn reduce_sum(r: &Reduce, t: &Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "reduce_sum";
    let reduced = reduced_axes(OP, r, t.rank())?;
    let shape = t.shape();
    let (kept, out_shape) = shapes(shape, &reduced, r.keep_dims);
    let float = || {
        fold(&t.to_f64_vec(), shape, &reduced, &kept, 0.0f64, |a, v| {
            a + v
        })
    };
    let int = || {
        let v = t.to_i64_vec().unwrap_or_default();
        fold(&v, shape, &reduced, &kept, 0i64, i64::wrapping_add)
    };
    let data = match t.data() {
        TensorData::F32(_) => TensorData::F32(float().into_iter().map(|s| s as f32).collect()),
        TensorData::F64(_) => TensorData::F64(float()),
        TensorData::I8(_) => TensorData::I8(int().into_iter().map(|s| s as i8).collect()),
        TensorData::U8(_) => TensorData::U8(int().into_iter().map(|s| s as u8).collect()),
        TensorData::I32(_) => TensorData::I32(int().into_iter().map(|s| s as i32).collect()),
        TensorData::I64(_) => TensorData::I64(int()),
        TensorData::Bool(_) => return Err(RuntimeError::unsupported(OP, 0, t.dtype())),
    };
    make(OP, out_shape, data)
}

/// Max over `axes`. NaN propagates (numpy's `maximum.reduce`); an empty reduction gives the
/// type's lowest value (−inf for floats, as ReduceMax-18 specifies); bools reduce with "or".
pub fn reduce_max(r: &Reduce, t: &Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "reduce_max";
    let reduced = reduced_axes(OP, r, t.rank())?;
    let shape = t.shape();
    let (kept, out_shape) = shapes(shape, &reduced, r.keep_dims);
    if let TensorData::Bool(v) = t.data() {
        let any = fold(v, shape, &reduced, &kept, false, |a, x| a || x);
        return make(OP, out_shape, TensorData::Bool(any));
    }
    fn go<T: Elem + PartialOrd>(t: &Tensor, reduced: &[bool], kept: &[usize]) -> TensorData {
        let v = T::slice(t.data()).unwrap_or_default();
        #[allow(clippy::eq_op)]
        let max = fold(
            v,
            t.shape(),
            reduced,
            kept,
            T::from_f64(f64::NEG_INFINITY),
            |a, x| {
                if x > a || x != x {
                    x
                } else {
                    a
                }
            },
        );
        T::wrap(max)
    }
    let data = with_elem!(t.dtype(), go(t, &reduced, &kept));
    make(OP, out_shape, data)
}

/// ArgMax along `axis`: the first index of the largest value (the last with
/// `select_last_index`); a NaN counts as the largest, its first occurrence wins (numpy).
pub fn arg_max(a: &ArgMax, t: &Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "arg_max";
    let shape = t.shape();
    let rank = shape.len();
    if a.axis >= rank {
        return Err(RuntimeError::Attribute {
            op: OP,
            attr: "axis",
            reason: format!("axis {} is out of range for rank {rank}", a.axis),
        });
    }
    let len = shape[a.axis];
    if len == 0 {
        return Err(RuntimeError::Shape {
            op: OP,
            reason: format!("axis {} of {shape:?} is empty: there is no maximum", a.axis),
        });
    }
    if matches!(t.data(), TensorData::Bool(_)) {
        return Err(RuntimeError::unsupported(OP, 0, t.dtype()));
    }
    let outer: usize = shape[..a.axis].iter().product();
    let inner: usize = shape[a.axis + 1..].iter().product();
    fn go<T: Elem + PartialOrd>(
        t: &Tensor,
        a: &ArgMax,
        outer: usize,
        len: usize,
        inner: usize,
    ) -> Vec<i64> {
        let v = T::slice(t.data()).unwrap_or_default();
        let mut out = Vec::with_capacity(outer * inner);
        for o in 0..outer {
            for i in 0..inner {
                let at = |k: usize| v[(o * len + k) * inner + i];
                let mut best = 0usize;
                for k in 1..len {
                    let (x, b) = (at(k), at(best));
                    #[allow(clippy::eq_op)]
                    let (x_nan, b_nan) = (x != x, b != b);
                    let better = if b_nan {
                        false
                    } else {
                        x_nan || x > b || (a.select_last_index && x == b)
                    };
                    if better {
                        best = k;
                    }
                }
                out.push(best as i64);
            }
        }
        out
    }
    let idx = with_elem!(t.dtype(), go(t, a, outer, len, inner));
    let mut reduced = vec![false; rank];
    reduced[a.axis] = true;
    let (_, out_shape) = shapes(shape, &reduced, a.keep_dims);
    make(OP, out_shape, TensorData::I64(idx))
}
