//! Gemm and MatMul.

use strata_ir::ops::Gemm;
use strata_ir::Op;

use super::{arity, present, single, Ins, OnnxOp, Outs};
use crate::attrs::NodeCtx;
use crate::import::Importer;

/// The matrix products and the opsets they are accepted in (see [`OnnxOp`]).
pub(super) const OPS: &[OnnxOp] = &[
    OnnxOp::new("Gemm", 1, 13, gemm),
    OnnxOp::new("MatMul", 1, 13, matmul),
];

fn gemm(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 2, 3)?;
    let has_c = ins.get(2).copied().flatten().is_some();
    let op = Op::Gemm(Gemm {
        alpha: ctx.float_or("alpha", 1.0)?,
        beta: ctx.float_or("beta", 1.0)?,
        trans_a: ctx.bool_or("transA", false)?,
        trans_b: ctx.bool_or("transB", false)?,
        has_c,
    });
    single(imp, ctx, op, &present(ins))
}

fn matmul(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 2, 2)?;
    single(imp, ctx, Op::MatMul, &present(ins))
}
