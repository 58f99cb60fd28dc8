//! MaxPool, AveragePool and the global pools.

use strata_ir::ops::GlobalPoolKind::{self, Average, Max};
use strata_ir::ops::Pool;
use strata_ir::Op;

use super::conv::{auto_pad, resolve_pads, spatial_attr, spatial_dims, spatial_input, AutoPad};
use super::{arity, outputs_at_most, present, single, Ins, OnnxOp, Outs};
use crate::attrs::NodeCtx;
use crate::import::Importer;

/// The pooling ops and the opsets they are accepted in (see [`OnnxOp`]).
pub(super) const OPS: &[OnnxOp] = &[
    OnnxOp::new("MaxPool", 1, 22, bind!(pool, true)),
    OnnxOp::new("AveragePool", 1, 22, bind!(pool, false)),
    OnnxOp::new("GlobalAveragePool", 1, 22, bind!(global_pool, Average)),
    OnnxOp::new("GlobalMaxPool", 1, 22, bind!(global_pool, Max)),
];

/// MaxPool (`is_max`) or AveragePool.
fn pool(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins, is_max: bool) -> Outs {
    arity(ctx, ins, 1, 1)?;
    if is_max {
        outputs_at_most(ctx, 1, "MaxPool indices")?;
    }
    let x = imp.ty(imp.req(ctx, ins, 0)?)?;
    spatial_input(ctx, &x)?;
    let n = x.rank() - 2;
    let kernel = ctx.required("kernel_shape", ctx.ints("kernel_shape")?)?;
    if kernel.len() != n {
        return Err(ctx.out_of_range(
            "kernel_shape",
            format!("has {} values, expected {n}", kernel.len()),
        ));
    }
    let kernel = spatial_attr(ctx, "kernel_shape", n, 1, 1)?;
    let strides = spatial_attr(ctx, "strides", n, 1, 1)?;
    let dilations = spatial_attr(ctx, "dilations", n, 1, 1)?;
    let pads = match auto_pad(ctx)? {
        AutoPad::NotSet => spatial_attr(ctx, "pads", 2 * n, 0, 0)?,
        _ => resolve_pads(ctx, &spatial_dims(ctx, &x)?, &kernel, &strides, &dilations)?,
    };
    if let Some(i) = (0..n).find(|&i| pads[i] >= kernel[i] || pads[i + n] >= kernel[i]) {
        return Err(ctx.out_of_range(
            "pads",
            format!("padding on axis {i} is not smaller than the kernel"),
        ));
    }
    let p = Pool {
        kernel,
        strides,
        pads,
        dilations,
        ceil_mode: ctx.bool_or("ceil_mode", false)?,
        count_include_pad: !is_max && ctx.bool_or("count_include_pad", false)?,
    };
    let op = if is_max {
        Op::MaxPool(p)
    } else {
        Op::AveragePool(p)
    };
    single(imp, ctx, op, &present(ins))
}

fn global_pool(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins, kind: GlobalPoolKind) -> Outs {
    arity(ctx, ins, 1, 1)?;
    single(imp, ctx, Op::GlobalPool(kind), &present(ins))
}
