//! Symbolic constant propagation for shape arithmetic.
//!
//! Exporters compute reshape targets at run time (`x.view(x.size(0), -1)` becomes
//! Shape → Gather → Unsqueeze → Concat → Reshape). Strata needs those targets static, so the
//! frontend evaluates such chains during import on small integer vectors whose elements are
//! either known or the batch size. A value that ends up fully known becomes a constant; one
//! that still mentions the batch size reaches Reshape, where `Batch` turns into `0` (copy).

use strata_ir::ops::{BinaryOp, CompareOp, VariadicOp};
use strata_ir::{DType, Dim, Op, Tensor, TensorData};

/// The longest vector tracked symbolically (shape vectors are short).
pub const MAX_SYM_LEN: usize = 64;

/// One element of a shape vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymInt {
    Known(i64),
    /// The graph's free batch size.
    Batch,
}

/// A rank-0 or rank-1 integer value with symbolic elements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymTensor {
    pub dtype: DType,
    /// `[]` for a scalar, `[n]` for a vector.
    pub shape: Vec<usize>,
    pub elems: Vec<SymInt>,
}

impl SymTensor {
    /// The symbolic view of a small integer (or bool: 0/1) constant.
    pub fn from_tensor(t: &Tensor) -> Option<SymTensor> {
        let tracked = t.dtype().is_integer() || t.dtype() == DType::Bool;
        if t.rank() > 1 || t.len() > MAX_SYM_LEN || !tracked {
            return None;
        }
        let v = t.to_i64_vec()?;
        Some(SymTensor {
            dtype: t.dtype(),
            shape: t.shape().to_vec(),
            elems: v.into_iter().map(SymInt::Known).collect(),
        })
    }

    /// The elements if none is symbolic.
    pub fn known(&self) -> Option<Vec<i64>> {
        self.elems
            .iter()
            .map(|e| match e {
                SymInt::Known(v) => Some(*v),
                SymInt::Batch => None,
            })
            .collect()
    }

    /// A concrete tensor of this value's type, when fully known and representable.
    pub fn to_tensor(&self) -> Option<Tensor> {
        let v = self.known()?;
        let data = match self.dtype {
            DType::I64 => TensorData::I64(v),
            DType::I32 => TensorData::I32(
                v.iter()
                    .map(|&x| i32::try_from(x).ok())
                    .collect::<Option<_>>()?,
            ),
            DType::I8 => TensorData::I8(
                v.iter()
                    .map(|&x| i8::try_from(x).ok())
                    .collect::<Option<_>>()?,
            ),
            DType::U8 => TensorData::U8(
                v.iter()
                    .map(|&x| u8::try_from(x).ok())
                    .collect::<Option<_>>()?,
            ),
            DType::Bool => TensorData::Bool(
                v.iter()
                    .map(|&x| (x == 0 || x == 1).then_some(x == 1))
                    .collect::<Option<_>>()?,
            ),
            _ => return None,
        };
        Tensor::new(self.shape.clone(), data).ok()
    }

    fn vector(dtype: DType, elems: Vec<SymInt>) -> SymTensor {
        SymTensor {
            dtype,
            shape: vec![elems.len()],
            elems,
        }
    }
}

/// The dimensions of a type as a symbolic vector (`Shape` with `start..end`).
pub fn shape_of(dims: &[Dim], start: usize, end: usize) -> Option<SymTensor> {
    let elems = dims
        .get(start..end)?
        .iter()
        .map(|d| match d {
            Dim::Known(n) => i64::try_from(*n).ok().map(SymInt::Known),
            Dim::Batch => Some(SymInt::Batch),
        })
        .collect::<Option<Vec<_>>>()?;
    Some(SymTensor::vector(DType::I64, elems))
}

