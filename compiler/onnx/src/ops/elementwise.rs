//! Element-wise ops: broadcasting arithmetic, comparisons and Where, math functions,
//! activations (Elu, Selu, Celu, Softplus, Softsign, Mish, Gelu and ThresholdedRelu as
//! their function bodies), PRelu and Clip.

use strata_ir::ops::{BinaryOp, Clip, CompareOp, UnaryOp, VariadicOp};
use strata_ir::{DType, Op, Tensor, TensorData, ValueRef};

use super::body::Body;
use super::{arity, broadcast_constants, fold_to, helper, present, single, Ins, OnnxOp, Outs};
use crate::attrs::NodeCtx;
use crate::import::Importer;
use crate::OnnxError;

/// The element-wise ops and the opsets they are accepted in (see [`OnnxOp`]).
pub(super) const OPS: &[OnnxOp] = &[
    OnnxOp::new("Add", 1, 14, bind!(binary, BinaryOp::Add)),
    OnnxOp::new("Sub", 1, 14, bind!(binary, BinaryOp::Sub)),
    OnnxOp::new("Mul", 1, 14, bind!(binary, BinaryOp::Mul)),
    OnnxOp::new("Div", 1, 14, bind!(binary, BinaryOp::Div)),
    OnnxOp::new("Max", 1, 13, bind!(variadic, VariadicOp::Max)),
    OnnxOp::new("Min", 1, 13, bind!(variadic, VariadicOp::Min)),
    OnnxOp::new("Relu", 1, 14, bind!(unary, UnaryOp::Relu)),
    OnnxOp::new("LeakyRelu", 1, 16, leaky_relu),
    OnnxOp::new("PRelu", 1, 16, prelu),
    OnnxOp::new("Clip", 1, 13, clip),
    OnnxOp::new("Sigmoid", 1, 13, bind!(unary, UnaryOp::Sigmoid)),
    OnnxOp::new("HardSigmoid", 1, 22, hard_sigmoid),
    OnnxOp::new("HardSwish", 14, 22, bind!(unary, UnaryOp::HardSwish)),
    OnnxOp::new("Elu", 1, 22, bind!(elu, Exponential::Elu)),
    OnnxOp::new("Selu", 1, 22, bind!(elu, Exponential::Selu)),
    OnnxOp::new("Celu", 12, 12, bind!(elu, Exponential::Celu)),
    OnnxOp::new("Softplus", 1, 22, softplus),
    OnnxOp::new("Softsign", 1, 22, softsign),
    OnnxOp::new("Mish", 18, 22, mish),
    OnnxOp::new("Gelu", 20, 20, gelu),
    OnnxOp::new("ThresholdedRelu", 10, 22, thresholded_relu),
    OnnxOp::new("Tanh", 1, 13, bind!(unary, UnaryOp::Tanh)),
    OnnxOp::new("Erf", 9, 13, bind!(unary, UnaryOp::Erf)),
    OnnxOp::new("Exp", 1, 13, bind!(unary, UnaryOp::Exp)),
    OnnxOp::new("Log", 1, 13, bind!(unary, UnaryOp::Log)),
    OnnxOp::new("Sqrt", 1, 13, bind!(unary, UnaryOp::Sqrt)),
    OnnxOp::new("Neg", 1, 13, bind!(unary, UnaryOp::Neg)),
    OnnxOp::new("Abs", 1, 13, bind!(unary, UnaryOp::Abs)),
    OnnxOp::new("Reciprocal", 1, 13, bind!(unary, UnaryOp::Reciprocal)),
    OnnxOp::new("Floor", 1, 13, bind!(unary, UnaryOp::Floor)),
    OnnxOp::new("Ceil", 1, 13, bind!(unary, UnaryOp::Ceil)),
    OnnxOp::new("Pow", 1, 15, pow),
    // Equal-19 only added strings, which Strata rejects as an element type.
    OnnxOp::new("Equal", 1, 13, bind!(compare, CompareOp::Equal)),
    OnnxOp::new("Greater", 1, 13, bind!(compare, CompareOp::Greater)),
    OnnxOp::new("Less", 1, 13, bind!(compare, CompareOp::Less)),
    OnnxOp::new(
        "GreaterOrEqual",
        12,
        16,
        bind!(compare, CompareOp::GreaterOrEqual),
    ),
    OnnxOp::new(
        "LessOrEqual",
        12,
        16,
        bind!(compare, CompareOp::LessOrEqual),
    ),
    OnnxOp::new("Where", 9, 16, where_),
    OnnxOp::new("Mod", 10, 13, modulo),
];

fn binary(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins, op: BinaryOp) -> Outs {
    arity(ctx, ins, 2, 2)?;
    single(imp, ctx, Op::Binary(op), &present(ins))
}

