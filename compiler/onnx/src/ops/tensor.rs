//! Value plumbing: Identity, Dropout (inference), Constant, Shape and Cast.

use onnx_protobuf::TensorProto;
use strata_ir::{Op, Tensor, TensorData};

use super::{arity, outputs_at_most, single, Ins, OnnxOp, Outs};
use crate::attrs::NodeCtx;
use crate::import::Importer;
use crate::tensor::{dtype_from_onnx, tensor_from_proto};
use crate::OnnxError;

/// The tensor utility ops and the opsets they are accepted in (see [`OnnxOp`]).
pub(super) const OPS: &[OnnxOp] = &[
    OnnxOp::new("Identity", 1, 21, identity),
    OnnxOp::new("Dropout", 1, 22, dropout),
    OnnxOp::new("Constant", 1, 21, constant),
    OnnxOp::new("Shape", 1, 21, shape),
    OnnxOp::new("Cast", 1, 21, cast),
];

/// The largest Dropout mask stored as a constant (elements).
const MAX_MASK: usize = 1 << 24;

fn identity(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 1, 1)?;
    let x = imp.req(ctx, ins, 0)?;
    single(imp, ctx, Op::Identity, &[x])
}

/// Inference-mode Dropout is the identity; its mask (if requested) is all true.
fn dropout(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    if ctx.opset < 12 {
        arity(ctx, ins, 1, 1)?;
    } else {
        arity(ctx, ins, 1, 3)?;
        if let Some(v) = ins.get(2).copied().flatten() {
            let t = imp
                .constant(v)
                .ok_or_else(|| ctx.non_constant(&ctx.proto.input[2]))?;
            // Training mode only matters when something is dropped: with ratio 0 it is the
            // identity too (the default ratio is 0.5).
            if t.to_f64_vec().iter().any(|&x| x != 0.0)
                && imp.const_scalar(ctx, ins, 1)? != Some(0.0)
            {
                return Err(ctx.unsupported(
                    "training_mode=true with a non-zero ratio (Strata imports inference graphs)",
                ));
            }
        }
    }
    outputs_at_most(ctx, 2, "extra output")?;
    let x = imp.req(ctx, ins, 0)?;
    let x_ty = imp.ty(x)?;
    let out = imp.out_name(ctx, 0);
    let mut outs = imp.emit(ctx, Op::Identity, &[x], vec![out])?;
    if ctx.proto.output.get(1).is_some_and(|m| !m.is_empty()) {
        let dims = x_ty.shape.as_known().ok_or_else(|| {
            ctx.unsupported("a mask output for an input whose shape depends on the batch size")
        })?;
        let n = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= MAX_MASK)
            .ok_or_else(|| {
                ctx.unsupported(format!(
                    "a mask output of shape {dims:?} is too large to store"
                ))
            })?;
        let mask = Tensor::new(dims, TensorData::Bool(vec![true; n]))
            .map_err(|e| ctx.unsupported(e.to_string()))?;
        let name = imp.out_name(ctx, 1);
        outs.push(imp.add_constant(&name, mask));
    }
    Ok(outs)
}

fn constant(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 0, 0)?;
    outputs_at_most(ctx, 1, "extra output")?;
    for attr in ["sparse_value", "value_string", "value_strings"] {
        if ctx.attr(attr).is_some() {
            return Err(
                ctx.unsupported_value(attr, "(sparse and string constants are not supported)")
            );
        }
    }
    let tensor = if let Some(t) = ctx.tensor("value")? {
        let named;
        let t = if t.name.is_empty() {
            named = TensorProto {
                name: ctx.name.clone(),
                ..t.clone()
            };
            &named
        } else {
            t
        };
        tensor_from_proto(t, None)?
    } else if let Some(v) = ctx.float("value_float")? {
        Tensor::scalar_f32(v)
    } else if let Some(v) = ctx.floats("value_floats")? {
        Tensor::from_f32(vec![v.len()], v).map_err(|e| ctx.unsupported(e.to_string()))?
    } else if let Some(v) = ctx.int("value_int")? {
        Tensor::from_i64(vec![], vec![v]).map_err(|e| ctx.unsupported(e.to_string()))?
    } else if let Some(v) = ctx.ints("value_ints")? {
        Tensor::from_i64(vec![v.len()], v).map_err(|e| ctx.unsupported(e.to_string()))?
    } else {
        return Err(OnnxError::MissingAttribute {
            node: ctx.name.clone(),
            op_type: ctx.op_type.to_string(),
            attr: "value".to_string(),
        });
    };
    let name = imp.out_name(ctx, 0);
    Ok(vec![imp.add_constant(&name, tensor)])
}

fn shape(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 1, 1)?;
    let x = imp.req(ctx, ins, 0)?;
    let rank = imp.ty(x)?.rank() as i64;
    // Opset 15 added `start`/`end`; out-of-range values are clamped, as the spec says.
    let (start, end) = if ctx.opset >= 15 {
        (ctx.int_or("start", 0)?, ctx.int_or("end", rank)?)
    } else {
        (0, rank)
    };
    let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
    let (start, end) = (clamp(start), clamp(end));
    single(
        imp,
        ctx,
        Op::Shape {
            start,
            end: end.max(start),
        },
        &[x],
    )
}

fn cast(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 1, 1)?;
    let x = imp.req(ctx, ins, 0)?;
    let to = ctx.required("to", ctx.int("to")?)?;
    let code = i32::try_from(to)
        .map_err(|_| ctx.out_of_range("to", format!("{to} is not a type code")))?;
    let to = dtype_from_onnx(code, &format!("{} (Cast `to`)", ctx.name))?;
    single(imp, ctx, Op::Cast { to }, &[x])
}
