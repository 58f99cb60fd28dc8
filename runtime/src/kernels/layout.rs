//! Data-movement kernels for every element type: Flatten, Reshape, Transpose, Concat, Pad,
//! Squeeze, Unsqueeze, Shape, Gather, Slice, Split and Expand. Pure relabelling ops (Flatten,
//! Reshape, Squeeze, Unsqueeze) take the tensor by value so the runtime can move a dead
//! intermediate instead of copying it.

use strata_ir::ops::{Pad, PadMode, Reshape, Slice, Split};
use strata_ir::{Tensor, TensorData};

use super::index::{next_index, offset_inside};
use super::{checked_numel, make, same_dtype, strides_of, with_elem, Elem};
use crate::RuntimeError;

/// The elements of `t` as `T`, or a dtype-mismatch error naming the input.
fn elems<'a, T: Elem>(
    op: &'static str,
    t: &'a Tensor,
    input: usize,
    expected: &Tensor,
) -> Result<&'a [T], RuntimeError> {
    T::slice(t.data()).ok_or(RuntimeError::DTypeMismatch {
        op,
        input,
        expected: expected.dtype(),
        got: t.dtype(),
    })
}

fn relabel(op: &'static str, t: Tensor, shape: Vec<usize>) -> Result<Tensor, RuntimeError> {
    let from = t.shape().to_vec();
    t.reshaped(shape).map_err(|e| RuntimeError::Shape {
        op,
        reason: format!("cannot view {from:?} as {:?}: {e}", e.shape),
    })
}

/// Flatten to `[prod(dims[..axis]), prod(dims[axis..])]`.
pub fn flatten(axis: usize, t: Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "flatten";
    if axis > t.rank() {
        return Err(RuntimeError::Attribute {
            op: OP,
            attr: "axis",
            reason: format!("{axis} exceeds rank {}", t.rank()),
        });
    }
    let a = t.shape()[..axis].iter().product();
    let b = t.shape()[axis..].iter().product();
    relabel(OP, t, vec![a, b])
}

/// ONNX Reshape: `0` copies the input dimension (unless `allow_zero`), `-1` is inferred.
pub fn reshape(r: &Reshape, t: Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "reshape";
    let bad = |reason: String| RuntimeError::Attribute {
        op: OP,
        attr: "shape",
        reason,
    };
    let mut out = Vec::with_capacity(r.shape.len());
    let mut infer_at = None;
    for (i, &d) in r.shape.iter().enumerate() {
        match d {
            -1 => {
                if infer_at.replace(i).is_some() {
                    return Err(bad(format!("{:?} has more than one -1", r.shape)));
                }
                out.push(1);
            }
            0 if !r.allow_zero => match t.shape().get(i) {
                Some(&n) => out.push(n),
                None => {
                    return Err(bad(format!(
                        "{:?}: 0 at position {i} but the input {:?} has no such axis",
                        r.shape,
                        t.shape()
                    )))
                }
            },
            d if d < 0 => return Err(bad(format!("{:?} has the invalid value {d}", r.shape))),
            d => out.push(usize::try_from(d).map_err(|_| bad(format!("{d} is too large")))?),
        }
    }
    if r.allow_zero && infer_at.is_some() && r.shape.contains(&0) {
        return Err(bad(format!("{:?} mixes 0 and -1 with allow_zero", r.shape)));
    }
    let total = t.len();
    if let Some(i) = infer_at {
        let known = out
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .try_fold(1usize, |acc, (_, &d)| acc.checked_mul(d))
            .ok_or_else(|| bad(format!("{:?} overflows", r.shape)))?;
        if known == 0 || total % known != 0 {
            return Err(RuntimeError::Shape {
                op: OP,
                reason: format!(
                    "cannot infer the -1 in {:?} for an input of shape {:?}",
                    r.shape,
                    t.shape()
                ),
            });
        }
        out[i] = total / known;
    }
    relabel(OP, t, out)
}