fn binary(op: BinaryOp, a: SymInt, b: SymInt) -> Option<SymInt> {
    use SymInt::{Batch, Known};
    Some(match (op, a, b) {
        (BinaryOp::Add, Known(x), Known(y)) => Known(x.checked_add(y)?),
        (BinaryOp::Sub, Known(x), Known(y)) => Known(x.checked_sub(y)?),
        (BinaryOp::Mul, Known(x), Known(y)) => Known(x.checked_mul(y)?),
        (BinaryOp::Div, Known(x), Known(y)) => Known(x.checked_div(y)?),
        (BinaryOp::Add | BinaryOp::Sub, Batch, Known(0)) => Batch,
        (BinaryOp::Add, Known(0), Batch) => Batch,
        (BinaryOp::Mul | BinaryOp::Div, Batch, Known(1)) => Batch,
        (BinaryOp::Mul, Known(1), Batch) => Batch,
        _ => return None,
    })
}

fn extremum(op: VariadicOp, a: SymInt, b: SymInt) -> Option<SymInt> {
    match (a, b) {
        (SymInt::Known(x), SymInt::Known(y)) => Some(SymInt::Known(match op {
            VariadicOp::Max => x.max(y),
            VariadicOp::Min => x.min(y),
        })),
        _ if a == b => Some(a),
        _ => None,
    }
}

/// Equal on shape elements. The batch size is at least 1, so it differs from any known value
/// below 1 (the `-1` of TorchScript's `expand` pattern, `Where(Equal(shape, -1), 1, shape)`);
/// against a positive value it is unknown.
fn equal(a: SymInt, b: SymInt) -> Option<SymInt> {
    use SymInt::{Batch, Known};
    Some(match (a, b) {
        (Known(x), Known(y)) => Known((x == y) as i64),
        (Batch, Batch) => Known(1),
        (Batch, Known(k)) | (Known(k), Batch) if k < 1 => Known(0),
        _ => return None,
    })
}

/// Applies `f` element-wise to two rank ≤ 1 values, broadcasting a one-element side.
fn zip(
    x: &SymTensor,
    y: &SymTensor,
    dtype: DType,
    f: impl Fn(SymInt, SymInt) -> Option<SymInt>,
) -> Option<SymTensor> {
    let rank = x.shape.len().max(y.shape.len());
    let n = match (x.elems.len(), y.elems.len()) {
        (a, b) if a == b => a,
        (1, b) => b,
        (a, 1) => a,
        _ => return None,
    };
    let elems = (0..n)
        .map(|i| {
            let a = x.elems[if x.elems.len() == 1 { 0 } else { i }];
            let c = y.elems[if y.elems.len() == 1 { 0 } else { i }];
            f(a, c)
        })
        .collect::<Option<Vec<_>>>()?;
    Some(SymTensor {
        dtype,
        shape: if rank == 0 { vec![] } else { vec![n] },
        elems,
    })
}

