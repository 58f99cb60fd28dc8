//! Resize: nearest and linear, scales or sizes as constant inputs; and Upsample (opsets
//! 7–10, deprecated since), which is Resize-10.

use strata_ir::ops::{CoordMode, NearestMode, Resize, ResizeMode};
use strata_ir::{Dim, Op};

use super::{arity, single, Ins, OnnxOp, Outs};
use crate::attrs::NodeCtx;
use crate::import::{input_name, Importer};
use crate::sym::SymInt;
use crate::OnnxError;

/// Resize and the opsets it is accepted in (see [`OnnxOp`]): 11 added the coordinate
/// transformations and `sizes`, 13 dropped tf_half_pixel_for_nn, 18 added `axes`,
/// `antialias` and `keep_aspect_ratio_policy`, 19 half_pixel_symmetric.
pub(super) const OPS: &[OnnxOp] = &[
    OnnxOp::new("Resize", 10, 19, resize),
    OnnxOp::new("Upsample", 7, 10, upsample),
];

/// Upsample, as older exports (and models of the ONNX model zoo) have it: Resize-10 under
/// another name (asymmetric coordinates, nearest rounding down), with the scales an
/// attribute before opset 9 and an input from 9.
fn upsample(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    let as_resize = NodeCtx {
        name: ctx.name.clone(),
        op_type: ctx.op_type,
        proto: ctx.proto,
        opset: 10,
    };
    if ctx.opset >= 9 {
        return resize(imp, &as_resize, ins);
    }
    arity(ctx, ins, 1, 1)?;
    let scales = ctx.required("scales", ctx.floats("scales")?)?;
    let t = strata_ir::Tensor::from_f32(vec![scales.len()], scales)
        .expect("a vector fills its own length");
    let scales = imp.add_constant(&format!("{}_scales", ctx.name), t);
    resize(imp, &as_resize, &[ins[0], Some(scales)])
}

fn mode(ctx: &NodeCtx) -> Result<ResizeMode, OnnxError> {
    match ctx.string("mode")?.as_deref() {
        None | Some("nearest") => Ok(ResizeMode::Nearest),
        Some("linear") => Ok(ResizeMode::Linear),
        Some(other) => Err(ctx.unsupported_value(
            "mode",
            format!("`{other}` (Strata resizes with `nearest` or `linear`)"),
        )),
    }
}

/// The coordinate transformation; Resize-10 has none and behaves as `asymmetric`.
fn coord(ctx: &NodeCtx) -> Result<CoordMode, OnnxError> {
    if ctx.opset < 11 {
        return Ok(CoordMode::Asymmetric);
    }
    let name = ctx.string("coordinate_transformation_mode")?;
    Ok(match name.as_deref() {
        None | Some("half_pixel") => CoordMode::HalfPixel,
        Some("half_pixel_symmetric") if ctx.opset >= 19 => CoordMode::HalfPixelSymmetric,
        Some("pytorch_half_pixel") => CoordMode::PytorchHalfPixel,
        Some("align_corners") => CoordMode::AlignCorners,
        Some("asymmetric") => CoordMode::Asymmetric,
        Some("tf_half_pixel_for_nn") if ctx.opset < 13 => CoordMode::TfHalfPixelForNn,
        Some(other) => {
            return Err(ctx.unsupported_value(
                "coordinate_transformation_mode",
                format!("`{other}` in opset {}", ctx.opset),
            ))
        }
    })
}

/// The rounding of nearest mode; Resize-10 floors (its reference repeats elements, which
/// is `asymmetric` + `floor`).
fn nearest(ctx: &NodeCtx) -> Result<NearestMode, OnnxError> {
    if ctx.opset < 11 {
        return Ok(NearestMode::Floor);
    }
    Ok(match ctx.string("nearest_mode")?.as_deref() {
        None | Some("round_prefer_floor") => NearestMode::RoundPreferFloor,
        Some("round_prefer_ceil") => NearestMode::RoundPreferCeil,
        Some("floor") => NearestMode::Floor,
        Some("ceil") => NearestMode::Ceil,
        Some(other) => return Err(ctx.unsupported_value("nearest_mode", format!("`{other}`"))),
    })
}

/// A constant float input as f64s; `None` when absent or empty (an empty `scales` is how
/// opsets 11–12 say "use sizes").
fn const_floats(
    imp: &Importer,
    ctx: &NodeCtx,
    ins: &Ins,
    i: usize,
) -> Result<Option<Vec<f64>>, OnnxError> {
    let Some(v) = ins.get(i).copied().flatten() else {
        return Ok(None);
    };
    let t = imp
        .constant(v)
        .ok_or_else(|| ctx.non_constant(&input_name(ctx, i)))?;
    Ok((!t.is_empty()).then(|| t.to_f64_vec()))
}