/// Permutes axes; an empty `perm` reverses them (ONNX default).
pub fn transpose(perm: &[usize], t: &Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "transpose";
    let rank = t.rank();
    let perm: Vec<usize> = if perm.is_empty() {
        (0..rank).rev().collect()
    } else {
        perm.to_vec()
    };
    let mut seen = vec![false; rank];
    if perm.len() != rank
        || perm
            .iter()
            .any(|&p| p >= rank || std::mem::replace(&mut seen[p], true))
    {
        return Err(RuntimeError::Attribute {
            op: OP,
            attr: "perm",
            reason: format!(
                "{perm:?} is not a permutation of the {rank} axes of {:?}",
                t.shape()
            ),
        });
    }
    let shape: Vec<usize> = perm.iter().map(|&p| t.shape()[p]).collect();
    fn go<T: Elem>(
        t: &Tensor,
        perm: &[usize],
        shape: &[usize],
    ) -> Result<TensorData, RuntimeError> {
        let v = elems::<T>(OP, t, 0, t)?;
        let ist = strides_of(t.shape());
        let pst: Vec<usize> = perm.iter().map(|&p| ist[p]).collect();
        Ok(T::wrap(gather_strided(v, shape, &pst, 0)))
    }
    let data = with_elem!(t.dtype(), go(t, &perm, &shape))?;
    make(OP, shape, data)
}

/// Reads `v[base + Σ idx_j · strides_j]` for every index of `shape`, in row-major order.
fn gather_strided<T: Elem>(v: &[T], shape: &[usize], strides: &[usize], base: usize) -> Vec<T> {
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    if n == 0 {
        return out;
    }
    let rank = shape.len();
    if rank == 0 {
        out.push(v[base]);
        return out;
    }
    let inner = shape[rank - 1];
    let is = strides[rank - 1];
    let mut idx = vec![0usize; rank - 1];
    let rows = n / inner;
    for r in 0..rows {
        if r > 0 {
            next_index(&mut idx, &shape[..rank - 1]);
        }
        let off = base + idx.iter().zip(strides).map(|(i, s)| i * s).sum::<usize>();
        if is == 1 {
            out.extend_from_slice(&v[off..off + inner]);
        } else {
            out.extend((0..inner).map(|k| v[off + k * is]));
        }
    }
    out
}

/// Concatenates along `axis`; all inputs share dtype, rank and every other dimension.
pub fn concat(axis: usize, inputs: &[&Tensor]) -> Result<Tensor, RuntimeError> {
    const OP: &str = "concat";
    let first = inputs[0];
    let rank = first.rank();
    if axis >= rank {
        return Err(RuntimeError::Attribute {
            op: OP,
            attr: "axis",
            reason: format!("{axis} is out of range for rank {rank}"),
        });
    }
    let mut shape = first.shape().to_vec();
    shape[axis] = 0;
    for (i, t) in inputs.iter().enumerate() {
        same_dtype(OP, first, i, t)?;
        let same =
            t.rank() == rank && (0..rank).all(|j| j == axis || t.shape()[j] == first.shape()[j]);
        if !same {
            return Err(RuntimeError::Shape {
                op: OP,
                reason: format!(
                    "input {i} has shape {:?}, incompatible with input 0 {:?} on axis {axis}",
                    t.shape(),
                    first.shape()
                ),
            });
        }
        shape[axis] = shape[axis].saturating_add(t.shape()[axis]);
    }
    let total = checked_numel(OP, &shape)?;
    let outer: usize = shape[..axis].iter().product();
    let inner: usize = shape[axis + 1..].iter().product();
    fn go<T: Elem>(
        inputs: &[&Tensor],
        outer: usize,
        inner: usize,
        axis: usize,
        total: usize,
    ) -> Result<TensorData, RuntimeError> {
        let parts: Vec<(&[T], usize)> = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| Ok((elems::<T>(OP, t, i, inputs[0])?, t.shape()[axis] * inner)))
            .collect::<Result<_, RuntimeError>>()?;
        let mut out = Vec::with_capacity(total);
        for o in 0..outer {
            for (v, chunk) in &parts {
                out.extend_from_slice(&v[o * chunk..(o + 1) * chunk]);
            }
        }
        Ok(T::wrap(out))
    }
    let data = with_elem!(first.dtype(), go(inputs, outer, inner, axis, total))?;
    make(OP, shape, data)
}

