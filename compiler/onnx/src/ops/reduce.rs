//! Reductions: ReduceMean, ReduceMax, ReduceSum and ArgMax; ReduceMin, ReduceL1,
//! ReduceL2, ReduceSumSquare, ReduceLogSum and ReduceLogSumExp as their function bodies
//! over those.

use strata_ir::ops::{ArgMax, BinaryOp, Reduce, UnaryOp};
use strata_ir::{Op, ValueRef};

use super::body::Body;
use super::{arity, ints_attr_or_input, single, Ins, OnnxOp, Outs};
use crate::attrs::NodeCtx;
use crate::import::Importer;
use crate::OnnxError;

/// The reductions and the opsets they are accepted in (see [`OnnxOp`]). ReduceMax-20 added
/// bool inputs; ReduceSum took `axes` as an input at 13, the others at 18.
pub(super) const OPS: &[OnnxOp] = &[
    OnnxOp::new("ReduceMean", 1, 18, bind!(reduce, (Op::ReduceMean, 18))),
    OnnxOp::new("ReduceMax", 1, 20, bind!(reduce, (Op::ReduceMax, 18))),
    OnnxOp::new("ReduceSum", 1, 13, bind!(reduce, (Op::ReduceSum, 13))),
    OnnxOp::new("ReduceMin", 1, 20, bind!(composite, Composite::Min)),
    OnnxOp::new("ReduceL1", 1, 18, bind!(composite, Composite::L1)),
    OnnxOp::new("ReduceL2", 1, 18, bind!(composite, Composite::L2)),
    OnnxOp::new(
        "ReduceSumSquare",
        1,
        18,
        bind!(composite, Composite::SumSquare),
    ),
    OnnxOp::new("ReduceLogSum", 1, 18, bind!(composite, Composite::LogSum)),
    OnnxOp::new(
        "ReduceLogSumExp",
        1,
        18,
        bind!(composite, Composite::LogSumExp),
    ),
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
    let (x, reduce) = reduction(imp, ctx, ins, moved_in)?;
    match reduce {
        Some(r) => single(imp, ctx, make(r), &[x]),
        None => single(imp, ctx, Op::Identity, &[x]),
    }
}

/// A reduction's input and what it reduces: `None` when nothing is (`noop_with_empty_axes`
/// with no axes, or a rank-0 input, where reducing one element gives the element).
fn reduction(
    imp: &mut Importer,
    ctx: &NodeCtx,
    ins: &Ins,
    moved_in: i64,
) -> Result<(ValueRef, Option<Reduce>), OnnxError> {
    let axes = ints_attr_or_input(imp, ctx, ins, "axes", moved_in)?;
    let x = imp.req(ctx, ins, 0)?;
    let rank = imp.ty(x)?.rank();
    let keep_dims = ctx.bool_or("keepdims", true)?;
    let noop = ctx.opset >= moved_in && ctx.bool_or("noop_with_empty_axes", false)?;
    let axes = match axes {
        Some(a) if !a.is_empty() => ctx.axes("axes", &a, rank)?,
        _ if noop => return Ok((x, None)),
        _ => (0..rank).collect(),
    };
    Ok((x, (!axes.is_empty()).then_some(Reduce { axes, keep_dims })))
}

/// The reductions ONNX defines through others.
#[derive(Clone, Copy)]
enum Composite {
    /// `−ReduceMax(−x)` (exact: negation is).
    Min,
    /// `ReduceSum(|x|)`.
    L1,
    /// `√ReduceSum(x²)`.
    L2,
    /// `ReduceSum(x²)`.
    SumSquare,
    /// `log ReduceSum(x)`.
    LogSum,
    /// `log ReduceSum(e^(x − m)) + m` with `m = ReduceMax(x)`: the spec's `log Σ eˣ` without
    /// its overflow above x ≈ 88 (onnxruntime subtracts the maximum too).
    LogSumExp,
}

/// A [`Composite`] reduction. With nothing to reduce (`noop_with_empty_axes`), the
/// element-wise parts still apply, as in the ONNX reference (ReduceL2 gives |x|).
fn composite(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins, kind: Composite) -> Outs {
    let (x, reduce) = reduction(imp, ctx, ins, 18)?;
    let mut b = Body::float(imp, ctx, x)?;
    let Some(r) = reduce else {
        return match kind {
            Composite::Min | Composite::LogSumExp => b.finish(Op::Identity, &[x]),
            Composite::L1 | Composite::L2 => b.finish(Op::Unary(UnaryOp::Abs), &[x]),
            Composite::SumSquare => b.finish(Op::Binary(BinaryOp::Mul), &[x, x]),
            Composite::LogSum => b.finish(Op::Unary(UnaryOp::Log), &[x]),
        };
    };
    let sum = Op::ReduceSum(r.clone());
    match kind {
        Composite::Min => {
            let neg = b.unary("neg", UnaryOp::Neg, x)?;
            let max = b.step("max_of_neg", Op::ReduceMax(r), &[neg])?;
            b.finish(Op::Unary(UnaryOp::Neg), &[max])
        }
        Composite::L1 => {
            let abs = b.unary("abs", UnaryOp::Abs, x)?;
            b.finish(sum, &[abs])
        }
        Composite::SumSquare => {
            let sq = b.binary("squared", BinaryOp::Mul, x, x)?;
            b.finish(sum, &[sq])
        }
        Composite::L2 => {
            let sq = b.binary("squared", BinaryOp::Mul, x, x)?;
            let ss = b.step("sum_squares", sum, &[sq])?;
            b.finish(Op::Unary(UnaryOp::Sqrt), &[ss])
        }
        Composite::LogSum => {
            let s = b.step("sum", sum, &[x])?;
            b.finish(Op::Unary(UnaryOp::Log), &[s])
        }
        Composite::LogSumExp => {
            let kept = Reduce {
                axes: r.axes.clone(),
                keep_dims: true,
            };
            let m = b.step("max", Op::ReduceMax(kept), &[x])?;
            let d = b.binary("shifted", BinaryOp::Sub, x, m)?;
            let e = b.unary("exp", UnaryOp::Exp, d)?;
            let s = b.step("sum_exp", sum, &[e])?;
            let l = b.unary("log", UnaryOp::Log, s)?;
            let m_out = match r.keep_dims {
                true => m,
                false => b.step("max_out", Op::ReduceMax(r), &[x])?,
            };
            b.finish(Op::Binary(BinaryOp::Add), &[l, m_out])
        }
    }
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