/// Pow with the IR's one element type: a float base gets the exponent cast to its type
/// (exact for the small integer exponents models use); an integer base with a float
/// exponent is computed in the exponent's type and cast back (numpy's `power(...).astype`,
/// which the ONNX reference uses); two integer types compute in the base's type.
fn pow(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 2, 2)?;
    let (a, b) = (imp.req(ctx, ins, 0)?, imp.req(ctx, ins, 1)?);
    let (ta, tb) = (imp.ty(a)?.dtype, imp.ty(b)?.dtype);
    let op = Op::Binary(BinaryOp::Pow);
    if ta == tb {
        return single(imp, ctx, op, &[a, b]);
    }
    for (i, t) in [ta, tb].into_iter().enumerate() {
        if !(t.is_float() || t.is_integer()) {
            return Err(ctx.unsupported(format!("input #{i} is {t}, not a number")));
        }
    }
    if ta.is_integer() && tb.is_float() {
        let af = helper(imp, ctx, "base_cast", Op::Cast { to: tb }, &[a])?;
        let y = helper(imp, ctx, "float_pow", op, &[af, b])?;
        return single(imp, ctx, Op::Cast { to: ta }, &[y]);
    }
    let bc = helper(imp, ctx, "exponent_cast", Op::Cast { to: ta }, &[b])?;
    single(imp, ctx, op, &[a, bc])
}

/// Equal, Greater, Less, GreaterOrEqual, LessOrEqual: two inputs, bool out.
fn compare(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins, op: CompareOp) -> Outs {
    arity(ctx, ins, 2, 2)?;
    single(imp, ctx, Op::Compare(op), &present(ins))
}

fn where_(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 3, 3)?;
    single(imp, ctx, Op::Where, &present(ins))
}

/// Max or Min: one or more inputs, every one required.
fn variadic(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins, op: VariadicOp) -> Outs {
    arity(ctx, ins, ins.len().max(1), ins.len().max(1))?;
    single(imp, ctx, Op::Variadic(op), &present(ins))
}

/// A one-input activation; `op` reads its attributes (after the arity check).
fn activation(
    imp: &mut Importer,
    ctx: &NodeCtx,
    ins: &Ins,
    op: impl FnOnce(&NodeCtx) -> Result<UnaryOp, OnnxError>,
) -> Outs {
    arity(ctx, ins, 1, 1)?;
    single(imp, ctx, Op::Unary(op(ctx)?), &present(ins))
}

/// An activation without attributes.
fn unary(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins, op: UnaryOp) -> Outs {
    activation(imp, ctx, ins, |_| Ok(op))
}

/// The exponential-linear family, each `Relu(x) + α·(Exp(Min(x, 0)·s) − 1)·γ`-shaped.
#[derive(Clone, Copy)]
enum Exponential {
    /// `x ≥ 0 ? x : α·(eˣ − 1)`.
    Elu,
    /// `γ·Elu_α(x)` (defaults α ≈ 1.6733, γ ≈ 1.0507).
    Selu,
    /// `max(0, x) + min(0, α·(e^(x/α) − 1))`.
    Celu,
}

/// Elu, Selu and Celu as `Relu(x) + α·(Exp(Min(x, 0)) − 1)` (Celu divides by α inside the
/// Exp; Selu scales the sum by γ). For `x ≥ 0` the second term is α·(e⁰ − 1) = 0 exactly, so
/// the output is `x` as in the spec; below 0 it is the spec's expression. Taking the Min
/// first keeps `Exp` finite where the spec's own body (`Where` over both branches) overflows.
fn elu(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins, kind: Exponential) -> Outs {
    arity(ctx, ins, 1, 1)?;
    let x = imp.req(ctx, ins, 0)?;
    let (alpha, gamma) = match kind {
        Exponential::Elu | Exponential::Celu => (ctx.float_or("alpha", 1.0)?, 1.0),
        Exponential::Selu => (
            ctx.float_or("alpha", 1.673_263_2)?,
            ctx.float_or("gamma", 1.050_701)?,
        ),
    };
    if matches!(kind, Exponential::Celu) && alpha == 0.0 {
        return Err(ctx.out_of_range("alpha", "must not be 0 (Celu divides by it)"));
    }
    let mut b = Body::float(imp, ctx, x)?;
    let positive = b.unary("positive", UnaryOp::Relu, x)?;
    let zero = b.scalar("zero", 0.0);
    let mut below = b.step("below", Op::Variadic(VariadicOp::Min), &[x, zero])?;
    if matches!(kind, Exponential::Celu) {
        below = b.scale("over_alpha", below, 1.0 / f64::from(alpha))?;
    }
    let exp = b.unary("exp", UnaryOp::Exp, below)?;
    let one = b.scalar("one", 1.0);
    let expm1 = b.binary("expm1", BinaryOp::Sub, exp, one)?;
    let negative = b.scale("alpha", expm1, f64::from(alpha))?;
    if matches!(kind, Exponential::Selu) {
        let sum = b.binary("sum", BinaryOp::Add, positive, negative)?;
        let g = b.scalar("gamma", f64::from(gamma));
        return b.finish(Op::Binary(BinaryOp::Mul), &[sum, g]);
    }
    b.finish(Op::Binary(BinaryOp::Add), &[positive, negative])
}