/// Constant-mode Pad; negative pads crop. The pad value is cast to the element type.
pub fn pad(p: &Pad, t: &Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "pad";
    let rank = t.rank();
    let (got, want) = (p.pads.len(), 2 * rank);
    if got != want {
        let reason = format!(
            "has {got} values but the input {:?} needs {want}",
            t.shape()
        );
        return Err(RuntimeError::attribute(OP, "pads", reason));
    }
    if let Some(bad) = p
        .pads
        .iter()
        .find(|v| v.unsigned_abs() > super::MAX_ELEMENTS as u64)
    {
        return Err(RuntimeError::Attribute {
            op: OP,
            attr: "pads",
            reason: format!("pad {bad} is out of range"),
        });
    }
    let mut shape = Vec::with_capacity(rank);
    for j in 0..rank {
        let d = t.shape()[j] as i128 + p.pads[j] as i128 + p.pads[rank + j] as i128;
        if d < 0 || d > usize::MAX as i128 {
            return Err(RuntimeError::Attribute {
                op: OP,
                attr: "pads",
                reason: format!("{:?} makes axis {j} of {:?} negative", p.pads, t.shape()),
            });
        }
        shape.push(d as usize);
    }
    let total = checked_numel(OP, &shape)?;
    fn go<T: Elem>(
        t: &Tensor,
        p: &Pad,
        shape: &[usize],
        total: usize,
    ) -> Result<TensorData, RuntimeError> {
        let v = elems::<T>(OP, t, 0, t)?;
        if p.mode != PadMode::Constant {
            return copy_border(v, t.shape(), shape, p, total).map(T::wrap);
        }
        let mut out = vec![T::from_f64(p.value); total];
        let rank = shape.len();
        if rank == 0 {
            out.copy_from_slice(v);
            return Ok(T::wrap(out));
        }
        if total == 0 || v.is_empty() {
            return Ok(T::wrap(out));
        }
        let ishape = t.shape();
        let ost = strides_of(shape);
        let last = rank - 1;
        let (b, il, ol) = (p.pads[last], ishape[last] as i64, shape[last] as i64);
        // Input range on the last axis that lands inside the output.
        let lo = (-b).max(0);
        let hi = il.min(ol - b);
        let inner = ishape[last];
        let mut idx = vec![0usize; last];
        for r in 0..v.len() / inner {
            if r > 0 {
                next_index(&mut idx, &ishape[..last]);
            }
            if lo >= hi {
                continue;
            }
            let pos = |j: usize| (idx[j] as i64 + p.pads[j]) as isize;
            let Some(off) = offset_inside(&shape[..last], &ost, pos) else {
                continue;
            };
            let src = &v[r * inner + lo as usize..r * inner + hi as usize];
            let dst = off + (lo + b) as usize;
            out[dst..dst + src.len()].copy_from_slice(src);
        }
        Ok(T::wrap(out))
    }
    let data = with_elem!(t.dtype(), go(t, p, &shape, total))?;
    make(OP, shape, data)
}

/// The input index that output index `o` of an axis copies in a copying pad mode (`b` is
/// the axis's begin pad, `n > 0` its input size): numpy's `edge`, `reflect` and `wrap`.
fn border_source(mode: PadMode, o: usize, b: i64, n: usize) -> usize {
    let (i, n) = (o as i64 - b, n as i64);
    let j = match mode {
        PadMode::Edge | PadMode::Constant => i.clamp(0, n - 1),
        PadMode::Reflect if n == 1 => 0,
        PadMode::Reflect => {
            let period = 2 * (n - 1);
            let m = i.rem_euclid(period);
            if m >= n {
                period - m
            } else {
                m
            }
        }
        PadMode::Wrap => i.rem_euclid(n),
    };
    j as usize
}

