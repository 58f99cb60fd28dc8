//! Softmax, inference-mode BatchNormalization, LayerNormalization, InstanceNormalization
//! and LpNormalization.

use strata_ir::ops::{BatchNorm, BinaryOp, Reduce, Softmax, UnaryOp, VariadicOp};
use strata_ir::{DType, Op, Tensor};

use super::body::Body;
use super::{arity, helper, outputs_at_most, present, single, Ins, OnnxOp, Outs};
use crate::attrs::NodeCtx;
use crate::import::Importer;

/// The normalization ops and the opsets they are accepted in (see [`OnnxOp`]).
pub(super) const OPS: &[OnnxOp] = &[
    OnnxOp::new("Softmax", 1, 13, softmax),
    OnnxOp::new("BatchNormalization", 1, 15, batch_norm),
    OnnxOp::new("LayerNormalization", 17, 17, layer_norm),
    OnnxOp::new("InstanceNormalization", 1, 22, instance_norm),
    OnnxOp::new("LpNormalization", 1, 22, lp_norm),
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

/// LayerNormalization (opset 17), imported as the function body the spec defines, in f32:
/// `D = X − mean(X)`, `Var = mean(D·D)`, `InvStdDev = 1/√(Var + ε)`,
/// `Y = D·InvStdDev·Scale (+ B)`, the means over the axes from `axis` to the last. The
/// backends already run every one of these ops (the transformer blocks of ViT, Swin and
/// ConvNeXt exports reach them this way). The optional `Mean` and `InvStdDev` outputs are the
/// intermediate values of the same name.
fn layer_norm(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 2, 3)?;
    let x = imp.req(ctx, ins, 0)?;
    let scale = imp.req(ctx, ins, 1)?;
    let ty = imp.ty(x)?;
    if ty.dtype != DType::F32 {
        return Err(ctx.unsupported(format!(
            "input of element type {} (LayerNormalization is imported in f32)",
            ty.dtype
        )));
    }
    let stash = ctx.int_or("stash_type", 1)?;
    if stash != 1 {
        return Err(ctx.unsupported_value("stash_type", stash.to_string()));
    }
    let rank = ty.rank();
    let axis = ctx.axis("axis", ctx.int_or("axis", -1)?, rank, false)?;
    let epsilon = ctx.float_or("epsilon", 1e-5)?;
    let mean_op = || {
        Op::ReduceMean(Reduce {
            axes: (axis..rank).collect(),
            keep_dims: true,
        })
    };
    let bin = Op::Binary;
    // An intermediate the node also outputs takes that output's name; the others are helpers.
    let requested = |i: usize| ctx.proto.output.get(i).is_some_and(|o| !o.is_empty());
    let step = |imp: &mut Importer, out: Option<usize>, suffix: &str, op: Op, args: &[_]| match out
    {
        Some(i) if requested(i) => {
            let name = imp.out_name(ctx, i);
            Ok(imp.emit(ctx, op, args, vec![name])?[0])
        }
        _ => helper(imp, ctx, suffix, op, args),
    };
    let mean = step(imp, Some(1), "mean", mean_op(), &[x])?;
    let d = step(imp, None, "centered", bin(BinaryOp::Sub), &[x, mean])?;
    let dd = step(imp, None, "squared", bin(BinaryOp::Mul), &[d, d])?;
    let var = step(imp, None, "variance", mean_op(), &[dd])?;
    let eps = imp.add_constant(
        &format!("{}_epsilon", ctx.name),
        Tensor::scalar_f32(epsilon),
    );
    let var_eps = step(imp, None, "variance_eps", bin(BinaryOp::Add), &[var, eps])?;
    let std = step(imp, None, "stddev", Op::Unary(UnaryOp::Sqrt), &[var_eps])?;
    let inv = step(
        imp,
        Some(2),
        "inv_stddev",
        Op::Unary(UnaryOp::Reciprocal),
        &[std],
    )?;
    let normalized = step(imp, None, "normalized", bin(BinaryOp::Mul), &[d, inv])?;
    let y_name = imp.out_name(ctx, 0);
    let y = match ins.get(2).copied().flatten() {
        Some(b) => {
            let scaled = step(
                imp,
                None,
                "scaled",
                bin(BinaryOp::Mul),
                &[normalized, scale],
            )?;
            imp.emit(ctx, bin(BinaryOp::Add), &[scaled, b], vec![y_name])?
        }
        None => imp.emit(ctx, bin(BinaryOp::Mul), &[normalized, scale], vec![y_name])?,
    };
    // Outputs bind by position; the importer skips the ones the node leaves empty.
    Ok(vec![y[0], mean, inv])
}

