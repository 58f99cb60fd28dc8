//! Conv and ConvTranspose, plus the `auto_pad` resolution pooling shares: Strata's ops only
//! carry explicit pads, computed here from the static spatial sizes.

use strata_ir::ops::{Conv, ConvTranspose};
use strata_ir::{Dim, InferError, Op, TensorType};

use super::{arity, present, shape_err, single, Ins, OnnxOp, Outs};
use crate::attrs::NodeCtx;
use crate::import::Importer;
use crate::OnnxError;

/// The convolution ops and the opsets they are accepted in (see [`OnnxOp`]).
pub(super) const OPS: &[OnnxOp] = &[
    OnnxOp::new("Conv", 1, 22, conv),
    OnnxOp::new("ConvTranspose", 1, 22, conv_transpose),
];

/// Which `auto_pad` mode a node asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoPad {
    NotSet,
    Valid,
    SameUpper,
    SameLower,
}

pub fn auto_pad(ctx: &NodeCtx) -> Result<AutoPad, OnnxError> {
    match ctx.string("auto_pad")?.as_deref() {
        None | Some("NOTSET") | Some("") => Ok(AutoPad::NotSet),
        Some("VALID") => Ok(AutoPad::Valid),
        Some("SAME_UPPER") => Ok(AutoPad::SameUpper),
        Some("SAME_LOWER") => Ok(AutoPad::SameLower),
        Some(other) => Err(ctx.unsupported_value("auto_pad", format!("`{other}`"))),
    }
}

/// A per-spatial-axis attribute (`strides`, `dilations`, …): default `fill`, length `n`, each ≥ `min`.
pub fn spatial_attr(
    ctx: &NodeCtx,
    name: &str,
    n: usize,
    fill: usize,
    min: i64,
) -> Result<Vec<usize>, OnnxError> {
    match ctx.ints(name)? {
        None => Ok(vec![fill; n]),
        Some(v) => {
            if v.len() != n {
                return Err(ctx.out_of_range(name, format!("has {} values, expected {n}", v.len())));
            }
            v.iter()
                .map(|&x| {
                    if x < min || x > u32::MAX as i64 {
                        Err(ctx.out_of_range(
                            name,
                            format!("value {x} is out of range (minimum {min})"),
                        ))
                    } else {
                        Ok(x as usize)
                    }
                })
                .collect()
        }
    }
}

/// The static spatial sizes of an `[N, C, spatial…]` input.
pub fn spatial_dims(ctx: &NodeCtx, ty: &TensorType) -> Result<Vec<usize>, OnnxError> {
    ty.shape.dims()[2..]
        .iter()
        .map(|d| match d {
            Dim::Known(n) => Ok(*n),
            Dim::Batch => Err(ctx.unsupported("a spatial dimension is the batch size")),
        })
        .collect()
}

/// Splits axis `i`'s total padding into `pads[i]` (begin) and `pads[i + n]` (end): an odd unit
/// goes to the end under SAME_UPPER, otherwise to the begin.
fn split_pad(pads: &mut [usize], i: usize, total: usize, mode: AutoPad) {
    let n = pads.len() / 2;
    let begin = if mode == AutoPad::SameUpper {
        total / 2
    } else {
        total - total / 2
    };
    pads[i] = begin;
    pads[i + n] = total - begin;
}

/// Explicit `[begin…, end…]` pads for windowed ops from `pads`/`auto_pad`.
pub fn resolve_pads(
    ctx: &NodeCtx,
    input: &[usize],
    kernel: &[usize],
    strides: &[usize],
    dilations: &[usize],
) -> Result<Vec<usize>, OnnxError> {
    let n = input.len();
    match auto_pad(ctx)? {
        AutoPad::NotSet => spatial_attr(ctx, "pads", 2 * n, 0, 0),
        AutoPad::Valid => Ok(vec![0; 2 * n]),
        mode => {
            let mut pads = vec![0; 2 * n];
            for i in 0..n {
                let out = input[i].div_ceil(strides[i]);
                let eff = effective_kernel(kernel[i], dilations[i]);
                let total = (out.max(1) - 1)
                    .saturating_mul(strides[i])
                    .saturating_add(eff)
                    .saturating_sub(input[i]);
                split_pad(&mut pads, i, total, mode);
            }
            Ok(pads)
        }
    }
}

/// The extent of a dilated kernel, `(k - 1) · d + 1` (saturating: absurd sizes then fail
/// shape inference instead of overflowing).
fn effective_kernel(k: usize, d: usize) -> usize {
    k.saturating_sub(1).saturating_mul(d).saturating_add(1)
}

/// The windowed ops' input `x` must be `[N, C, spatial…]`.
pub(super) fn spatial_input(ctx: &NodeCtx, x: &TensorType) -> Result<(), OnnxError> {
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
    Ok(())
}