/// Pad in a copying mode: every output element is an input element (see [`border_source`]).
fn copy_border<T: Elem>(
    v: &[T],
    ishape: &[usize],
    shape: &[usize],
    p: &Pad,
    total: usize,
) -> Result<Vec<T>, RuntimeError> {
    const OP: &str = "pad";
    let rank = shape.len();
    if total == 0 {
        return Ok(Vec::new());
    }
    if let Some(j) = (0..rank).find(|&j| ishape[j] == 0) {
        let reason = format!(
            "axis {j} of {ishape:?} is empty: {} padding has nothing to copy",
            p.mode.name()
        );
        return Err(RuntimeError::attribute(OP, "pads", reason));
    }
    let ist = strides_of(ishape);
    let mut idx = vec![0usize; rank];
    let mut out = Vec::with_capacity(total);
    for k in 0..total {
        if k > 0 {
            next_index(&mut idx, shape);
        }
        let src: usize = (0..rank)
            .map(|j| border_source(p.mode, idx[j], p.pads[j], ishape[j]) * ist[j])
            .sum();
        out.push(v[src]);
    }
    Ok(out)
}

/// Expand: broadcasts `t` to the numpy broadcast of its shape and `target`.
pub fn expand(target: &[usize], t: &Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "expand";
    let shape = super::elementwise::broadcast_shape(OP, t.shape(), target)?;
    let total = checked_numel(OP, &shape)?;
    fn go<T: Elem>(t: &Tensor, shape: &[usize], total: usize) -> Result<TensorData, RuntimeError> {
        let v = elems::<T>(OP, t, 0, t)?;
        let st = super::elementwise::broadcast_strides(t.shape(), shape);
        let mut idx = vec![0usize; shape.len()];
        let mut out = Vec::with_capacity(total);
        for k in 0..total {
            if k > 0 {
                next_index(&mut idx, shape);
            }
            out.push(v[idx.iter().zip(&st).map(|(i, s)| i * s).sum::<usize>()]);
        }
        Ok(T::wrap(out))
    }
    let data = with_elem!(t.dtype(), go(t, &shape, total))?;
    make(OP, shape, data)
}

/// Removes size-1 axes (`axes` empty: every size-1 axis, as ONNX).
pub fn squeeze(axes: &[usize], t: Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "squeeze";
    let shape = t.shape().to_vec();
    for &a in axes {
        if a >= shape.len() || shape[a] != 1 {
            return Err(RuntimeError::Attribute {
                op: OP,
                attr: "axes",
                reason: format!("axis {a} of {shape:?} is not a size-1 axis"),
            });
        }
    }
    let out: Vec<usize> = shape
        .iter()
        .enumerate()
        .filter(|&(i, &d)| {
            if axes.is_empty() {
                d != 1
            } else {
                !axes.contains(&i)
            }
        })
        .map(|(_, &d)| d)
        .collect();
    relabel(OP, t, out)
}

/// Inserts size-1 axes at `axes` (positions in the output).
pub fn unsqueeze(axes: &[usize], t: Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "unsqueeze";
    let rank = t.rank() + axes.len();
    let mut is_new = vec![false; rank];
    for &a in axes {
        if a >= rank || std::mem::replace(&mut is_new[a], true) {
            return Err(RuntimeError::Attribute {
                op: OP,
                attr: "axes",
                reason: format!(
                    "{axes:?} is out of range or repeats an axis for output rank {rank}"
                ),
            });
        }
    }
    let mut src = t.shape().iter();
    let out: Vec<usize> = is_new
        .iter()
        .map(|&n| {
            if n {
                1
            } else {
                src.next().copied().unwrap_or(1)
            }
        })
        .collect();
    relabel(OP, t, out)
}

/// The input's dimensions `start..end` as an i64 vector.
pub fn shape(start: usize, end: usize, t: &Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "shape";
    if start > end || end > t.rank() {
        return Err(RuntimeError::Attribute {
            op: OP,
            attr: "start/end",
            reason: format!("{start}..{end} is not a range of the {} axes", t.rank()),
        });
    }
    let dims: Vec<i64> = t.shape()[start..end].iter().map(|&d| d as i64).collect();
    make(OP, vec![dims.len()], TensorData::I64(dims))
}

