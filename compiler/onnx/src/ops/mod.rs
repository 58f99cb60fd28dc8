//! Per-op translation, one file per op family (mirroring `strata_ir::ops`), plus the opset
//! table that decides which ONNX versions of an op Strata accepts.

mod conv;
mod elementwise;
mod layout;
mod linear;
mod normalization;
mod pool;
mod reduce;
mod tensor;

use strata_ir::{Op, ValueRef};

use super::attrs::NodeCtx;
use super::import::Importer;
use super::OnnxError;

/// Oldest default-domain opset Strata imports.
pub const MIN_OPSET: i64 = 7;
/// Newest default-domain opset whose semantics Strata was written against.
pub const MAX_OPSET: i64 = 22;
/// Newest opset whose changes were reviewed: for the supported ops, everything from 23 to
/// here only added element types Strata rejects anyway (and Cast's `round_mode`, which only
/// affects float8). Beyond it an op might have changed, so the import stops.
pub const NEWEST_REVIEWED_OPSET: i64 = 27;

/// `(op type, opset it first appeared in, last opset ≤ NEWEST_REVIEWED_OPSET that changed its
/// semantics for Strata's element types)`.
const OPS: &[(&str, i64, i64)] = &[
    ("Conv", 1, 22),
    ("ConvTranspose", 1, 22),
    ("Gemm", 1, 13),
    ("MatMul", 1, 13),
    ("Add", 1, 14),
    ("Sub", 1, 14),
    ("Mul", 1, 14),
    ("Div", 1, 14),
    ("Relu", 1, 14),
    ("LeakyRelu", 1, 16),
    ("PRelu", 1, 16),
    ("Clip", 1, 13),
    ("Sigmoid", 1, 13),
    ("HardSigmoid", 1, 22),
    ("HardSwish", 14, 22),
    ("Tanh", 1, 13),
    ("Erf", 9, 13),
    ("Softmax", 1, 13),
    ("BatchNormalization", 1, 15),
    ("MaxPool", 1, 22),
    ("AveragePool", 1, 22),
    ("GlobalAveragePool", 1, 22),
    ("GlobalMaxPool", 1, 22),
    ("Flatten", 1, 21),
    ("Reshape", 1, 21),
    ("Transpose", 1, 21),
    ("Concat", 1, 13),
    ("Pad", 1, 21),
    ("Squeeze", 1, 21),
    ("Unsqueeze", 1, 21),
    ("Identity", 1, 21),
    ("Dropout", 1, 22),
    ("Constant", 1, 21),
    ("Shape", 1, 21),
    ("Gather", 1, 13),
    ("Slice", 1, 13),
    ("Split", 1, 18),
    ("ReduceMean", 1, 18),
    ("Cast", 1, 21),
];

fn check_opset(ctx: &NodeCtx) -> Result<(), OnnxError> {
    let err = |reason: String| OnnxError::UnsupportedOpset {
        node: ctx.name.clone(),
        op_type: ctx.op_type.to_string(),
        domain: ctx.proto.domain.clone(),
        opset: ctx.opset,
        reason,
    };
    let Some(&(_, introduced, changed)) = OPS.iter().find(|(name, _, _)| *name == ctx.op_type)
    else {
        return Err(OnnxError::UnsupportedOp {
            node: ctx.name.clone(),
            op_type: ctx.op_type.to_string(),
            domain: ctx.proto.domain.clone(),
            opset: ctx.opset,
        });
    };
    if ctx.opset < MIN_OPSET {
        return Err(err(format!(
            "Strata imports default-domain opsets {MIN_OPSET} through {MAX_OPSET}"
        )));
    }
    if ctx.opset < introduced {
        return Err(err(format!(
            "`{}` first appeared in opset {introduced}",
            ctx.op_type
        )));
    }
    if ctx.opset > NEWEST_REVIEWED_OPSET {
        return Err(err(format!(
            "opset {} is newer than the newest reviewed opset ({NEWEST_REVIEWED_OPSET}); `{}` may have changed",
            ctx.opset, ctx.op_type
        )));
    }
    if ctx.opset > MAX_OPSET && changed > MAX_OPSET {
        return Err(err(format!(
            "`{}` changed in opset {changed}, after the supported {MAX_OPSET}",
            ctx.op_type
        )));
    }
    Ok(())
}

