//! Data movement: Flatten, Reshape, Transpose, Concat, Pad, Squeeze, Unsqueeze, Slice,
//! Split and Gather; DepthToSpace, SpaceToDepth (Reshape, Transpose, Reshape, as the spec
//! defines them) and Tile (Concats of copies). Every shape-determining parameter must be
//! constant here, because the IR keeps them as static attributes.

use strata_ir::ops::{Pad, PadMode, Reshape, Slice, Split};
use strata_ir::{Dim, Op};

use super::{
    arity, constant_input, helper, ints_attr_or_input, present, single, Ins, OnnxOp, Outs,
};
use crate::attrs::NodeCtx;
use crate::import::{input_name, Importer};
use crate::sym::SymInt;
use crate::OnnxError;

/// The data-movement ops and the opsets they are accepted in (see [`OnnxOp`]).
pub(super) const OPS: &[OnnxOp] = &[
    OnnxOp::new("Flatten", 1, 21, flatten),
    OnnxOp::new("Reshape", 1, 21, reshape),
    OnnxOp::new("Transpose", 1, 21, transpose),
    OnnxOp::new("Concat", 1, 13, concat),
    OnnxOp::new("Pad", 1, 21, pad),
    OnnxOp::new("Expand", 8, 13, expand),
    OnnxOp::new("Squeeze", 1, 21, squeeze),
    OnnxOp::new("Unsqueeze", 1, 21, unsqueeze),
    OnnxOp::new("Gather", 1, 13, gather),
    OnnxOp::new("Slice", 1, 13, slice),
    OnnxOp::new("Split", 1, 18, split),
    OnnxOp::new("DepthToSpace", 1, 13, bind!(block_rearrange, true)),
    OnnxOp::new("SpaceToDepth", 1, 13, bind!(block_rearrange, false)),
    OnnxOp::new("Tile", 1, 13, tile),
];

/// DepthToSpace (`to_space`) and SpaceToDepth on `[N, C, H, W]`: the spec's Reshape to six
/// dimensions, Transpose and Reshape back, with the batch copied (`0`) so it stays free.
/// DepthToSpace's `mode` is DCR (depth-column-row, the default) or CRD (PyTorch's
/// PixelShuffle).
fn block_rearrange(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins, to_space: bool) -> Outs {
    arity(ctx, ins, 1, 1)?;
    let x = imp.req(ctx, ins, 0)?;
    let ty = imp.ty(x)?;
    let bs = ctx.required("blocksize", ctx.int("blocksize")?)?;
    if !(1..=4096).contains(&bs) {
        return Err(ctx.out_of_range("blocksize", format!("{bs} is not in 1..=4096")));
    }
    let dims = ty.shape.dims();
    let [_, c, h, w] = dims else {
        return Err(ctx.unsupported(format!("input of rank {} (needs [N, C, H, W])", dims.len())));
    };
    let known = |d: &Dim, what: &str| {
        d.known()
            .map(|v| v as i64)
            .ok_or_else(|| ctx.unsupported(format!("a free {what} dimension")))
    };
    let (c, h, w) = (
        known(c, "channel")?,
        known(h, "height")?,
        known(w, "width")?,
    );
    let (shape, perm, out) = if to_space {
        if c % (bs * bs) != 0 {
            return Err(ctx.out_of_range(
                "blocksize",
                format!("{bs}² does not divide the {c} channels"),
            ));
        }
        let cb = c / (bs * bs);
        let mode = match ctx.opset >= 11 {
            true => ctx.string("mode")?.unwrap_or_else(|| "DCR".to_string()),
            false => "DCR".to_string(),
        };
        let (shape, perm) = match mode.as_str() {
            "DCR" => (vec![0, bs, bs, cb, h, w], vec![0, 3, 4, 1, 5, 2]),
            "CRD" => (vec![0, cb, bs, bs, h, w], vec![0, 1, 4, 2, 5, 3]),
            other => return Err(ctx.unsupported_value("mode", other)),
        };
        (shape, perm, vec![0, cb, h * bs, w * bs])
    } else {
        if h % bs != 0 || w % bs != 0 {
            return Err(ctx.out_of_range(
                "blocksize",
                format!("{bs} does not divide the spatial size {h}×{w}"),
            ));
        }
        (
            vec![0, c, h / bs, bs, w / bs, bs],
            vec![0, 3, 5, 1, 2, 4],
            vec![0, c * bs * bs, h / bs, w / bs],
        )
    };
    let reshape = |shape| {
        Op::Reshape(Reshape {
            shape,
            allow_zero: false,
        })
    };
    let blocks = helper(imp, ctx, "blocks", reshape(shape), &[x])?;
    let moved = helper(imp, ctx, "moved", Op::Transpose { perm }, &[blocks])?;
    single(imp, ctx, reshape(out), &[moved])
}