/// ONNX Gather along `axis`; negative indices count from the end, out-of-range ones are errors.
pub fn gather(axis: usize, data: &Tensor, indices: &Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "gather";
    if axis >= data.rank() {
        return Err(RuntimeError::Attribute {
            op: OP,
            attr: "axis",
            reason: format!("{axis} is out of range for rank {}", data.rank()),
        });
    }
    let idx = match indices.data() {
        TensorData::I8(_) | TensorData::U8(_) | TensorData::I32(_) | TensorData::I64(_) => {
            indices.to_i64_vec().unwrap_or_default()
        }
        _ => return Err(RuntimeError::unsupported(OP, 1, indices.dtype())),
    };
    let size = data.shape()[axis];
    let mut resolved = Vec::with_capacity(idx.len());
    for (position, &i) in idx.iter().enumerate() {
        let j = if i < 0 { i + size as i64 } else { i };
        if j < 0 || j >= size as i64 {
            return Err(RuntimeError::IndexOutOfRange {
                op: OP,
                index: i,
                position,
                axis,
                size,
            });
        }
        resolved.push(j as usize);
    }
    let mut shape = data.shape()[..axis].to_vec();
    shape.extend(indices.shape());
    shape.extend(&data.shape()[axis + 1..]);
    let total = checked_numel(OP, &shape)?;
    let outer: usize = data.shape()[..axis].iter().product();
    let inner: usize = data.shape()[axis + 1..].iter().product();
    fn go<T: Elem>(
        data: &Tensor,
        resolved: &[usize],
        outer: usize,
        inner: usize,
        size: usize,
        total: usize,
    ) -> Result<TensorData, RuntimeError> {
        let v = elems::<T>(OP, data, 0, data)?;
        let mut out = Vec::with_capacity(total);
        for o in 0..outer {
            for &j in resolved {
                let s = (o * size + j) * inner;
                out.extend_from_slice(&v[s..s + inner]);
            }
        }
        Ok(T::wrap(out))
    }
    let out = with_elem!(data.dtype(), go(data, &resolved, outer, inner, size, total))?;
    make(OP, shape, out)
}