/// `log(1 + eˣ)` as `Relu(x) + Log(1 + Exp(−|x|))`: the same value without the overflow of
/// `eˣ` above 88 that the spec's literal body has (onnxruntime computes it this way too).
fn softplus_of(b: &mut Body, x: ValueRef) -> Result<(ValueRef, ValueRef), OnnxError> {
    let positive = b.unary("positive", UnaryOp::Relu, x)?;
    let abs = b.unary("abs", UnaryOp::Abs, x)?;
    let neg = b.unary("neg_abs", UnaryOp::Neg, abs)?;
    let exp = b.unary("exp", UnaryOp::Exp, neg)?;
    let one = b.scalar("one", 1.0);
    let onep = b.binary("one_plus", BinaryOp::Add, exp, one)?;
    let log = b.unary("log1p", UnaryOp::Log, onep)?;
    Ok((positive, log))
}

fn softplus(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 1, 1)?;
    let x = imp.req(ctx, ins, 0)?;
    let mut b = Body::float(imp, ctx, x)?;
    let (positive, log) = softplus_of(&mut b, x)?;
    b.finish(Op::Binary(BinaryOp::Add), &[positive, log])
}

/// Mish (opset 18): `x·tanh(softplus(x))`.
fn mish(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 1, 1)?;
    let x = imp.req(ctx, ins, 0)?;
    let mut b = Body::float(imp, ctx, x)?;
    let (positive, log) = softplus_of(&mut b, x)?;
    let sp = b.binary("softplus", BinaryOp::Add, positive, log)?;
    let t = b.unary("tanh", UnaryOp::Tanh, sp)?;
    b.finish(Op::Binary(BinaryOp::Mul), &[x, t])
}

/// ThresholdedRelu: `x > α ? x : 0`, a Where on a comparison (the backends' select).
fn thresholded_relu(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 1, 1)?;
    let x = imp.req(ctx, ins, 0)?;
    let alpha = f64::from(ctx.float_or("alpha", 1.0)?);
    let mut b = Body::float(imp, ctx, x)?;
    let a = b.scalar("alpha", alpha);
    let above = b.step("above", Op::Compare(CompareOp::Greater), &[x, a])?;
    let zero = b.scalar("zero", 0.0);
    b.finish(Op::Where, &[above, x, zero])
}

/// Softsign: `x / (1 + |x|)`.
fn softsign(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 1, 1)?;
    let x = imp.req(ctx, ins, 0)?;
    let mut b = Body::float(imp, ctx, x)?;
    let abs = b.unary("abs", UnaryOp::Abs, x)?;
    let one = b.scalar("one", 1.0);
    let den = b.binary("one_plus", BinaryOp::Add, abs, one)?;
    b.finish(Op::Binary(BinaryOp::Div), &[x, den])
}

/// Gelu (opset 20): `½x·(1 + erf(x/√2))`, or with `approximate="tanh"`
/// `½x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))` (onnxruntime's operation order: x times 1/√2).
fn gelu(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 1, 1)?;
    let x = imp.req(ctx, ins, 0)?;
    let approximate = ctx
        .string("approximate")?
        .unwrap_or_else(|| "none".to_string());
    let mut b = Body::float(imp, ctx, x)?;
    let inner = match approximate.as_str() {
        "none" => {
            let s = b.scale("over_sqrt2", x, std::f64::consts::FRAC_1_SQRT_2)?;
            b.unary("erf", UnaryOp::Erf, s)?
        }
        "tanh" => {
            let x2 = b.binary("square", BinaryOp::Mul, x, x)?;
            let x3 = b.binary("cube", BinaryOp::Mul, x2, x)?;
            let c = b.scale("cube_coeff", x3, 0.044_715)?;
            let sum = b.binary("inner", BinaryOp::Add, x, c)?;
            let s = b.scale("sqrt_2_over_pi", sum, (2.0 / std::f64::consts::PI).sqrt())?;
            b.unary("tanh", UnaryOp::Tanh, s)?
        }
        other => return Err(b.ctx().unsupported_value("approximate", other)),
    };
    let one = b.scalar("one", 1.0);
    let onep = b.binary("one_plus", BinaryOp::Add, inner, one)?;
    let half = b.scale("half", x, 0.5)?;
    b.finish(Op::Binary(BinaryOp::Mul), &[half, onep])
}

