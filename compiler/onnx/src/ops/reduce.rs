//! ReduceMean.

use strata_ir::ops::ReduceMean;
use strata_ir::Op;

use super::{ints_attr_or_input, single, Ins, OnnxOp, Outs};
use crate::attrs::NodeCtx;
use crate::import::Importer;

/// The reductions and the opsets they are accepted in (see [`OnnxOp`]).
pub(super) const OPS: &[OnnxOp] = &[OnnxOp::new("ReduceMean", 1, 18, reduce_mean)];

fn reduce_mean(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    // Opset 18 moved `axes` from an attribute to an optional input.
    let axes = ints_attr_or_input(imp, ctx, ins, "axes", 18)?;
    let x = imp.req(ctx, ins, 0)?;
    let rank = imp.ty(x)?.rank();
    let keep_dims = ctx.bool_or("keepdims", true)?;
    let noop = ctx.opset >= 18 && ctx.bool_or("noop_with_empty_axes", false)?;
    let axes = match axes {
        Some(a) if !a.is_empty() => ctx.axes("axes", &a, rank)?,
        _ if noop => return single(imp, ctx, Op::Identity, &[x]),
        _ => (0..rank).collect(),
    };
    if axes.is_empty() {
        // A rank-0 input: the mean of one element is the element.
        return single(imp, ctx, Op::Identity, &[x]);
    }
    single(
        imp,
        ctx,
        Op::ReduceMean(ReduceMean { axes, keep_dims }),
        &[x],
    )
}
