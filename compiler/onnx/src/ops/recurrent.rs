//! LSTM and GRU: forward, reverse and bidirectional, the default activations, optional bias,
//! initial states (and the LSTM's peepholes; both GRU `linear_before_reset` modes), both
//! layouts (layout 1 through Transposes around the layer). A `sequence_lens` input must be a
//! constant equal to the sequence length for every sample (then it changes nothing); `clip`,
//! `input_forget` and other activations are refused with the node named.

use strata_ir::ops::{Direction, Gru, Lstm};
use strata_ir::{Op, ValueRef};

use super::{arity, helper, Ins, OnnxOp, Outs};
use crate::attrs::NodeCtx;
use crate::import::Importer;
use crate::OnnxError;

/// LSTM-7 and GRU-7; 14 added `layout`; 22 only added element types.
pub(super) const OPS: &[OnnxOp] = &[
    OnnxOp::new("LSTM", 7, 14, lstm),
    OnnxOp::new("GRU", 7, 14, gru),
];

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

/// Refuses what the kernels do not implement: other activations than `defaults` (per
/// direction), `clip`, `input_forget`.
fn check_defaults(ctx: &NodeCtx, dirs: usize, defaults: &[&str]) -> Result<(), OnnxError> {
    if let Some(a) = ctx.attr("activations") {
        let got: Vec<String> = a
            .strings
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        let default: Vec<String> = defaults
            .iter()
            .cycle()
            .take(defaults.len() * dirs)
            .map(|s| s.to_string())
            .collect();
        if got != default {
            return Err(ctx.unsupported_value(
                "activations",
                format!(
                    "{got:?} (Strata's {} computes the default {} only)",
                    ctx.op_type,
                    defaults.join(", ")
                ),
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

/// What an LSTM and a GRU node import alike.
struct Common {
    direction: Direction,
    /// Layout 1 (`[batch, seq, …]`): the layer runs on the `[seq, batch, …]` transposes.
    batch_major: bool,
    /// The sequence-major input.
    x: ValueRef,
    hidden: usize,
}

fn common(
    imp: &mut Importer,
    ctx: &NodeCtx,
    ins: &Ins,
    defaults: &[&str],
) -> Result<Common, OnnxError> {
    let direction = direction(ctx)?;
    check_defaults(ctx, direction.count(), defaults)?;
    let batch_major = match ctx.int_or("layout", 0)? {
        0 => false,
        1 if ctx.opset >= 14 => true,
        v => return Err(ctx.out_of_range("layout", format!("{v} is not 0 or 1"))),
    };
    let mut x = imp.req(ctx, ins, X)?;
    if batch_major {
        x = helper(
            imp,
            ctx,
            "x_seq_major",
            Op::Transpose {
                perm: SWAP.to_vec(),
            },
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
    if let Some(lens) = ins.get(SEQUENCE_LENS).copied().flatten() {
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
    Ok(Common {
        direction,
        batch_major,
        x,
        hidden,
    })
}

/// `[1, 0, 2]`: between `[seq, batch, …]` and `[batch, seq, …]`, and `[D, N, H]` and
/// `[N, D, H]`.
const SWAP: [usize; 3] = [1, 0, 2];

/// Optional input `i`, an initial state, direction-major.
fn state(
    imp: &mut Importer,
    ctx: &NodeCtx,
    ins: &Ins,
    c: &Common,
    i: usize,
    what: &str,
) -> Result<Option<ValueRef>, OnnxError> {
    match ins.get(i).copied().flatten() {
        Some(v) if c.batch_major => Ok(Some(helper(
            imp,
            ctx,
            &format!("{what}_dir_major"),
            Op::Transpose {
                perm: SWAP.to_vec(),
            },
            &[v],
        )?)),
        other => Ok(other),
    }
}

/// Emits the layer with its `n_out` outputs (`y`, then the states), transposed back to
/// layout 1 when the node has it.
fn emit(
    imp: &mut Importer,
    ctx: &NodeCtx,
    c: &Common,
    op: Op,
    inputs: &[ValueRef],
    n_out: usize,
) -> Outs {
    if !c.batch_major {
        let names = (0..n_out).map(|i| imp.out_name(ctx, i)).collect();
        return imp.emit(ctx, op, inputs, names);
    }
    let names = (0..n_out)
        .map(|i| imp.fresh(&format!("{}_seq_major{i}", ctx.name)))
        .collect();
    let outs = imp.emit(ctx, op, inputs, names)?;
    // y [T, D, N, H] → [N, T, D, H]; the states [D, N, H] → [N, D, H].
    let mut back = vec![helper(
        imp,
        ctx,
        "y",
        Op::Transpose {
            perm: vec![2, 0, 1, 3],
        },
        &[outs[0]],
    )?];
    for (i, what) in ["y_h", "y_c"].into_iter().enumerate().take(n_out - 1) {
        back.push(helper(
            imp,
            ctx,
            what,
            Op::Transpose {
                perm: SWAP.to_vec(),
            },
            &[outs[i + 1]],
        )?);
    }
    Ok(back)
}

fn lstm(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 3, 8)?;
    let c = common(imp, ctx, ins, &["Sigmoid", "Tanh", "Tanh"])?;
    let get = |i: usize| ins.get(i).copied().flatten();
    let h0 = state(imp, ctx, ins, &c, INITIAL_H, "initial_h")?;
    let c0 = state(imp, ctx, ins, &c, INITIAL_C, "initial_c")?;
    let op = Lstm {
        direction: c.direction,
        hidden: c.hidden,
        has_bias: get(B).is_some(),
        has_initial_h: h0.is_some(),
        has_initial_c: c0.is_some(),
        has_peepholes: get(P).is_some(),
    };
    let mut inputs = vec![c.x, imp.req(ctx, ins, W)?, imp.req(ctx, ins, R)?];
    inputs.extend([get(B), h0, c0, get(P)].into_iter().flatten());
    emit(imp, ctx, &c, Op::Lstm(op), &inputs, 3)
}

fn gru(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 3, 6)?;
    let c = common(imp, ctx, ins, &["Sigmoid", "Tanh"])?;
    let get = |i: usize| ins.get(i).copied().flatten();
    let h0 = state(imp, ctx, ins, &c, INITIAL_H, "initial_h")?;
    let linear_before_reset = match ctx.int_or("linear_before_reset", 0)? {
        0 => false,
        1 => true,
        v => return Err(ctx.out_of_range("linear_before_reset", format!("{v} is not 0 or 1"))),
    };
    let op = Gru {
        direction: c.direction,
        hidden: c.hidden,
        has_bias: get(B).is_some(),
        has_initial_h: h0.is_some(),
        linear_before_reset,
    };
    let mut inputs = vec![c.x, imp.req(ctx, ins, W)?, imp.req(ctx, ins, R)?];
    inputs.extend([get(B), h0].into_iter().flatten());
    emit(imp, ctx, &c, Op::Gru(op), &inputs, 2)
}