/// ONNX Slice with clamping of out-of-range starts/ends and negative steps.
pub fn slice(s: &Slice, t: &Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "slice";
    let rank = t.rank();
    let n = s.axes.len();
    let lens = [s.starts.len(), s.ends.len(), n, s.steps.len()];
    if lens != [n; 4] {
        let [b, e, _, st] = lens;
        let reason = format!("lengths differ: {b} starts, {e} ends, {n} axes, {st} steps");
        return Err(RuntimeError::attribute(
            OP,
            "starts/ends/axes/steps",
            reason,
        ));
    }
    // Per axis: first index, step, length.
    let mut start: Vec<i128> = vec![0; rank];
    let mut step: Vec<i128> = vec![1; rank];
    let mut len: Vec<usize> = t.shape().to_vec();
    let mut seen = vec![false; rank];
    for i in 0..n {
        let a = s.axes[i];
        if a >= rank || std::mem::replace(&mut seen[a], true) {
            return Err(RuntimeError::Attribute {
                op: OP,
                attr: "axes",
                reason: format!(
                    "{:?} is out of range or repeats an axis for rank {rank}",
                    s.axes
                ),
            });
        }
        let st = s.steps[i] as i128;
        if st == 0 {
            return Err(RuntimeError::Attribute {
                op: OP,
                attr: "steps",
                reason: format!("step for axis {a} is 0"),
            });
        }
        let dim = t.shape()[a] as i128;
        let mut b = s.starts[i] as i128;
        let mut e = s.ends[i] as i128;
        if b < 0 {
            b += dim;
        }
        if e < 0 {
            e += dim;
        }
        let count = if st > 0 {
            b = b.clamp(0, dim);
            e = e.clamp(0, dim);
            if e > b {
                (e - b + st - 1) / st
            } else {
                0
            }
        } else {
            b = b.clamp(0, (dim - 1).max(0));
            e = e.clamp(-1, dim - 1);
            if b > e && dim > 0 {
                (b - e + (-st) - 1) / (-st)
            } else {
                0
            }
        };
        start[a] = b;
        step[a] = st;
        len[a] = count as usize;
    }
    let total = checked_numel(OP, &len)?;
    fn go<T: Elem>(
        t: &Tensor,
        start: &[i128],
        step: &[i128],
        len: &[usize],
        total: usize,
    ) -> Result<TensorData, RuntimeError> {
        let v = elems::<T>(OP, t, 0, t)?;
        let shape = t.shape();
        let ist = strides_of(shape);
        let rank = len.len();
        let mut out = Vec::with_capacity(total);
        if total == 0 {
            return Ok(T::wrap(out));
        }
        // Trailing axes taken whole, plus one more taken with step 1, are one contiguous run
        // of the input: copied as a block (batch slices of calibration data are one run per
        // sample instead of one index computation per element).
        let mut cut = rank;
        while cut > 0 && start[cut - 1] == 0 && step[cut - 1] == 1 && len[cut - 1] == shape[cut - 1]
        {
            cut -= 1;
        }
        let outer = if cut > 0 && step[cut - 1] == 1 {
            cut - 1
        } else {
            cut
        };
        let block: usize = len[outer..].iter().product();
        let base: i128 = (outer..rank).map(|j| start[j] * ist[j] as i128).sum();
        let mut idx = vec![0usize; outer];
        for r in 0..total / block {
            if r > 0 {
                next_index(&mut idx, &len[..outer]);
            }
            let off: i128 = base
                + (0..outer)
                    .map(|j| (start[j] + idx[j] as i128 * step[j]) * ist[j] as i128)
                    .sum::<i128>();
            let off = off as usize;
            out.extend_from_slice(&v[off..off + block]);
        }
        Ok(T::wrap(out))
    }
    let data = with_elem!(t.dtype(), go(t, &start, &step, &len, total))?;
    make(OP, len, data)
}

/// Splits along `axis` into pieces of the given sizes, which must add up to the axis length.
pub fn split(s: &Split, t: &Tensor) -> Result<Vec<Tensor>, RuntimeError> {
    const OP: &str = "split";
    if s.axis >= t.rank() {
        return Err(RuntimeError::Attribute {
            op: OP,
            attr: "axis",
            reason: format!("{} is out of range for rank {}", s.axis, t.rank()),
        });
    }
    let dim = t.shape()[s.axis];
    let sum = s.sizes.iter().try_fold(0usize, |a, &b| a.checked_add(b));
    if sum != Some(dim) {
        return Err(RuntimeError::Attribute {
            op: OP,
            attr: "sizes",
            reason: format!(
                "{:?} do not add up to the axis length {dim} of {:?}",
                s.sizes,
                t.shape()
            ),
        });
    }
    let outer: usize = t.shape()[..s.axis].iter().product();
    let inner: usize = t.shape()[s.axis + 1..].iter().product();
    fn go<T: Elem>(
        t: &Tensor,
        sizes: &[usize],
        outer: usize,
        inner: usize,
        dim: usize,
    ) -> Result<Vec<TensorData>, RuntimeError> {
        let v = elems::<T>(OP, t, 0, t)?;
        let mut offset = 0;
        let mut parts = Vec::with_capacity(sizes.len());
        for &sz in sizes {
            let mut out = Vec::with_capacity(outer * sz * inner);
            for o in 0..outer {
                let s = (o * dim + offset) * inner;
                out.extend_from_slice(&v[s..s + sz * inner]);
            }
            offset += sz;
            parts.push(T::wrap(out));
        }
        Ok(parts)
    }
    let parts = with_elem!(t.dtype(), go(t, &s.sizes, outer, inner, dim))?;
    parts
        .into_iter()
        .zip(&s.sizes)
        .map(|(d, &sz)| {
            let mut shape = t.shape().to_vec();
            shape[s.axis] = sz;
            make(OP, shape, d)
        })
        .collect()
}