/// Tile with constant repeats: along each axis repeated `r > 1` times, a Concat of `r`
/// copies (the same elements in the same order as the spec's tiling). The free batch axis
/// can only be repeated once (its size would become a multiple of the batch).
fn tile(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 2, 2)?;
    let x = imp.req(ctx, ins, 0)?;
    let ty = imp.ty(x)?;
    let repeats = constant_input(imp, ctx, ins, 1)?;
    let repeats = repeats
        .to_i64_vec()
        .ok_or_else(|| ctx.input_count("input #1 (repeats) must be int64"))?;
    if repeats.len() != ty.rank() {
        return Err(ctx.input_count(format!(
            "repeats has {} values for an input of rank {}",
            repeats.len(),
            ty.rank()
        )));
    }
    let mut y = x;
    for (axis, &r) in repeats.iter().enumerate() {
        match r {
            1 => continue,
            r if r < 1 => {
                return Err(ctx.unsupported(format!(
                    "repeats[{axis}] = {r} (an empty or negative tiling)"
                )))
            }
            _ if ty.shape.dims()[axis] == Dim::Batch => {
                return Err(OnnxError::BatchDependent {
                    node: ctx.name.clone(),
                    op_type: ctx.op_type.to_string(),
                    input: input_name(ctx, 1),
                    reason: format!("repeats the batch axis {r} times"),
                })
            }
            r if r > 4096 => {
                return Err(ctx.unsupported(format!("repeats[{axis}] = {r} (at most 4096)")))
            }
            r => {
                let copies = vec![y; r as usize];
                y = helper(
                    imp,
                    ctx,
                    &format!("axis{axis}"),
                    Op::Concat { axis },
                    &copies,
                )?;
            }
        }
    }
    single(imp, ctx, Op::Identity, &[y])
}

/// The `axes` input of Pad and Slice, normalised but kept in order (their other lists pair
/// with it), each axis at most once.
fn ordered_axes(ctx: &NodeCtx, a: &[i64], rank: usize) -> Result<Vec<usize>, OnnxError> {
    let mut seen = vec![false; rank];
    let mut out = Vec::with_capacity(a.len());
    for &ax in a {
        let ax = ctx.axis("axes", ax, rank, false)?;
        if std::mem::replace(&mut seen[ax], true) {
            return Err(ctx.out_of_range("axes", format!("duplicate axes in {a:?}")));
        }
        out.push(ax);
    }
    Ok(out)
}

fn flatten(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 1, 1)?;
    let x = imp.req(ctx, ins, 0)?;
    let rank = imp.ty(x)?.rank();
    let axis = ctx.axis("axis", ctx.int_or("axis", 1)?, rank, true)?;
    single(imp, ctx, Op::Flatten { axis }, &[x])
}

