//! QuantizeLinear and DequantizeLinear: the QDQ format of pre-quantized models.
//!
//! Strata imports them as written, so a pre-quantized model computes what it computed before:
//! a DequantizeLinear of a constant int8 weight folds to a float constant at import, and a
//! QuantizeLinear → DequantizeLinear pair on an activation stays a float fake-quantization.
//! The rest of the pipeline then treats the graph as a float model (see the README).

use strata_ir::ops::Qdq;
use strata_ir::{DType, Op, Tensor};

use super::{arity, single, Ins, OnnxOp, Outs};
use crate::attrs::NodeCtx;
use crate::import::Importer;
use crate::tensor::dtype_from_onnx;
use crate::OnnxError;

/// The QDQ ops and the opsets they are accepted in (see [`OnnxOp`]): 13 added per-axis
/// scales, 19 float8 (refused as an element type), 21 blocked quantization (refused) and
/// `output_dtype`; later versions added element types and `precision` (refused unless 0).
pub(super) const OPS: &[OnnxOp] = &[
    OnnxOp::new("QuantizeLinear", 10, 21, bind!(qdq, true)),
    OnnxOp::new("DequantizeLinear", 10, 21, bind!(qdq, false)),
];

/// Attributes Strata cannot honour: blocked quantization and an explicit precision.
fn refuse_unsupported(ctx: &NodeCtx) -> Result<(), OnnxError> {
    match ctx.int("block_size")? {
        None | Some(0) => {}
        Some(b) => {
            return Err(ctx.unsupported_value(
                "block_size",
                format!("{b} (blocked quantization is not supported; export the float model and let Strata quantize it)"),
            ))
        }
    }
    match ctx.int("precision")? {
        None | Some(0) => Ok(()),
        Some(p) => Err(ctx.unsupported_value("precision", format!("{p}"))),
    }
}

fn qdq(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins, quantize: bool) -> Outs {
    arity(ctx, ins, 2, 3)?;
    refuse_unsupported(ctx)?;
    let x = imp.req(ctx, ins, 0)?;
    let scale = imp.req(ctx, ins, 1)?;
    let (xty, sty) = (imp.ty(x)?, imp.ty(scale)?);
    // `axis` only matters for a per-axis (1-D, more than one element) scale.
    let per_axis = sty.rank() == 1 && sty.shape.dims()[0] != strata_ir::Dim::Known(1);
    let axis = if ctx.opset >= 13 && per_axis {
        ctx.axis("axis", ctx.int_or("axis", 1)?, xty.rank(), false)?
    } else {
        0
    };
    let output_dtype = match ctx.int("output_dtype")? {
        None | Some(0) => None,
        Some(code) => {
            let code = i32::try_from(code).map_err(|_| {
                ctx.out_of_range("output_dtype", format!("{code} is not a type code"))
            })?;
            Some(dtype_from_onnx(
                code,
                &format!("{} (output_dtype)", ctx.name),
            )?)
        }
    };
    let zp = match ins.get(2).copied().flatten() {
        Some(z) => z,
        None => {
            // The quantized type: the zero point's, else output_dtype, else the default
            // (uint8 for QuantizeLinear; x's own type for DequantizeLinear).
            let dtype = match (quantize, output_dtype) {
                (true, Some(d)) => d,
                (true, None) => DType::U8,
                (false, _) => xty.dtype,
            };
            let dims = sty
                .shape
                .as_known()
                .ok_or_else(|| ctx.unsupported("a scale whose shape depends on the batch size"))?;
            let zero = Tensor::zeros(dtype, dims);
            imp.add_constant(&format!("{}_zero_point", ctx.name), zero)
        }
    };
    let q = Qdq { axis };
    if quantize {
        let zty = imp.ty(zp)?.dtype;
        if output_dtype.is_some_and(|d| d != zty) {
            return Err(ctx.unsupported_value(
                "output_dtype",
                format!("{output_dtype:?} differs from the zero point's type {zty}"),
            ));
        }
        single(imp, ctx, Op::QuantizeLinear(q), &[x, scale, zp])
    } else {
        if output_dtype.is_some_and(|d| d != sty.dtype) {
            return Err(ctx.unsupported_value(
                "output_dtype",
                format!(
                    "{output_dtype:?} differs from the scale's type {}",
                    sty.dtype
                ),
            ));
        }
        single(imp, ctx, Op::DequantizeLinear(q), &[x, scale, zp])
    }
}
