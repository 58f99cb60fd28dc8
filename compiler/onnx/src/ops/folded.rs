//! Ops Strata computes only on constants, at import: Sin and Cos (sinusoidal position
//! encodings computed in `forward`), Trilu (causal masks such as `nn.Transformer`'s
//! `generate_square_subsequent_mask`), CumSum (position ids), And, Or and Xor (mask
//! arithmetic). Their results are constants like any folded value; on an input computed
//! from the model's input they stop the import with [`crate::OnnxError::NonConstantInput`] naming
//! it, since no IR op or backend kernel computes them.

use strata_ir::{Tensor, TensorData};

use super::{arity, broadcast_constants, constant_input, fold_to, Ins, OnnxOp, Outs};
use crate::attrs::NodeCtx;
use crate::import::Importer;

/// The folded ops and the opsets they are accepted in (see [`OnnxOp`]).
pub(super) const OPS: &[OnnxOp] = &[
    OnnxOp::new("Sin", 7, 7, bind!(trig, f64::sin)),
    OnnxOp::new("Cos", 7, 7, bind!(trig, f64::cos)),
    OnnxOp::new("Trilu", 14, 14, trilu),
    OnnxOp::new("CumSum", 11, 14, cumsum),
    OnnxOp::new("And", 1, 7, bind!(logical, |a, b| a && b)),
    OnnxOp::new("Or", 1, 7, bind!(logical, |a, b| a || b)),
    OnnxOp::new("Xor", 1, 7, bind!(logical, |a, b| a != b)),
];

/// Sin or Cos of a float constant, computed in f64 and rounded once to the element type.
fn trig(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins, f: fn(f64) -> f64) -> Outs {
    arity(ctx, ins, 1, 1)?;
    let x = constant_input(imp, ctx, ins, 0)?;
    let data = match x.data() {
        TensorData::F32(v) => TensorData::F32(v.iter().map(|&a| f(f64::from(a)) as f32).collect()),
        TensorData::F64(v) => TensorData::F64(v.iter().map(|&a| f(a)).collect()),
        _ => return Err(ctx.unsupported(format!("input of element type {}", x.dtype()))),
    };
    let t = Tensor::new(x.shape().to_vec(), data).map_err(|e| ctx.unsupported(e.to_string()))?;
    fold_to(imp, ctx, t)
}

/// And, Or, Xor of two bool constants, with numpy broadcasting.
fn logical(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins, f: fn(bool, bool) -> bool) -> Outs {
    arity(ctx, ins, 2, 2)?;
    let [ea, eb] = broadcast_constants(imp, ctx, ins)?;
    let shape = ea.shape().to_vec();
    let (TensorData::Bool(x), TensorData::Bool(y)) = (ea.data(), eb.data()) else {
        return Err(ctx.unsupported(format!(
            "inputs of element types {} and {} (bool only)",
            ea.dtype(),
            eb.dtype()
        )));
    };
    let v = x.iter().zip(y).map(|(&p, &q)| f(p, q)).collect();
    let t = Tensor::new(shape, TensorData::Bool(v)).map_err(|e| ctx.unsupported(e.to_string()))?;
    fold_to(imp, ctx, t)
}

/// Applies `keep(flat index) → bool` to every element, zeroing the others, in any type.
fn zero_unless(t: &Tensor, keep: impl Fn(usize) -> bool) -> TensorData {
    macro_rules! each {
        ($v:expr, $var:ident, $zero:expr) => {
            TensorData::$var(
                $v.iter()
                    .enumerate()
                    .map(|(i, &x)| if keep(i) { x } else { $zero })
                    .collect(),
            )
        };
    }
    match t.data() {
        TensorData::F32(v) => each!(v, F32, 0.0),
        TensorData::F64(v) => each!(v, F64, 0.0),
        TensorData::I8(v) => each!(v, I8, 0),
        TensorData::U8(v) => each!(v, U8, 0),
        TensorData::I32(v) => each!(v, I32, 0),
        TensorData::I64(v) => each!(v, I64, 0),
        TensorData::Bool(v) => each!(v, Bool, false),
    }
}

/// Trilu: the upper (`upper=1`, default) or lower triangle of every matrix in the last two
/// axes, from diagonal `k` (optional scalar input, default 0); the rest zero.
fn trilu(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 1, 2)?;
    let x = constant_input(imp, ctx, ins, 0)?;
    let k = match ins.get(1).copied().flatten() {
        Some(_) => {
            let k = constant_input(imp, ctx, ins, 1)?;
            match k.to_i64_vec().as_deref() {
                Some(&[k]) => k,
                _ => return Err(ctx.input_count("input #1 (k) must be one int64")),
            }
        }
        None => 0,
    };
    let upper = ctx.bool_or("upper", true)?;
    let shape = x.shape();
    let [.., rows, cols] = *shape else {
        return Err(ctx.unsupported(format!("input of rank {} (needs ≥ 2)", shape.len())));
    };
    let data = zero_unless(&x, |i| {
        let (r, c) = ((i / cols.max(1)) % rows.max(1), i % cols.max(1));
        let d = c as i128 - r as i128;
        if upper {
            d >= i128::from(k)
        } else {
            d <= i128::from(k)
        }
    });
    let t = Tensor::new(shape.to_vec(), data).map_err(|e| ctx.unsupported(e.to_string()))?;
    fold_to(imp, ctx, t)
}

/// CumSum along the constant `axis`, `exclusive` (each sum leaves out its own element) and
/// `reverse` (from the end), summed in order in the element type.
fn cumsum(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 2, 2)?;
    let x = constant_input(imp, ctx, ins, 0)?;
    let axis = match constant_input(imp, ctx, ins, 1)?.to_i64_vec().as_deref() {
        Some(&[a]) => a,
        _ => return Err(ctx.input_count("input #1 (axis) must be one integer")),
    };
    let shape = x.shape().to_vec();
    let axis = ctx.axis("axis", axis, shape.len(), false)?;
    let (exclusive, reverse) = (
        ctx.bool_or("exclusive", false)?,
        ctx.bool_or("reverse", false)?,
    );
    let (len, inner) = (shape[axis], shape[axis + 1..].iter().product::<usize>());
    let outer = shape[..axis].iter().product::<usize>();
    // Integers wrap on overflow (ONNX leaves it undefined) instead of stopping the import.
    macro_rules! scan {
        ($v:expr, $var:ident, $zero:expr, $add:expr) => {{
            let mut out = vec![$zero; $v.len()];
            for o in 0..outer {
                for i in 0..inner {
                    let mut acc = $zero;
                    for s in 0..len {
                        let j = if reverse { len - 1 - s } else { s };
                        let at = (o * len + j) * inner + i;
                        if exclusive {
                            out[at] = acc;
                            acc = $add(acc, $v[at]);
                        } else {
                            acc = $add(acc, $v[at]);
                            out[at] = acc;
                        }
                    }
                }
            }
            TensorData::$var(out)
        }};
    }
    let data = match x.data() {
        TensorData::F32(v) => scan!(v, F32, 0.0f32, |a: f32, b| a + b),
        TensorData::F64(v) => scan!(v, F64, 0.0f64, |a: f64, b| a + b),
        TensorData::I32(v) => scan!(v, I32, 0i32, i32::wrapping_add),
        TensorData::I64(v) => scan!(v, I64, 0i64, i64::wrapping_add),
        _ => return Err(ctx.unsupported(format!("input of element type {}", x.dtype()))),
    };
    let t = Tensor::new(shape, data).map_err(|e| ctx.unsupported(e.to_string()))?;
    fold_to(imp, ctx, t)
}