fn leaky_relu(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    activation(imp, ctx, ins, |ctx| {
        Ok(UnaryOp::LeakyRelu {
            alpha: ctx.float_or("alpha", 0.01)?,
        })
    })
}

fn hard_sigmoid(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    activation(imp, ctx, ins, |ctx| {
        Ok(UnaryOp::HardSigmoid {
            alpha: ctx.float_or("alpha", 0.2)?,
            beta: ctx.float_or("beta", 0.5)?,
        })
    })
}

fn prelu(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 2, 2)?;
    single(imp, ctx, Op::PRelu, &present(ins))
}

/// A scalar bound of the input's element type (opset < 11 attributes become these).
fn bound(dtype: DType, v: f32) -> Option<Tensor> {
    let data = match dtype {
        DType::F32 => TensorData::F32(vec![v]),
        DType::F64 => TensorData::F64(vec![v as f64]),
        _ => return None,
    };
    Tensor::new(vec![], data).ok()
}

fn clip(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    if ctx.opset < 11 {
        arity(ctx, ins, 1, 1)?;
        let x = imp.req(ctx, ins, 0)?;
        let dtype = imp.ty(x)?.dtype;
        let mut inputs = vec![x];
        let mut flags = [false, false];
        for (k, attr) in ["min", "max"].into_iter().enumerate() {
            if let Some(v) = ctx.float(attr)? {
                let t = bound(dtype, v).ok_or_else(|| {
                    ctx.unsupported(format!("Clip before opset 11 on {dtype} input"))
                })?;
                inputs.push(imp.add_constant(&format!("{}_{attr}", ctx.name), t));
                flags[k] = true;
            }
        }
        let op = Op::Clip(Clip {
            has_min: flags[0],
            has_max: flags[1],
        });
        return single(imp, ctx, op, &inputs);
    }
    arity(ctx, ins, 1, 3)?;
    let op = Op::Clip(Clip {
        has_min: ins.get(1).copied().flatten().is_some(),
        has_max: ins.get(2).copied().flatten().is_some(),
    });
    single(imp, ctx, op, &present(ins))
}

/// Mod of constants (exporters emit it in shape arithmetic, e.g. PyTorch's attention), folded
/// at import: `fmod = 0` takes the divisor's sign (integers only, as the spec says), `fmod = 1`
/// the dividend's (C `fmod`). A Mod of activations is refused: no backend has the kernel.
fn modulo(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 2, 2)?;
    let fmod = ctx.bool_or("fmod", false)?;
    let [ea, eb] = broadcast_constants(imp, ctx, ins)?;
    let shape = ea.shape().to_vec();
    let zero = || ctx.unsupported("a zero divisor");
    macro_rules! ints {
        ($x:expr, $y:expr, $var:ident) => {{
            let v = $x
                .iter()
                .zip($y)
                .map(|(&x, &y)| {
                    let r = x.checked_rem(y).ok_or_else(zero)?;
                    // Python's remainder: a non-zero result takes the divisor's sign.
                    Ok(if !fmod && r != 0 && (r < 0) != (y < 0) {
                        r + y
                    } else {
                        r
                    })
                })
                .collect::<Result<Vec<_>, OnnxError>>()?;
            TensorData::$var(v)
        }};
    }
    let data = match (ea.data(), eb.data()) {
        (TensorData::I64(x), TensorData::I64(y)) => ints!(x, y, I64),
        (TensorData::I32(x), TensorData::I32(y)) => ints!(x, y, I32),
        (TensorData::I8(x), TensorData::I8(y)) => ints!(x, y, I8),
        // Unsigned: both definitions agree.
        (TensorData::U8(x), TensorData::U8(y)) => TensorData::U8(
            x.iter()
                .zip(y)
                .map(|(&x, &y)| x.checked_rem(y).ok_or_else(zero))
                .collect::<Result<_, _>>()?,
        ),
        (TensorData::F32(x), TensorData::F32(y)) if fmod => {
            TensorData::F32(x.iter().zip(y).map(|(x, y)| x % y).collect())
        }
        (TensorData::F64(x), TensorData::F64(y)) if fmod => {
            TensorData::F64(x.iter().zip(y).map(|(x, y)| x % y).collect())
        }
        (x, y) if x.dtype() == y.dtype() => {
            return Err(ctx.unsupported(format!(
                "fmod=0 on {} (the spec requires fmod=1 for floating-point operands)",
                x.dtype()
            )))
        }
        (x, y) => {
            return Err(ctx.unsupported(format!(
                "operands of different element types {} and {}",
                x.dtype(),
                y.dtype()
            )))
        }
    };
    let t = Tensor::new(shape, data).map_err(|e| ctx.unsupported(e.to_string()))?;
    fold_to(imp, ctx, t)
}
