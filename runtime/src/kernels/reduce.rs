//! Reductions: ReduceMean.

use strata_ir::ops::ReduceMean;
use strata_ir::{Tensor, TensorData};

use super::index::next_index;
use super::{make, strides_of};
use crate::RuntimeError;

/// Mean over `axes`, accumulated in f64 and converted back to the element type (integers
/// truncate toward zero, as the ONNX reference's `astype` does).
pub fn reduce_mean(r: &ReduceMean, t: &Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "reduce_mean";
    let rank = t.rank();
    let mut reduced = vec![false; rank];
    for &a in &r.axes {
        if a >= rank {
            return Err(RuntimeError::Attribute {
                op: OP,
                attr: "axes",
                reason: format!("axis {a} is out of range for rank {rank}"),
            });
        }
        reduced[a] = true;
    }
    if matches!(t.data(), TensorData::Bool(_)) {
        return Err(RuntimeError::unsupported(OP, 0, t.dtype()));
    }
    let shape = t.shape();
    let kept: Vec<usize> = (0..rank)
        .map(|j| if reduced[j] { 1 } else { shape[j] })
        .collect();
    let out_len: usize = kept.iter().product();
    let count: usize = (0..rank)
        .filter(|&j| reduced[j])
        .map(|j| shape[j])
        .product();
    let out_strides = strides_of(&kept);
    let mut sums = vec![0.0f64; out_len];
    let values = t.to_f64_vec();
    let mut idx = vec![0usize; rank];
    for (n, &v) in values.iter().enumerate() {
        if n > 0 {
            next_index(&mut idx, shape);
        }
        let o: usize = (0..rank)
            .filter(|&j| !reduced[j])
            .map(|j| idx[j] * out_strides[j])
            .sum();
        sums[o] += v;
    }
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
    let out_shape: Vec<usize> = if r.keep_dims {
        kept
    } else {
        (0..rank)
            .filter(|&j| !reduced[j])
            .map(|j| shape[j])
            .collect()
    };
    make(OP, out_shape, data)
}