fn resize(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    let (scales_at, sizes_at) = if ctx.opset < 11 {
        arity(ctx, ins, 2, 2)?;
        (1, None)
    } else {
        arity(ctx, ins, 1, 4)?;
        (2, Some(3))
    };
    let x = imp.req(ctx, ins, 0)?;
    let dims = imp.ty(x)?.shape.dims().to_vec();
    let r = dims.len();
    let (mode, coord, nearest) = (mode(ctx)?, coord(ctx)?, nearest(ctx)?);
    if mode == ResizeMode::Linear && coord == CoordMode::TfHalfPixelForNn {
        return Err(ctx.unsupported_value(
            "coordinate_transformation_mode",
            "`tf_half_pixel_for_nn` with mode `linear`",
        ));
    }
    let axes = match ctx.opset >= 18 {
        true => match ctx.ints("axes")? {
            Some(a) => {
                let mut seen = vec![false; r];
                let mut out = Vec::with_capacity(a.len());
                for &ax in &a {
                    let ax = ctx.axis("axes", ax, r, false)?;
                    if std::mem::replace(&mut seen[ax], true) {
                        return Err(ctx.out_of_range("axes", format!("duplicate axes in {a:?}")));
                    }
                    out.push(ax);
                }
                out
            }
            None => (0..r).collect(),
        },
        false => (0..r).collect(),
    };
    let policy = match ctx.opset >= 18 {
        true => ctx.string("keep_aspect_ratio_policy")?,
        false => None,
    };
    let scales_in = const_floats(imp, ctx, ins, scales_at)?;
    let sizes_in = match sizes_at {
        Some(i) => imp.sym_input(ctx, ins, i)?.filter(|s| !s.elems.is_empty()),
        None => None,
    };
    let given = |what: &str, len: usize| -> Result<(), OnnxError> {
        if len == axes.len() {
            return Ok(());
        }
        Err(ctx.out_of_range(what, format!("has {len} values for {} axes", axes.len())))
    };
    let batch_axis = |i: usize| OnnxError::BatchDependent {
        node: ctx.name.clone(),
        op_type: ctx.op_type.to_string(),
        input: input_name(ctx, scales_at),
        reason: format!("axis {i} is the batch dimension, which Resize must keep"),
    };
    // Per axis: the scale and (for a known input size) the output size.
    let mut scales = vec![1.0f64; r];
    let mut sizes: Vec<usize> = dims.iter().map(|d| d.known().unwrap_or(0)).collect();
    match (scales_in, sizes_in) {
        (Some(s), None) => {
            given("scales", s.len())?;
            for (&ax, &v) in axes.iter().zip(&s) {
                if !(v.is_finite() && v > 0.0) {
                    return Err(ctx.out_of_range("scales", format!("{v} is not a positive scale")));
                }
                scales[ax] = v;
                match dims[ax] {
                    Dim::Batch if v != 1.0 => return Err(batch_axis(ax)),
                    Dim::Batch => {}
                    Dim::Known(n) => sizes[ax] = (n as f64 * v).floor() as usize,
                }
            }
        }
        (None, Some(s)) => {
            given("sizes", s.elems.len())?;
            let mut ratios = Vec::with_capacity(axes.len());
            for (&ax, e) in axes.iter().zip(&s.elems) {
                match (dims[ax], *e) {
                    (Dim::Batch, SymInt::Batch) => {}
                    (Dim::Batch, SymInt::Known(_)) | (Dim::Known(_), SymInt::Batch) => {
                        return Err(batch_axis(ax))
                    }
                    (Dim::Known(n), SymInt::Known(m)) => {
                        if m < 0 || (n == 0 && m != 0) {
                            return Err(ctx.out_of_range(
                                "sizes",
                                format!("cannot resize axis {ax} of size {n} to {m}"),
                            ));
                        }
                        let ratio = if n == 0 { 1.0 } else { m as f64 / n as f64 };
                        ratios.push((ax, n, ratio));
                        scales[ax] = ratio;
                        sizes[ax] = m as usize;
                    }
                }
            }
            let pick = match policy.as_deref() {
                None | Some("stretch") => None,
                Some("not_larger") => Some(f64::min as fn(f64, f64) -> f64),
                Some("not_smaller") => Some(f64::max as fn(f64, f64) -> f64),
                Some(other) => {
                    return Err(
                        ctx.unsupported_value("keep_aspect_ratio_policy", format!("`{other}`"))
                    )
                }
            };
            if let Some(pick) = pick {
                if let Some(scale) = ratios.iter().map(|r| r.2).reduce(pick) {
                    for &(ax, n, _) in &ratios {
                        scales[ax] = scale;
                        // Round half up, as the spec's round_int.
                        sizes[ax] = (scale * n as f64 + 0.5).floor() as usize;
                    }
                }
            }
        }
        (Some(_), Some(_)) => {
            return Err(ctx.input_count("`scales` and `sizes` are both given; ONNX allows one"))
        }
        (None, None) => {
            return Err(ctx.input_count("neither `scales` nor `sizes` is given"));
        }
    }
    if ctx.opset >= 18
        && ctx.bool_or("antialias", false)?
        && mode == ResizeMode::Linear
        && scales.iter().any(|&s| s < 1.0)
    {
        return Err(ctx.unsupported_value(
            "antialias",
            "1 when downsampling (Strata does not implement antialiased linear resizing)",
        ));
    }
    let scales: Vec<f32> = scales.iter().map(|&s| s as f32).collect();
    for (i, d) in dims.iter().enumerate() {
        if scales[i] == 1.0 {
            sizes[i] = d.known().unwrap_or(0);
        }
    }
    let op = Op::Resize(Resize {
        mode,
        coord,
        nearest,
        scales,
        sizes,
    });
    single(imp, ctx, op, &[x])
}