/// Common checks: x rank ≥ 3, w rank equal, kernel from the attribute or the weight.
fn kernel_of(ctx: &NodeCtx, x: &TensorType, w: &TensorType) -> Result<Vec<usize>, OnnxError> {
    spatial_input(ctx, x)?;
    if w.rank() != x.rank() {
        return Err(shape_err(
            ctx,
            InferError::Rank {
                input: 1,
                got: w.rank(),
                expected: format!("{} (the input's rank)", x.rank()),
            },
        ));
    }
    let n = x.rank() - 2;
    match ctx.ints("kernel_shape")? {
        Some(_) => spatial_attr(ctx, "kernel_shape", n, 1, 1),
        None => w.shape.dims()[2..]
            .iter()
            .map(|d| match d.known() {
                Some(k) if k >= 1 => Ok(k),
                Some(k) => Err(shape_err(
                    ctx,
                    InferError::ShapeMismatch {
                        input: 1,
                        shape: w.shape.clone(),
                        reason: format!("kernel size {k} is not positive"),
                    },
                )),
                None => Err(ctx.unsupported("the weight's kernel size is not static")),
            })
            .collect(),
    }
}

/// What Conv and ConvTranspose read alike, after the arity check: the input's type, then the
/// kernel, strides and dilations (one per spatial axis).
type Window = (TensorType, Vec<usize>, Vec<usize>, Vec<usize>);

fn window(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Result<Window, OnnxError> {
    arity(ctx, ins, 2, 3)?;
    let x = imp.ty(imp.req(ctx, ins, 0)?)?;
    let w = imp.ty(imp.req(ctx, ins, 1)?)?;
    let kernel = kernel_of(ctx, &x, &w)?;
    let n = kernel.len();
    let strides = spatial_attr(ctx, "strides", n, 1, 1)?;
    let dilations = spatial_attr(ctx, "dilations", n, 1, 1)?;
    Ok((x, kernel, strides, dilations))
}

/// The `group` attribute: a positive count that fits the IR's sizes.
fn group(ctx: &NodeCtx) -> Result<usize, OnnxError> {
    let group = ctx.int_or("group", 1)?;
    if group < 1 || group > u32::MAX as i64 {
        return Err(ctx.out_of_range("group", format!("{group} is not a positive group count")));
    }
    Ok(group as usize)
}

fn conv(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    let (x, kernel, strides, dilations) = window(imp, ctx, ins)?;
    let n = kernel.len();
    let group = group(ctx)?;
    let pads = match auto_pad(ctx)? {
        AutoPad::NotSet => spatial_attr(ctx, "pads", 2 * n, 0, 0)?,
        _ => resolve_pads(ctx, &spatial_dims(ctx, &x)?, &kernel, &strides, &dilations)?,
    };
    let op = Op::Conv(Conv {
        kernel,
        strides,
        pads,
        dilations,
        group,
        has_bias: ins.get(2).copied().flatten().is_some(),
    });
    single(imp, ctx, op, &present(ins))
}

fn conv_transpose(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    let (x, kernel, strides, dilations) = window(imp, ctx, ins)?;
    let n = kernel.len();
    let mut output_padding = spatial_attr(ctx, "output_padding", n, 0, 0)?;
    let group = group(ctx)?;
    let mode = auto_pad(ctx)?;
    let output_shape = ctx.ints("output_shape")?;
    let pads = if output_shape.is_some() || matches!(mode, AutoPad::SameUpper | AutoPad::SameLower)
    {
        let input = spatial_dims(ctx, &x)?;
        let target: Vec<i64> = match &output_shape {
            // Some exporters include N and C; only the spatial sizes matter.
            Some(v) if v.len() >= n => v[v.len() - n..].to_vec(),
            Some(v) => {
                return Err(ctx.out_of_range(
                    "output_shape",
                    format!("has {} values, expected {n}", v.len()),
                ))
            }
            None => input
                .iter()
                .zip(&strides)
                .map(|(&i, &s)| i64::try_from(i.saturating_mul(s)).unwrap_or(i64::MAX))
                .collect(),
        };
        let mut pads = vec![0; 2 * n];
        for i in 0..n {
            if target[i] < 1 {
                return Err(ctx.out_of_range(
                    "output_shape",
                    format!("size {} is not positive", target[i]),
                ));
            }
            let full = strides[i]
                .saturating_mul(input[i].saturating_sub(1))
                .saturating_add(output_padding[i])
                .saturating_add(effective_kernel(kernel[i], dilations[i]));
            let total = i64::try_from(full).unwrap_or(i64::MAX) - target[i];
            if total < 0 {
                // The requested output is larger than the full transposed convolution: the
                // extra positions are ONNX's output padding (at the end).
                output_padding[i] += (-total) as usize;
                continue;
            }
            let total = total as usize;
            split_pad(&mut pads, i, total, mode);
        }
        pads
    } else if mode == AutoPad::Valid {
        vec![0; 2 * n]
    } else {
        spatial_attr(ctx, "pads", 2 * n, 0, 0)?
    };
    let op = Op::ConvTranspose(ConvTranspose {
        kernel,
        strides,
        pads,
        dilations,
        output_padding,
        group,
        has_bias: ins.get(2).copied().flatten().is_some(),
    });
    single(imp, ctx, op, &present(ins))
}
