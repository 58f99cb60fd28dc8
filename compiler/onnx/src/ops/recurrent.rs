//! LSTM: forward, reverse and bidirectional, the default activations, optional bias, initial
//! states and peepholes, both layouts (layout 1 through Transposes around the layer). A
//! `sequence_lens` input must be a constant equal to the sequence length for every sample
//! (then it changes nothing); `clip`, `input_forget` and other activations are refused with
//! the node named.

use strata_ir::ops::{Direction, Lstm};
use strata_ir::{Op, ValueRef};

use super::{arity, helper, Ins, OnnxOp, Outs};
use crate::attrs::NodeCtx;
use crate::import::Importer;
use crate::OnnxError;

/// LSTM-7; 14 added `layout`; 22 only added element types.
pub(super) const OPS: &[OnnxOp] = &[OnnxOp::new("LSTM", 7, 14, lstm)];

/// ONNX inputs.
const X: usize = 0;
const W: usize = 1;
const R: usize = 2;
const B: usize = 3;
const SEQUENCE_LENS: usize = 4;
const INITIAL_H: usize = 5;
const INITIAL_C: usize = 6;
const P: usize = 7;

fn direction(ctx: &NodeCtx) -> Result<Direction, OnnxError> {
    match ctx.string("direction")?.as_deref() {
        None | Some("forward") => Ok(Direction::Forward),
        Some("reverse") => Ok(Direction::Reverse),
        Some("bidirectional") => Ok(Direction::Bidirectional),
        Some(other) => Err(ctx.unsupported_value("direction", format!("`{other}`"))),
    }
}

/// Refuses what the kernels do not implement: other activations, `clip`, `input_forget`.
fn check_defaults(ctx: &NodeCtx, dirs: usize) -> Result<(), OnnxError> {
    if let Some(a) = ctx.attr("activations") {
        let got: Vec<String> = a
            .strings
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        let default: Vec<String> = ["Sigmoid", "Tanh", "Tanh"]
            .iter()
            .cycle()
            .take(3 * dirs)
            .map(|s| s.to_string())
            .collect();
        if got != default {
            return Err(ctx.unsupported_value(
                "activations",
                format!("{got:?} (Strata's LSTM computes the default Sigmoid, Tanh, Tanh only)"),
            ));
        }
    }
    if let Some(c) = ctx.float("clip")? {
        return Err(
            ctx.unsupported_value("clip", format!("{c} (cell clipping is not implemented)"))
        );
    }
    if ctx.bool_or("input_forget", false)? {
        return Err(ctx.unsupported_value(
            "input_forget",
            "1 (coupled input and forget gates are not implemented)",
        ));
    }
    Ok(())
}

fn lstm(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 3, 8)?;
    let direction = direction(ctx)?;
    let dirs = direction.count();
    check_defaults(ctx, dirs)?;
    let batch_major = match ctx.int_or("layout", 0)? {
        0 => false,
        1 if ctx.opset >= 14 => true,
        v => return Err(ctx.out_of_range("layout", format!("{v} is not 0 or 1"))),
    };
    let get = |i: usize| ins.get(i).copied().flatten();
    let mut x = imp.req(ctx, ins, X)?;
    // Layout 1 is [batch, seq, …]: the layer runs on the [seq, batch, …] transposes.
    let swap = vec![1, 0, 2];
    if batch_major {
        x = helper(
            imp,
            ctx,
            "x_seq_major",
            Op::Transpose { perm: swap.clone() },
            &[x],
        )?;
    }
    let xt = imp.ty(x)?;
    let seq = xt.shape.dims().first().and_then(|d| d.known());
    let r_ty = imp.ty(imp.req(ctx, ins, R)?)?;
    let hidden_from_r = r_ty.shape.dims().get(2).and_then(|d| d.known());
    let hidden = match ctx.int("hidden_size")? {
        Some(h) => usize::try_from(h)
            .ok()
            .filter(|&h| h > 0)
            .ok_or_else(|| ctx.out_of_range("hidden_size", format!("{h} is not positive")))?,
        None => hidden_from_r.ok_or_else(|| ctx.unsupported("R must have a static shape"))?,
    };
    if let Some(lens) = get(SEQUENCE_LENS) {
        let t = imp
            .constant(lens)
            .ok_or_else(|| ctx.non_constant("sequence_lens"))?;
        let v = t.to_i64_vec().unwrap_or_default();
        let full = seq.is_some_and(|s| v.iter().all(|&l| l == s as i64));
        if !full {
            return Err(ctx.unsupported(format!(
                "sequence_lens {v:?} differ from the sequence length {seq:?}: \
                 variable-length sequences are not implemented"
            )));
        }
    }
    let state = |imp: &mut Importer, i: usize, what: &str| -> Result<Option<ValueRef>, OnnxError> {
        match get(i) {
            Some(v) if batch_major => Ok(Some(helper(
                imp,
                ctx,
                &format!("{what}_dir_major"),
                Op::Transpose { perm: swap.clone() },
                &[v],
            )?)),
            other => Ok(other),
        }
    };
    let h0 = state(imp, INITIAL_H, "initial_h")?;
    let c0 = state(imp, INITIAL_C, "initial_c")?;
    let op = Lstm {
        direction,
        hidden,
        has_bias: get(B).is_some(),
        has_initial_h: h0.is_some(),
        has_initial_c: c0.is_some(),
        has_peepholes: get(P).is_some(),
    };
    let mut inputs = vec![x, imp.req(ctx, ins, W)?, imp.req(ctx, ins, R)?];
    inputs.extend([get(B), h0, c0, get(P)].into_iter().flatten());
    if !batch_major {
        let names = (0..3).map(|i| imp.out_name(ctx, i)).collect();
        return imp.emit(ctx, Op::Lstm(op), &inputs, names);
    }
    let names = (0..3)
        .map(|i| imp.fresh(&format!("{}_seq_major{i}", ctx.name)))
        .collect();
    let outs = imp.emit(ctx, Op::Lstm(op), &inputs, names)?;
    // y [T, D, N, H] → [N, T, D, H]; y_h, y_c [D, N, H] → [N, D, H].
    Ok(vec![
        helper(
            imp,
            ctx,
            "y",
            Op::Transpose {
                perm: vec![2, 0, 1, 3],
            },
            &[outs[0]],
        )?,
        helper(
            imp,
            ctx,
            "y_h",
            Op::Transpose { perm: swap.clone() },
            &[outs[1]],
        )?,
        helper(imp, ctx, "y_c", Op::Transpose { perm: swap }, &[outs[2]])?,
    ])
}