/// Evaluates `op` on symbolic inputs; `None` when the op or the operands are outside what
/// is tracked (the caller then emits a real op node).
pub fn eval(op: &Op, inputs: &[SymTensor], out_dtype: DType) -> Option<SymTensor> {
    match op {
        Op::Identity => inputs.first().cloned(),
        Op::Cast { to } => {
            let x = inputs.first().filter(|_| to.is_integer())?;
            Some(SymTensor {
                dtype: *to,
                ..x.clone()
            })
        }
        Op::Binary(b) => {
            let [x, y] = inputs else { return None };
            zip(x, y, out_dtype, |a, c| binary(*b, a, c))
        }
        Op::Compare(CompareOp::Equal) => {
            let [x, y] = inputs else { return None };
            zip(x, y, out_dtype, equal)
        }
        // Where picks between shape vectors with a known condition.
        Op::Where => {
            let [c, x, y] = inputs else { return None };
            let n = c.elems.len().max(x.elems.len()).max(y.elems.len());
            if [c, x, y].iter().any(|t| t.elems.len() != n && t.elems.len() != 1) {
                return None;
            }
            let rank = [c, x, y].iter().map(|t| t.shape.len()).max()?;
            let at = |t: &SymTensor, i: usize| t.elems[if t.elems.len() == 1 { 0 } else { i }];
            let elems = (0..n)
                .map(|i| match at(c, i) {
                    SymInt::Known(0) => Some(at(y, i)),
                    SymInt::Known(_) => Some(at(x, i)),
                    SymInt::Batch => None,
                })
                .collect::<Option<Vec<_>>>()?;
            Some(SymTensor {
                dtype: out_dtype,
                shape: if rank == 0 { vec![] } else { vec![n] },
                elems,
            })
        }
        // Shape arithmetic clamps with Max/Min (e.g. CenterCropPad's expansion).
        Op::Variadic(v) => {
            let (first, rest) = inputs.split_first()?;
            rest.iter().try_fold(first.clone(), |acc, y| {
                zip(&acc, y, out_dtype, |a, b| extremum(*v, a, b))
            })
        }
        Op::Gather { axis } => {
            let [data, idx] = inputs else { return None };
            if *axis != 0 || data.shape.len() != 1 || idx.shape.len() > 1 {
                return None;
            }
            let len = data.elems.len() as i64;
            let elems = idx
                .known()?
                .into_iter()
                .map(|i| {
                    let j = if i < 0 { i + len } else { i };
                    (0..len).contains(&j).then(|| data.elems[j as usize])
                })
                .collect::<Option<Vec<_>>>()?;
            Some(SymTensor {
                dtype: data.dtype,
                shape: idx.shape.clone(),
                elems,
            })
        }
        Op::Unsqueeze { axes } => {
            let x = inputs.first()?;
            match (x.shape.len(), axes.as_slice()) {
                (0, [0]) => Some(SymTensor::vector(x.dtype, x.elems.clone())),
                _ => None,
            }
        }
        Op::Squeeze { axes } => {
            let x = inputs.first()?;
            match (x.shape.as_slice(), axes.as_slice()) {
                ([1], [0]) => Some(SymTensor {
                    dtype: x.dtype,
                    shape: vec![],
                    elems: x.elems.clone(),
                }),
                _ => None,
            }
        }
        Op::Concat { axis } => {
            if *axis != 0 || inputs.iter().any(|x| x.shape.len() != 1) {
                return None;
            }
            let elems: Vec<SymInt> = inputs
                .iter()
                .flat_map(|x| x.elems.iter().copied())
                .collect();
            (elems.len() <= MAX_SYM_LEN).then(|| SymTensor::vector(out_dtype, elems))
        }
        Op::Slice(s) => {
            let x = inputs.first()?;
            if x.shape.len() != 1 || s.axes != [0] {
                return None;
            }
            let (start, end, step) = (s.starts[0], s.ends[0], s.steps[0]);
            let idx = slice_indices(x.elems.len() as i64, start, end, step)?;
            Some(SymTensor::vector(
                x.dtype,
                idx.into_iter().map(|i| x.elems[i]).collect(),
            ))
        }
        // Not shape arithmetic: these always become real op nodes.
        Op::Conv(_)
        | Op::ConvTranspose(_)
        | Op::Gemm(_)
        | Op::MatMul
        | Op::Unary(_)
        | Op::PRelu
        | Op::Clip(_)
        | Op::BatchNorm(_)
        | Op::Softmax(_)
        | Op::MaxPool(_)
        | Op::AveragePool(_)
        | Op::GlobalPool(_)
        | Op::Flatten { .. }
        | Op::Reshape(_)
        | Op::Transpose { .. }
        | Op::Pad(_)
        | Op::Shape { .. }
        | Op::Split(_)
        | Op::ReduceMean(_)
        | Op::Bitplane(_)
        // Constant inputs fold through the runtime kernels instead (`Importer::fold`).
        | Op::Compare(_)
        | Op::ReduceMax(_)
        | Op::ReduceSum(_)
        | Op::ArgMax(_)
        | Op::Expand { .. }
        | Op::Resize(_)
        | Op::Lstm(_)
        | Op::Gru(_)
        | Op::QuantizeLinear(_)
        | Op::DequantizeLinear(_) => None,
    }
}