/// InstanceNormalization: per sample and channel, over the spatial axes 2.., `y = scale·(x −
/// mean)/√(var + ε) + B` with the biased variance, as LayerNormalization's body above
/// (PyTorch's InstanceNorm2d, and its GroupNorm through the TorchScript exporter, reach
/// Strata this way). `scale` and `B` are per channel: they broadcast as `[C, 1, …]`.
fn instance_norm(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 3, 3)?;
    let (x, scale, bias) = (
        imp.req(ctx, ins, 0)?,
        imp.req(ctx, ins, 1)?,
        imp.req(ctx, ins, 2)?,
    );
    let ty = imp.ty(x)?;
    let rank = ty.rank();
    if rank < 3 {
        return Err(ctx.unsupported(format!(
            "input of rank {rank}: InstanceNormalization needs [N, C, spatial…]"
        )));
    }
    let channels = ty.shape.dims()[1];
    for (i, v) in [(1, scale), (2, bias)] {
        let d = imp.ty(v)?.shape;
        if d.dims().len() != 1 || d.dims()[0] != channels {
            return Err(ctx.input_count(format!(
                "input #{i} must have shape [C] = [{channels}], it has {d}"
            )));
        }
    }
    let epsilon = f64::from(ctx.float_or("epsilon", 1e-5)?);
    let mut b = Body::float(imp, ctx, x)?;
    let spatial: Vec<usize> = (2..rank).collect();
    let mean_op = || {
        Op::ReduceMean(Reduce {
            axes: spatial.clone(),
            keep_dims: true,
        })
    };
    let mean = b.step("mean", mean_op(), &[x])?;
    let d = b.binary("centered", BinaryOp::Sub, x, mean)?;
    let dd = b.binary("squared", BinaryOp::Mul, d, d)?;
    let var = b.step("variance", mean_op(), &[dd])?;
    let eps = b.scalar("epsilon", epsilon);
    let var_eps = b.binary("variance_eps", BinaryOp::Add, var, eps)?;
    let std = b.unary("stddev", UnaryOp::Sqrt, var_eps)?;
    let inv = b.unary("inv_stddev", UnaryOp::Reciprocal, std)?;
    let normalized = b.binary("normalized", BinaryOp::Mul, d, inv)?;
    // [C] → [C, 1, …]: broadcasts against [N, C, spatial…] from the right.
    let per_channel = Op::Unsqueeze {
        axes: (1..rank - 1).collect(),
    };
    let scale_c = b.step("scale_per_channel", per_channel.clone(), &[scale])?;
    let bias_c = b.step("bias_per_channel", per_channel, &[bias])?;
    let scaled = b.binary("scaled", BinaryOp::Mul, normalized, scale_c)?;
    b.finish(Op::Binary(BinaryOp::Add), &[scaled, bias_c])
}

/// LpNormalization: `x / ‖x‖_p` along `axis` (p = 1: Σ|x|, p = 2: √Σx²), and 0 for a zero
/// vector, as onnxruntime and the ONNX tests have it: the norm is raised to at least the
/// smallest positive (subnormal) float, which changes no other norm, and a zero vector's
/// elements divided by it stay 0.
fn lp_norm(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 1, 1)?;
    let x = imp.req(ctx, ins, 0)?;
    let rank = imp.ty(x)?.rank();
    let axis = ctx.axis("axis", ctx.int_or("axis", -1)?, rank, false)?;
    let p = ctx.int_or("p", 2)?;
    let mut b = Body::float(imp, ctx, x)?;
    let sum = |axis| {
        Op::ReduceSum(Reduce {
            axes: vec![axis],
            keep_dims: true,
        })
    };
    let norm = match p {
        1 => {
            let abs = b.unary("abs", UnaryOp::Abs, x)?;
            b.step("l1", sum(axis), &[abs])?
        }
        2 => {
            let sq = b.binary("squared", BinaryOp::Mul, x, x)?;
            let ss = b.step("sum_squares", sum(axis), &[sq])?;
            b.unary("l2", UnaryOp::Sqrt, ss)?
        }
        other => return Err(ctx.unsupported_value("p", other.to_string())),
    };
    let tiny = b.tiny("smallest_positive");
    let norm = b.step("nonzero", Op::Variadic(VariadicOp::Max), &[norm, tiny])?;
    b.finish(Op::Binary(BinaryOp::Div), &[x, norm])
}