/// Translates one ONNX node; returns the values of its outputs in order (optional trailing
/// outputs the node does not name may be missing).
pub fn import_node(
    imp: &mut Importer,
    ctx: &NodeCtx,
    ins: &[Option<ValueRef>],
) -> Result<Vec<ValueRef>, OnnxError> {
    check_opset(ctx)?;
    match ctx.op_type {
        "Conv" => conv::conv(imp, ctx, ins),
        "ConvTranspose" => conv::conv_transpose(imp, ctx, ins),
        "Gemm" => linear::gemm(imp, ctx, ins),
        "MatMul" => linear::matmul(imp, ctx, ins),
        "Add" | "Sub" | "Mul" | "Div" => elementwise::binary(imp, ctx, ins),
        "Relu" | "LeakyRelu" | "Sigmoid" | "HardSigmoid" | "HardSwish" | "Tanh" | "Erf" => {
            elementwise::unary(imp, ctx, ins)
        }
        "PRelu" => elementwise::prelu(imp, ctx, ins),
        "Clip" => elementwise::clip(imp, ctx, ins),
        "Softmax" => normalization::softmax(imp, ctx, ins),
        "BatchNormalization" => normalization::batch_norm(imp, ctx, ins),
        "MaxPool" | "AveragePool" => pool::pool(imp, ctx, ins),
        "GlobalAveragePool" | "GlobalMaxPool" => pool::global_pool(imp, ctx, ins),
        "Flatten" => layout::flatten(imp, ctx, ins),
        "Reshape" => layout::reshape(imp, ctx, ins),
        "Transpose" => layout::transpose(imp, ctx, ins),
        "Concat" => layout::concat(imp, ctx, ins),
        "Pad" => layout::pad(imp, ctx, ins),
        "Squeeze" => layout::squeeze(imp, ctx, ins),
        "Unsqueeze" => layout::unsqueeze(imp, ctx, ins),
        "Slice" => layout::slice(imp, ctx, ins),
        "Split" => layout::split(imp, ctx, ins),
        "Gather" => layout::gather(imp, ctx, ins),
        "ReduceMean" => reduce::reduce_mean(imp, ctx, ins),
        "Identity" => tensor::identity(imp, ctx, ins),
        "Dropout" => tensor::dropout(imp, ctx, ins),
        "Constant" => tensor::constant(imp, ctx, ins),
        "Shape" => tensor::shape(imp, ctx, ins),
        "Cast" => tensor::cast(imp, ctx, ins),
        other => Err(OnnxError::UnsupportedOp {
            node: ctx.name.clone(),
            op_type: other.to_string(),
            domain: ctx.proto.domain.clone(),
            opset: ctx.opset,
        }),
    }
}

/// Checks the number of inputs: at most `max`, and the first `min` present.
fn arity(ctx: &NodeCtx, ins: &[Option<ValueRef>], min: usize, max: usize) -> Result<(), OnnxError> {
    if ins.len() > max {
        return Err(ctx.input_count(format!("takes at most {max} inputs, got {}", ins.len())));
    }
    if let Some(i) = (0..min).find(|&i| ins.get(i).copied().flatten().is_none()) {
        return Err(ctx.input_count(format!("required input #{i} is missing")));
    }
    Ok(())
}

/// An optional integer list that opset `moved_in` turned from attribute `name` into the
/// optional second input (Squeeze axes and Split sizes at 13, ReduceMean axes at 18).
fn ints_attr_or_input(
    imp: &mut Importer,
    ctx: &NodeCtx,
    ins: &[Option<ValueRef>],
    name: &str,
    moved_in: i64,
) -> Result<Option<Vec<i64>>, OnnxError> {
    if ctx.opset < moved_in {
        arity(ctx, ins, 1, 1)?;
        ctx.ints(name)
    } else {
        arity(ctx, ins, 1, 2)?;
        imp.const_ints(ctx, ins, 1)
    }
}

/// Rejects requests for outputs beyond the first `supported`.
fn outputs_at_most(ctx: &NodeCtx, supported: usize, what: &str) -> Result<(), OnnxError> {
    match ctx
        .proto
        .output
        .iter()
        .skip(supported)
        .find(|o| !o.is_empty())
    {
        Some(o) => Err(ctx.unsupported(format!("output `{o}` ({what}) is not supported"))),
        None => Ok(()),
    }
}

/// Emits a one-output op named after the node's first output.
fn single(
    imp: &mut Importer,
    ctx: &NodeCtx,
    op: Op,
    inputs: &[ValueRef],
) -> Result<Vec<ValueRef>, OnnxError> {
    outputs_at_most(ctx, 1, "extra output")?;
    let name = imp.out_name(ctx, 0);
    imp.emit(ctx, op, inputs, vec![name])
}

/// Present inputs in order (after `arity` has checked the required ones).
fn present(ins: &[Option<ValueRef>]) -> Vec<ValueRef> {
    ins.iter().flatten().copied().collect()
}

/// A shape-inference error raised by the frontend itself (before the IR sees the op).
fn shape_err(ctx: &NodeCtx, source: strata_ir::InferError) -> OnnxError {
    OnnxError::Shape {
        node: ctx.name.clone(),
        op_type: ctx.op_type.to_string(),
        source,
    }
}