/// The indices ONNX Slice selects along an axis of length `len` (clamping as the spec says).
pub fn slice_indices(len: i64, start: i64, end: i64, step: i64) -> Option<Vec<usize>> {
    if step == 0 {
        return None;
    }
    let norm = |v: i64| if v < 0 { v.saturating_add(len) } else { v };
    let (s, e) = (norm(start), norm(end));
    let mut out = Vec::new();
    if step > 0 {
        let (s, e) = (s.clamp(0, len), e.clamp(0, len));
        let mut i = s;
        while i < e {
            out.push(i as usize);
            let Some(next) = i.checked_add(step) else {
                break;
            };
            i = next;
        }
    } else {
        let (s, e) = (s.clamp(-1, len - 1), e.clamp(-1, len - 1));
        let mut i = s;
        while i > e {
            out.push(i as usize);
            let Some(next) = i.checked_add(step) else {
                break;
            };
            i = next;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_indices_follow_onnx_clamping() {
        assert_eq!(slice_indices(4, 1, i64::MAX, 1), Some(vec![1, 2, 3]));
        assert_eq!(slice_indices(4, -1, i64::MIN, -1), Some(vec![3, 2, 1, 0]));
        assert_eq!(slice_indices(4, 0, -1, 2), Some(vec![0, 2]));
        assert_eq!(slice_indices(4, 0, 4, 0), None);
        assert_eq!(slice_indices(4, 1, i64::MAX, i64::MAX), Some(vec![1]));
        assert_eq!(slice_indices(4, 3, i64::MIN, i64::MIN), Some(vec![3]));
    }

    #[test]
    fn batch_survives_identity_arithmetic_only() {
        let b = SymInt::Batch;
        assert_eq!(binary(BinaryOp::Mul, b, SymInt::Known(1)), Some(b));
        assert_eq!(binary(BinaryOp::Mul, b, SymInt::Known(2)), None);
        assert_eq!(
            binary(BinaryOp::Div, SymInt::Known(7), SymInt::Known(-2)),
            Some(SymInt::Known(-3))
        );
        assert_eq!(
            binary(BinaryOp::Div, SymInt::Known(7), SymInt::Known(0)),
            None
        );
    }

    #[test]
    fn flatten_chain_keeps_batch() {
        let shape = shape_of(&[Dim::Batch, Dim::Known(3), Dim::Known(4)], 0, 3).unwrap();
        let idx = SymTensor {
            dtype: DType::I64,
            shape: vec![],
            elems: vec![SymInt::Known(0)],
        };
        let g = eval(&Op::Gather { axis: 0 }, &[shape, idx], DType::I64).unwrap();
        assert_eq!(g.shape, Vec::<usize>::new());
        let u = eval(&Op::Unsqueeze { axes: vec![0] }, &[g], DType::I64).unwrap();
        let minus1 = SymTensor::from_tensor(&Tensor::from_i64(vec![1], vec![-1]).unwrap()).unwrap();
        let c = eval(&Op::Concat { axis: 0 }, &[u, minus1], DType::I64).unwrap();
        assert_eq!(c.elems, vec![SymInt::Batch, SymInt::Known(-1)]);
        assert!(c.to_tensor().is_none());
    }

    #[test]
    fn max_min_clamp_known_values() {
        let v = |e: Vec<SymInt>| SymTensor::vector(DType::I64, e);
        let (k, b) = (SymInt::Known, SymInt::Batch);
        let x = v(vec![k(3), b, k(-2)]);
        let lo = SymTensor::from_tensor(&Tensor::from_i64(vec![], vec![0]).unwrap()).unwrap();
        let max = Op::Variadic(VariadicOp::Max);
        // A batch-dependent element cannot be compared with a number.
        assert!(eval(&max, &[x.clone(), lo.clone()], DType::I64).is_none());
        let x = v(vec![k(3), k(7), k(-2)]);
        let hi = v(vec![k(5), k(5), k(5)]);
        let r = eval(&max, &[x.clone(), lo], DType::I64).unwrap();
        assert_eq!(r.known().unwrap(), [3, 7, 0]);
        let min = Op::Variadic(VariadicOp::Min);
        let r = eval(&min, &[x.clone(), hi, r], DType::I64).unwrap();
        assert_eq!(r.known().unwrap(), [3, 5, -2]);
        assert_eq!(eval(&min, std::slice::from_ref(&x), DType::I64).unwrap(), x);
        let same = v(vec![b]);
        assert_eq!(
            eval(&max, &[same.clone(), same.clone()], DType::I64).unwrap(),
            same
        );
    }
}
