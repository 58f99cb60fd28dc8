//! Element-wise ops: broadcasting arithmetic, comparisons and Where, math functions,
//! activations, PRelu and Clip.

use strata_ir::ops::{BinaryOp, Clip, CompareOp, UnaryOp, VariadicOp};
use strata_ir::{DType, Op, Tensor, TensorData};

use super::{arity, constant_input, fold_to, helper, present, single, Ins, OnnxOp, Outs};
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
    let (ta, tb) = (
        constant_input(imp, ctx, ins, 0)?,
        constant_input(imp, ctx, ins, 1)?,
    );
    let shape =
        strata_runtime::kernels::elementwise::broadcast_shape("mod", ta.shape(), tb.shape())
            .map_err(|e| ctx.unsupported(e.to_string()))?;
    let expand = |t: &Tensor| {
        strata_runtime::kernels::layout::expand(&shape, t)
            .map_err(|e| ctx.unsupported(e.to_string()))
    };
    let (ea, eb) = (expand(&ta)?, expand(&tb)?);
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
