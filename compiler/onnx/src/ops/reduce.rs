//! Reductions: ReduceMean, ReduceMax, ReduceSum and ArgMax.

use strata_ir::ops::{ArgMax, Reduce};
use strata_ir::Op;

use super::{arity, ints_attr_or_input, single, Ins, OnnxOp, Outs};
use crate::attrs::NodeCtx;
use crate::import::Importer;

/// The reductions and the opsets they are accepted in (see [`OnnxOp`]). ReduceMax-20 added
/// bool inputs; ReduceSum took `axes` as an input at 13, the others at 18.
pub(super) const OPS: &[OnnxOp] = &[
    OnnxOp::new("ReduceMean", 1, 18, bind!(reduce, (Op::ReduceMean, 18))),
    OnnxOp::new("ReduceMax", 1, 20, bind!(reduce, (Op::ReduceMax, 18))),
    OnnxOp::new("ReduceSum", 1, 13, bind!(reduce, (Op::ReduceSum, 13))),
    OnnxOp::new("ArgMax", 1, 13, arg_max),
];

/// An axis reduction: `make` builds the IR op, `moved_in` is the opset that turned `axes`
/// from an attribute into an optional input.
fn reduce(
    imp: &mut Importer,
    ctx: &NodeCtx,
    ins: &Ins,
    (make, moved_in): (fn(Reduce) -> Op, i64),
) -> Outs {
    let axes = ints_attr_or_input(imp, ctx, ins, "axes", moved_in)?;
    let x = imp.req(ctx, ins, 0)?;
    let rank = imp.ty(x)?.rank();
    let keep_dims = ctx.bool_or("keepdims", true)?;
    let noop = ctx.opset >= moved_in && ctx.bool_or("noop_with_empty_axes", false)?;
    let axes = match axes {
        Some(a) if !a.is_empty() => ctx.axes("axes", &a, rank)?,
        _ if noop => return single(imp, ctx, Op::Identity, &[x]),
        _ => (0..rank).collect(),
    };
    if axes.is_empty() {
        // A rank-0 input: reducing one element gives the element.
        return single(imp, ctx, Op::Identity, &[x]);
    }
    single(imp, ctx, make(Reduce { axes, keep_dims }), &[x])
}

fn arg_max(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 1, 1)?;
    let x = imp.req(ctx, ins, 0)?;
    let rank = imp.ty(x)?.rank();
    let axis = ctx.axis("axis", ctx.int_or("axis", 0)?, rank, false)?;
    let select_last_index = ctx.opset >= 12 && ctx.bool_or("select_last_index", false)?;
    let op = Op::ArgMax(ArgMax {
        axis,
        keep_dims: ctx.bool_or("keepdims", true)?,
        select_last_index,
    });
    single(imp, ctx, op, &[x])
}
