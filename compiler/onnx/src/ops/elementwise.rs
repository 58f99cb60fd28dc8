//! Element-wise ops: broadcasting arithmetic, activations, PRelu and Clip.

use strata_ir::ops::{BinaryOp, Clip, UnaryOp, VariadicOp};
use strata_ir::{DType, Op, Tensor, TensorData};

use super::{arity, present, single, Ins, OnnxOp, Outs};
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
];

fn binary(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins, op: BinaryOp) -> Outs {
    arity(ctx, ins, 2, 2)?;
    single(imp, ctx, Op::Binary(op), &present(ins))
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
