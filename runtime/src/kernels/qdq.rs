//! QuantizeLinear and DequantizeLinear (per tensor or per axis), as ONNX defines them for
//! 8-bit integers: `q = saturate(round_half_even(x / scale) + zero_point)`,
//! `x = (q − zero_point) · scale`.

use strata_ir::ops::Qdq;
use strata_ir::{Tensor, TensorData};

use super::{make, same_dtype};
use crate::RuntimeError;

/// For element `k` of `x`, the index into the (per-tensor or per-axis) scale.
fn param_index<'a>(
    op: &'static str,
    q: &Qdq,
    x: &Tensor,
    scale: &Tensor,
    zp: &Tensor,
) -> Result<Box<dyn Fn(usize) -> usize + 'a>, RuntimeError> {
    if scale.shape() != zp.shape() {
        return Err(RuntimeError::mismatch(
            op,
            "zero point",
            zp.shape(),
            "the scale",
            scale.shape(),
        ));
    }
    if scale.len() == 1 {
        return Ok(Box::new(|_| 0));
    }
    let shape = x.shape();
    if q.axis >= shape.len() || scale.shape() != [shape[q.axis]] {
        return Err(RuntimeError::Shape {
            op,
            reason: format!(
                "a per-axis scale must have shape [{}] (axis {} of {shape:?}), got {:?}",
                shape.get(q.axis).copied().unwrap_or(0),
                q.axis,
                scale.shape()
            ),
        });
    }
    let (len, inner) = (shape[q.axis], shape[q.axis + 1..].iter().product::<usize>());
    Ok(Box::new(move |k| (k / inner) % len))
}

/// The 8-bit range of the zero point's type, and its values as f64.
fn zero_points(op: &'static str, zp: &Tensor) -> Result<(f64, f64, Vec<f64>), RuntimeError> {
    match zp.data() {
        TensorData::I8(_) => Ok((-128.0, 127.0, zp.to_f64_vec())),
        TensorData::U8(_) => Ok((0.0, 255.0, zp.to_f64_vec())),
        _ => Err(RuntimeError::unsupported(op, 2, zp.dtype())),
    }
}

/// QuantizeLinear: the division happens in the scale's type (f32 for f32 scales), then
/// rounds half to even and saturates; NaN becomes 0.
pub fn quantize(q: &Qdq, x: &Tensor, scale: &Tensor, zp: &Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "quantize_linear";
    same_dtype(OP, x, 1, scale)?;
    let at = param_index(OP, q, x, scale, zp)?;
    let (lo, hi, z) = zero_points(OP, zp)?;
    let ratio: Vec<f64> = match (x.data(), scale.data()) {
        (TensorData::F32(v), TensorData::F32(s)) => v
            .iter()
            .enumerate()
            .map(|(k, &e)| (e / s[at(k)]).round_ties_even() as f64)
            .collect(),
        (TensorData::F64(v), TensorData::F64(s)) => v
            .iter()
            .enumerate()
            .map(|(k, &e)| (e / s[at(k)]).round_ties_even())
            .collect(),
        _ => return Err(RuntimeError::unsupported(OP, 0, x.dtype())),
    };
    let vals = ratio.iter().enumerate().map(|(k, &r)| {
        if r.is_nan() {
            0.0
        } else {
            (r + z[at(k)]).clamp(lo, hi)
        }
    });
    let data = match zp.data() {
        TensorData::I8(_) => TensorData::I8(vals.map(|v| v as i8).collect()),
        _ => TensorData::U8(vals.map(|v| v as u8).collect()),
    };
    make(OP, x.shape().to_vec(), data)
}

/// DequantizeLinear: `(x − zero_point) · scale` in the scale's type.
pub fn dequantize(
    q: &Qdq,
    x: &Tensor,
    scale: &Tensor,
    zp: &Tensor,
) -> Result<Tensor, RuntimeError> {
    const OP: &str = "dequantize_linear";
    same_dtype(OP, x, 2, zp)?;
    let at = param_index(OP, q, x, scale, zp)?;
    zero_points(OP, zp)?;
    let (xv, z) = (x.to_f64_vec(), zp.to_f64_vec());
    let data = match scale.data() {
        TensorData::F32(s) => TensorData::F32(
            xv.iter()
                .enumerate()
                .map(|(k, &e)| (e as f32 - z[at(k)] as f32) * s[at(k)])
                .collect(),
        ),
        TensorData::F64(s) => TensorData::F64(
            xv.iter()
                .enumerate()
                .map(|(k, &e)| (e - z[at(k)]) * s[at(k)])
                .collect(),
        ),
        _ => return Err(RuntimeError::unsupported(OP, 1, scale.dtype())),
    };
    make(OP, x.shape().to_vec(), data)
}