fn reshape(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 2, 2)?;
    let x = imp.req(ctx, ins, 0)?;
    let x_ty = imp.ty(x)?;
    let target = imp
        .sym_input(ctx, ins, 1)?
        .ok_or_else(|| ctx.input_count("required input #1 (shape) is missing"))?;
    if target.shape.len() != 1 {
        return Err(ctx.input_count(format!(
            "the shape input `{}` must be 1-D, it has shape {:?}",
            input_name(ctx, 1),
            target.shape
        )));
    }
    let mut allow_zero = ctx.opset >= 14 && ctx.bool_or("allowzero", false)?;
    let has_batch = target.elems.contains(&SymInt::Batch);
    let has_zero = target.elems.contains(&SymInt::Known(0));
    let batch_err = |reason: String| OnnxError::BatchDependent {
        node: ctx.name.clone(),
        op_type: ctx.op_type.to_string(),
        input: input_name(ctx, 1),
        reason,
    };
    if has_batch && allow_zero {
        if has_zero {
            return Err(batch_err(
                "allowzero=1 with a literal 0 leaves no way to copy the batch dimension"
                    .to_string(),
            ));
        }
        // No literal zeros: `0` means the same under both settings, and copying needs allowzero=0.
        allow_zero = false;
    }
    let shape = target
        .elems
        .iter()
        .enumerate()
        .map(|(i, e)| match e {
            SymInt::Known(v) => Ok(*v),
            // The batch size where the input has its batch dimension: copy it (`0`).
            SymInt::Batch if x_ty.shape.dims().get(i) == Some(&Dim::Batch) => Ok(0),
            SymInt::Batch => Err(batch_err(format!(
                "element {i} is the batch size, but the input's axis {i} is not the batch dimension"
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    single(imp, ctx, Op::Reshape(Reshape { shape, allow_zero }), &[x])
}

/// Expand to a constant target shape. A target element that is the batch size (from a
/// Shape of the input) may only sit where the input has the batch, and becomes 1 there: the
/// broadcast keeps the input's batch.
fn expand(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 2, 2)?;
    let x = imp.req(ctx, ins, 0)?;
    let xty = imp.ty(x)?;
    let target = imp
        .sym_input(ctx, ins, 1)?
        .ok_or_else(|| ctx.input_count("required input #1 (shape) is missing"))?;
    if target.shape.len() > 1 {
        return Err(ctx.input_count("input #1 (shape) must be 1-D"));
    }
    let (n, r) = (target.elems.len(), xty.rank());
    let mut shape = Vec::with_capacity(n);
    for (i, e) in target.elems.iter().enumerate() {
        // The input axis aligned with target axis i (numpy broadcasting aligns the ends).
        let aligned = (i + r).checked_sub(n).map(|j| xty.shape.dims()[j]);
        shape.push(match (*e, aligned) {
            (SymInt::Known(d), _) if d >= 0 => d as usize,
            (SymInt::Known(d), _) => {
                return Err(ctx.out_of_range("shape", format!("dimension {d} is negative")))
            }
            (SymInt::Batch, Some(Dim::Batch)) => 1,
            (SymInt::Batch, _) => {
                return Err(OnnxError::BatchDependent {
                    node: ctx.name.clone(),
                    op_type: ctx.op_type.to_string(),
                    input: input_name(ctx, 1),
                    reason: format!(
                        "target axis {i} is the batch size but the input has no batch axis there"
                    ),
                })
            }
        });
    }
    single(imp, ctx, Op::Expand { shape }, &[x])
}

fn transpose(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 1, 1)?;
    let x = imp.req(ctx, ins, 0)?;
    let rank = imp.ty(x)?.rank();
    let perm = match ctx.ints("perm")? {
        None => (0..rank).rev().collect(),
        Some(p) => {
            if p.len() != rank {
                return Err(
                    ctx.out_of_range("perm", format!("has {} values for rank {rank}", p.len()))
                );
            }
            let perm = p
                .iter()
                .map(|&a| ctx.axis("perm", a, rank, false))
                .collect::<Result<Vec<_>, _>>()?;
            let mut seen = vec![false; rank];
            for &a in &perm {
                if std::mem::replace(&mut seen[a], true) {
                    return Err(ctx.out_of_range("perm", format!("{p:?} is not a permutation")));
                }
            }
            perm
        }
    };
    single(imp, ctx, Op::Transpose { perm }, &[x])
}

fn concat(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    if ins.is_empty() || ins.iter().any(|v| v.is_none()) {
        return Err(ctx.input_count("needs at least one input and no empty input names"));
    }
    let inputs = present(ins);
    let rank = imp.ty(inputs[0])?.rank();
    let axis = ctx.required("axis", ctx.int("axis")?)?;
    let axis = ctx.axis("axis", axis, rank, false)?;
    single(imp, ctx, Op::Concat { axis }, &inputs)
}

fn pad(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    let mode = match ctx.string("mode")?.as_deref() {
        None | Some("constant") => PadMode::Constant,
        Some("edge") => PadMode::Edge,
        Some("reflect") => PadMode::Reflect,
        Some("wrap") if ctx.opset >= 19 => PadMode::Wrap,
        Some(other) => return Err(ctx.unsupported_value("mode", format!("`{other}`"))),
    };
    let x = imp.req(ctx, ins, 0)?;
    let rank = imp.ty(x)?.rank();
    let (pads, value, axes) = if ctx.opset < 11 {
        arity(ctx, ins, 1, 1)?;
        let pads = ctx.required("pads", ctx.ints("pads")?)?;
        (pads, ctx.float_or("value", 0.0)? as f64, None)
    } else {
        arity(ctx, ins, 2, if ctx.opset >= 18 { 4 } else { 3 })?;
        let pads = imp
            .const_ints(ctx, ins, 1)?
            .ok_or_else(|| ctx.input_count("required input #1 (pads) is missing"))?;
        let value = imp.const_scalar(ctx, ins, 2)?.unwrap_or(0.0);
        (pads, value, imp.const_ints(ctx, ins, 3)?)
    };
    let axes = match axes {
        Some(a) => ordered_axes(ctx, &a, rank)?,
        None => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(ctx.out_of_range(
            "pads",
            format!(
                "has {} values, expected {} (2 × {} axes)",
                pads.len(),
                2 * axes.len(),
                axes.len()
            ),
        ));
    }
    let mut full = vec![0i64; 2 * rank];
    let k = axes.len();
    for (j, &ax) in axes.iter().enumerate() {
        full[ax] = pads[j];
        full[ax + rank] = pads[j + k];
    }
    let pad = Pad {
        pads: full,
        value,
        mode,
    };
    single(imp, ctx, Op::Pad(pad), &[x])
}

fn squeeze(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    let axes = ints_attr_or_input(imp, ctx, ins, "axes", 13)?;
    let x = imp.req(ctx, ins, 0)?;
    let ty = imp.ty(x)?;
    let axes = match axes {
        Some(a) => ctx.axes("axes", &a, ty.rank())?,
        // No axes: every dimension known to be 1 (the batch size is never assumed to be 1).
        None => ty
            .shape
            .dims()
            .iter()
            .enumerate()
            .filter(|(_, d)| **d == Dim::Known(1))
            .map(|(i, _)| i)
            .collect(),
    };
    single(imp, ctx, Op::Squeeze { axes }, &[x])
}

fn unsqueeze(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    let axes = if ctx.opset < 13 {
        arity(ctx, ins, 1, 1)?;
        ctx.required("axes", ctx.ints("axes")?)?
    } else {
        arity(ctx, ins, 2, 2)?;
        imp.const_ints(ctx, ins, 1)?
            .ok_or_else(|| ctx.input_count("required input #1 (axes) is missing"))?
    };
    let x = imp.req(ctx, ins, 0)?;
    let out_rank = imp.ty(x)?.rank() + axes.len();
    let axes = ctx.axes("axes", &axes, out_rank)?;
    single(imp, ctx, Op::Unsqueeze { axes }, &[x])
}

fn slice(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    let (starts, ends, axes, steps) = if ctx.opset < 10 {
        arity(ctx, ins, 1, 1)?;
        (
            ctx.required("starts", ctx.ints("starts")?)?,
            ctx.required("ends", ctx.ints("ends")?)?,
            ctx.ints("axes")?,
            None,
        )
    } else {
        arity(ctx, ins, 3, 5)?;
        let missing = |what: &str| ctx.input_count(format!("required input `{what}` is missing"));
        (
            imp.const_ints(ctx, ins, 1)?
                .ok_or_else(|| missing("starts"))?,
            imp.const_ints(ctx, ins, 2)?
                .ok_or_else(|| missing("ends"))?,
            imp.const_ints(ctx, ins, 3)?,
            imp.const_ints(ctx, ins, 4)?,
        )
    };
    let x = imp.req(ctx, ins, 0)?;
    let rank = imp.ty(x)?.rank();
    let n = starts.len();
    if ends.len() != n {
        return Err(ctx.out_of_range("ends", format!("has {} values, starts has {n}", ends.len())));
    }
    let axes = match axes {
        None => (0..n).collect(),
        Some(a) => {
            if a.len() != n {
                return Err(
                    ctx.out_of_range("axes", format!("has {} values, starts has {n}", a.len()))
                );
            }
            ordered_axes(ctx, &a, rank)?
        }
    };
    if n > rank {
        return Err(ctx.out_of_range("starts", format!("{n} values for rank {rank}")));
    }
    let steps = steps.unwrap_or_else(|| vec![1; n]);
    if steps.len() != n {
        return Err(ctx.out_of_range(
            "steps",
            format!("has {} values, starts has {n}", steps.len()),
        ));
    }
    if steps.contains(&0) {
        return Err(ctx.out_of_range("steps", "a step is 0"));
    }
    let op = Op::Slice(Slice {
        starts,
        ends,
        axes,
        steps,
    });
    single(imp, ctx, op, &[x])
}

fn split(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    let split = ints_attr_or_input(imp, ctx, ins, "split", 13)?;
    let x = imp.req(ctx, ins, 0)?;
    let ty = imp.ty(x)?;
    let axis = ctx.axis("axis", ctx.int_or("axis", 0)?, ty.rank(), false)?;
    let n_out = ctx.proto.output.len();
    if n_out == 0 {
        return Err(ctx.unsupported("Split with no outputs"));
    }
    let num_outputs = if ctx.opset >= 18 {
        ctx.int("num_outputs")?
    } else {
        None
    };
    let sizes: Vec<usize> = match split {
        Some(s) => {
            if s.len() != n_out {
                return Err(ctx.out_of_range(
                    "split",
                    format!("has {} sizes for {n_out} outputs", s.len()),
                ));
            }
            s.iter()
                .map(|&v| {
                    usize::try_from(v)
                        .map_err(|_| ctx.out_of_range("split", format!("size {v} is negative")))
                })
                .collect::<Result<_, _>>()?
        }
        None => {
            let dim = ty.shape.dims()[axis]
                .known()
                .ok_or_else(|| ctx.unsupported("splitting the batch dimension into equal parts"))?;
            match num_outputs {
                Some(k) => {
                    if k < 1 || k as usize != n_out {
                        return Err(ctx.out_of_range(
                            "num_outputs",
                            format!("{k} does not match the node's {n_out} outputs"),
                        ));
                    }
                    // Opset 18: chunks of ceil(dim / k), the last one smaller.
                    let chunk = dim.div_ceil(n_out);
                    let rest = chunk
                        .checked_mul(n_out - 1)
                        .and_then(|used| dim.checked_sub(used))
                        .ok_or_else(|| {
                            ctx.out_of_range(
                                "num_outputs",
                                format!("{k} chunks of {chunk} exceed dimension {dim}"),
                            )
                        })?;
                    let mut v = vec![chunk; n_out - 1];
                    v.push(rest);
                    v
                }
                None => {
                    if dim % n_out != 0 {
                        return Err(ctx.unsupported(format!(
                            "dimension {dim} does not split evenly into {n_out} outputs"
                        )));
                    }
                    vec![dim / n_out; n_out]
                }
            }
        }
    };
    let names = (0..n_out).map(|i| imp.out_name(ctx, i)).collect();
    imp.emit(ctx, Op::Split(Split { axis, sizes }), &[x], names)
}

fn gather(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 2, 2)?;
    let rank = imp.ty(imp.req(ctx, ins, 0)?)?.rank();
    let axis = ctx.axis("axis", ctx.int_or("axis", 0)?, rank, false)?;
    single(imp, ctx, Op::Gather { axis }, &present(ins))
}
