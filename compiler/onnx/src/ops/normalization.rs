//! Softmax and inference-mode BatchNormalization.

use strata_ir::ops::{BatchNorm, Softmax};
use strata_ir::Op;

use super::{arity, outputs_at_most, present, single, Ins, OnnxOp, Outs};
use crate::attrs::NodeCtx;
use crate::import::Importer;

/// The normalization ops and the opsets they are accepted in (see [`OnnxOp`]).
pub(super) const OPS: &[OnnxOp] = &[
    OnnxOp::new("Softmax", 1, 13, softmax),
    OnnxOp::new("BatchNormalization", 1, 15, batch_norm),
];

fn softmax(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 1, 1)?;
    let rank = imp.ty(imp.req(ctx, ins, 0)?)?.rank();
    // Before opset 13 Softmax flattened to 2-D around `axis` (default 1); since 13 it is a
    // plain per-axis softmax (default -1).
    let legacy = ctx.opset < 13;
    let axis = ctx.int_or("axis", if legacy { 1 } else { -1 })?;
    let axis = ctx.axis("axis", axis, rank, legacy)?;
    let op = Op::Softmax(Softmax {
        axis,
        coerce_2d: legacy,
    });
    single(imp, ctx, op, &present(ins))
}

fn batch_norm(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 5, 5)?;
    if ctx.bool_or("training_mode", false)? {
        return Err(ctx.unsupported("training_mode=1 (Strata imports inference graphs)"));
    }
    if ctx.opset < 9 && !ctx.bool_or("spatial", true)? {
        return Err(ctx.unsupported_value("spatial", "0"));
    }
    outputs_at_most(ctx, 1, "training statistics")?;
    let op = Op::BatchNorm(BatchNorm {
        epsilon: ctx.float_or("epsilon", 1e-5)?,
    });
    single(imp, ctx, op, &present(ins))
}
