//! MaxPool, AveragePool and the global pools.

use strata_ir::ops::{GlobalPoolKind, Pool};
use strata_ir::{InferError, Op, ValueRef};

use super::conv::{auto_pad, resolve_pads, spatial_attr, spatial_dims, AutoPad};
use super::{arity, outputs_at_most, present, shape_err, single, OnnxOp};
use crate::attrs::NodeCtx;
use crate::import::Importer;
use crate::OnnxError;

/// The pooling ops and the opsets they are accepted in (see [`OnnxOp`]).
pub(super) const OPS: &[OnnxOp] = &[
    OnnxOp::new("MaxPool", 1, 22, |imp, ctx, ins| pool(imp, ctx, ins, true)),
    OnnxOp::new("AveragePool", 1, 22, |imp, ctx, ins| {
        pool(imp, ctx, ins, false)
    }),
    OnnxOp::new("GlobalAveragePool", 1, 22, |imp, ctx, ins| {
        global_pool(imp, ctx, ins, GlobalPoolKind::Average)
    }),
    OnnxOp::new("GlobalMaxPool", 1, 22, |imp, ctx, ins| {
        global_pool(imp, ctx, ins, GlobalPoolKind::Max)
    }),
];

/// MaxPool (`is_max`) or AveragePool.
fn pool(
    imp: &mut Importer,
    ctx: &NodeCtx,
    ins: &[Option<ValueRef>],
    is_max: bool,
) -> Result<Vec<ValueRef>, OnnxError> {
    arity(ctx, ins, 1, 1)?;
    if is_max {
        outputs_at_most(ctx, 1, "MaxPool indices")?;
    }
    let x = imp.ty(imp.req(ctx, ins, 0)?)?;
    if x.rank() < 3 {
        return Err(shape_err(
            ctx,
            InferError::Rank {
                input: 0,
                got: x.rank(),
                expected: "at least 3 ([N, C, spatial…])".to_string(),
            },
        ));
    }
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

fn global_pool(
    imp: &mut Importer,
    ctx: &NodeCtx,
    ins: &[Option<ValueRef>],
    kind: GlobalPoolKind,
) -> Result<Vec<ValueRef>, OnnxError> {
    arity(ctx, ins, 1, 1)?;
    single(imp, ctx, Op::GlobalPool(kind), &present(ins))
}
