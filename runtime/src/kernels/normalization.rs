//! Normalisation kernels: inference-mode BatchNormalization and Softmax.

use strata_ir::ops::{BatchNorm, Softmax};
use strata_ir::Tensor;

use super::elementwise::Real;
use super::{for_each_chunk, make, map_data, same_dtype};
use crate::RuntimeError;

/// `y = scale · (x − mean) / sqrt(var + ε) + bias` per channel (axis 1). The per-channel
/// affine coefficients are computed once in f64 and applied in the tensor's own type.
pub fn batch_norm(b: &BatchNorm, inputs: &[&Tensor]) -> Result<Tensor, RuntimeError> {
    const OP: &str = "batch_norm";
    let x = inputs[0];
    if x.rank() < 2 {
        return Err(RuntimeError::Shape {
            op: OP,
            reason: format!("input must be [N, C, ...], got {:?}", x.shape()),
        });
    }
    let c = x.shape()[1];
    const NAMES: [&str; 5] = ["x", "scale", "bias", "mean", "var"];
    for (i, t) in inputs.iter().enumerate().skip(1) {
        same_dtype(OP, x, i, t)?;
        if t.shape() != [c] {
            return Err(RuntimeError::Shape {
                op: OP,
                reason: format!(
                    "`{}` has shape {:?} but the input has {c} channels",
                    NAMES[i],
                    t.shape()
                ),
            });
        }
    }
    let (a, s) = batch_norm_affine(b, [inputs[1], inputs[2], inputs[3], inputs[4]]);
    let inner: usize = x.shape()[2..].iter().product();
    fn go<T: Real>(v: &[T], c: usize, inner: usize, a: &[f64], s: &[f64]) -> Vec<T> {
        let mut out = v.to_vec();
        if inner == 0 || c == 0 {
            return out;
        }
        let par = out.len() >= 1 << 15;
        for_each_chunk(&mut out, inner, par, |k, chunk| {
            let ch = k % c;
            let (ak, sk) = (T::from_f64(a[ch]), T::from_f64(s[ch]));
            chunk.iter_mut().for_each(|y| *y = y.mul(ak).add(sk));
        });
        out
    }
    let data = map_data!(OP, x, [F32, F64], |v| go(v, c, inner, &a, &s))?;
    make(OP, x.shape().to_vec(), data)
}

/// The per-channel `(a, s)` of `y = x·a + s` from `scale, bias, mean, var` (computed in f64;
/// applied in the tensor's type). Public so that code generators apply the same coefficients.
pub fn batch_norm_affine(
    b: &BatchNorm,
    [scale, bias, mean, var]: [&Tensor; 4],
) -> (Vec<f64>, Vec<f64>) {
    let (scale, bias, mean, var) = (
        scale.to_f64_vec(),
        bias.to_f64_vec(),
        mean.to_f64_vec(),
        var.to_f64_vec(),
    );
    let eps = b.epsilon as f64;
    let a: Vec<f64> = (0..scale.len())
        .map(|i| scale[i] / (var[i] + eps).sqrt())
        .collect();
    let s: Vec<f64> = (0..scale.len()).map(|i| bias[i] - mean[i] * a[i]).collect();
    (a, s)
}

/// The softmax of `shape` as `(outer, len, inner)`: `outer` blocks of `len` reduced positions
/// `inner` elements apart (shared with the gradient).
pub(crate) fn softmax_blocks(
    op: &'static str,
    sm: &Softmax,
    shape: &[usize],
) -> Result<(usize, usize, usize), RuntimeError> {
    let rank = shape.len();
    if sm.axis >= rank.max(1) {
        return Err(RuntimeError::Attribute {
            op,
            attr: "axis",
            reason: format!("{} is out of range for rank {rank}", sm.axis),
        });
    }
    let outer: usize = shape[..sm.axis.min(rank)].iter().product();
    let (len, inner) = if sm.coerce_2d || rank == 0 {
        (shape[sm.axis.min(rank)..].iter().product::<usize>(), 1)
    } else {
        (
            shape[sm.axis],
            shape[sm.axis + 1..].iter().product::<usize>(),
        )
    };
    Ok((outer, len, inner))
}

/// Softmax along `axis` (opset ≥ 13), or over the flattened trailing block `dims[axis..]`
/// when `coerce_2d` (opset < 13). The maximum is subtracted first, so large logits never
/// overflow `exp`.
pub fn softmax(sm: &Softmax, x: &Tensor) -> Result<Tensor, RuntimeError> {
    const OP: &str = "softmax";
    let (outer, len, inner) = softmax_blocks(OP, sm, x.shape())?;
    fn go<T: Real>(v: &[T], outer: usize, len: usize, inner: usize) -> Vec<T> {
        let mut out = v.to_vec();
        if len == 0 || inner == 0 || outer == 0 {
            return out;
        }
        let block = |_, o: &mut [T]| {
            for i in 0..inner {
                let mut mx = T::NEG_INF;
                for j in 0..len {
                    let v = o[j * inner + i];
                    if v > mx {
                        mx = v;
                    }
                }
                let mut sum = T::ZERO;
                for j in 0..len {
                    let e = o[j * inner + i].sub(mx).exp();
                    o[j * inner + i] = e;
                    sum = sum.add(e);
                }
                for j in 0..len {
                    o[j * inner + i] = o[j * inner + i].div(sum);
                }
            }
        };
        let par = out.len() >= 1 << 15;
        for_each_chunk(&mut out, len * inner, par, block);
        out
    }
    let data = map_data!(OP, x, [F32, F64], |v| go(v, outer, len, inner))?;
    make(OP, x.shape().to_vec(), data)
}
