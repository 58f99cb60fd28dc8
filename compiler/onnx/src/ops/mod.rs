//! Per-op translation, one file per op family (mirroring `strata_ir::ops`), plus the opset
//! table that decides which ONNX versions of an op Strata accepts.

/// An importer that hands one fixed argument (which binary op, which activation, …) to a
/// family's shared importer: `bind!(binary, BinaryOp::Add)`.
macro_rules! bind {
    ($import:ident, $arg:expr) => {
        |imp, ctx, ins| $import(imp, ctx, ins, $arg)
    };
}

mod body;
mod conv;
mod elementwise;
mod folded;
mod layout;
mod linear;
mod normalization;
mod pool;
mod qdq;
mod recurrent;
mod reduce;
mod resize;
mod tensor;

pub(crate) use tensor::batch_zero_state;

use strata_ir::{Op, ValueRef};

use super::attrs::NodeCtx;
use super::import::Importer;
use super::OnnxError;

/// Oldest default-domain opset Strata imports.
pub const MIN_OPSET: i64 = 7;
/// Newest default-domain opset whose semantics Strata was written against.
pub const MAX_OPSET: i64 = 22;
/// Newest opset whose changes were reviewed: for the supported ops, everything from 23 to
/// here only added element types Strata rejects anyway (and Cast's `round_mode`, which only
/// affects float8). Beyond it an op might have changed, so the import stops.
pub const NEWEST_REVIEWED_OPSET: i64 = 27;

/// A node's inputs as an importer sees them: `None` for an omitted optional input.
pub(crate) type Ins = [Option<ValueRef>];

/// An optional input or attribute: absent (`None`), its content, or why it cannot be read.
pub(crate) type Optional<T> = Result<Option<T>, OnnxError>;

/// What an importer returns: the values of the node's outputs, in order.
type Outs = Result<Vec<ValueRef>, OnnxError>;

/// Translates one ONNX node of a registered op type; returns its outputs' values in order.
type ImportFn = fn(&mut Importer, &NodeCtx, &Ins) -> Outs;

/// One registered ONNX op: its name, the opsets it is accepted in and its importer. Each op
/// family lists its own in `OPS` (next to the importers); [`FAMILIES`] gathers them, and the
/// importer, the opset check and [`supported_ops`] all read that one list.
struct OnnxOp {
    name: &'static str,
    /// Opset the op first appeared in.
    since: i64,
    /// Last opset ≤ [`NEWEST_REVIEWED_OPSET`] that changed its semantics for Strata's
    /// element types.
    changed: i64,
    import: ImportFn,
}

impl OnnxOp {
    const fn new(name: &'static str, since: i64, changed: i64, import: ImportFn) -> OnnxOp {
        OnnxOp {
            name,
            since,
            changed,
            import,
        }
    }
}

/// Every op family's registrations.
const FAMILIES: &[&[OnnxOp]] = &[
    conv::OPS,
    linear::OPS,
    elementwise::OPS,
    normalization::OPS,
    pool::OPS,
    layout::OPS,
    reduce::OPS,
    resize::OPS,
    qdq::OPS,
    recurrent::OPS,
    tensor::OPS,
    folded::OPS,
];

/// A default-domain ONNX op the frontend imports, and the opsets it accepts it in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupportedOp {
    /// The ONNX op type, e.g. `Conv`.
    pub op_type: &'static str,
    /// The opset the op first appeared in (imports start at [`MIN_OPSET`] regardless).
    pub since: i64,
    /// The last opset that changed its semantics for Strata's element types; models newer
    /// than [`MAX_OPSET`] import only while this is ≤ [`MAX_OPSET`].
    pub last_changed: i64,
}

/// The ONNX ops the frontend imports, family by family. The node-test harness selects tests
/// by it and a test checks the README's op list against it.
pub fn supported_ops() -> impl Iterator<Item = SupportedOp> {
    registered().map(|op| SupportedOp {
        op_type: op.name,
        since: op.since,
        last_changed: op.changed,
    })
}

fn registered() -> impl Iterator<Item = &'static OnnxOp> {
    FAMILIES.iter().flat_map(|family| family.iter())
}

/// The registration of the node's op type after checking its opset.
fn check_opset(ctx: &NodeCtx) -> Result<&'static OnnxOp, OnnxError> {
    let err = |reason: String| OnnxError::UnsupportedOpset {
        node: ctx.name.clone(),
        op_type: ctx.op_type.to_string(),
        domain: ctx.proto.domain.clone(),
        opset: ctx.opset,
        reason,
    };
    let Some(op) = registered().find(|op| op.name == ctx.op_type) else {
        return Err(OnnxError::UnsupportedOp {
            node: ctx.name.clone(),
            op_type: ctx.op_type.to_string(),
            domain: ctx.proto.domain.clone(),
            opset: ctx.opset,
        });
    };
    let (introduced, changed) = (op.since, op.changed);
    if ctx.opset < MIN_OPSET {
        return Err(err(format!(
            "Strata imports default-domain opsets {MIN_OPSET} through {MAX_OPSET}"
        )));
    }
    if ctx.opset < introduced {
        return Err(err(format!(
            "`{}` first appeared in opset {introduced}",
            ctx.op_type
        )));
    }
    if ctx.opset > NEWEST_REVIEWED_OPSET {
        return Err(err(format!(
            "opset {} is newer than the newest reviewed opset ({NEWEST_REVIEWED_OPSET}); `{}` may have changed",
            ctx.opset, ctx.op_type
        )));
    }
    if ctx.opset > MAX_OPSET && changed > MAX_OPSET {
        return Err(err(format!(
            "`{}` changed in opset {changed}, after the supported {MAX_OPSET}",
            ctx.op_type
        )));
    }
    Ok(op)
}

/// Translates one ONNX node; returns the values of its outputs in order (optional trailing
/// outputs the node does not name may be missing).
pub fn import_node(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    let op = check_opset(ctx)?;
    (op.import)(imp, ctx, ins)
}

/// Checks the number of inputs: at most `max`, and the first `min` present.
fn arity(ctx: &NodeCtx, ins: &Ins, min: usize, max: usize) -> Result<(), OnnxError> {
    if ins.len() > max {
        return Err(ctx.input_count(format!("takes at most {max} inputs, got {}", ins.len())));
    }
    if let Some(i) = (0..min).find(|&i| ins.get(i).copied().flatten().is_none()) {
        return Err(ctx.input_count(format!("required input #{i} is missing")));
    }
    Ok(())
}

/// An optional integer list that opset `moved_in` turned from attribute `name` into the
/// optional second input (Squeeze axes and Split sizes at 13, ReduceMean axes at 18).
fn ints_attr_or_input(
    imp: &mut Importer,
    ctx: &NodeCtx,
    ins: &Ins,
    name: &str,
    moved_in: i64,
) -> Optional<Vec<i64>> {
    if ctx.opset < moved_in {
        arity(ctx, ins, 1, 1)?;
        ctx.ints(name)
    } else {
        arity(ctx, ins, 1, 2)?;
        imp.const_ints(ctx, ins, 1)
    }
}

/// Rejects requests for outputs beyond the first `supported`.
fn outputs_at_most(ctx: &NodeCtx, supported: usize, what: &str) -> Result<(), OnnxError> {
    match ctx
        .proto
        .output
        .iter()
        .skip(supported)
        .find(|o| !o.is_empty())
    {
        Some(o) => Err(ctx.unsupported(format!("output `{o}` ({what}) is not supported"))),
        None => Ok(()),
    }
}

/// Emits a one-output op named after the node's first output.
fn single(imp: &mut Importer, ctx: &NodeCtx, op: Op, inputs: &[ValueRef]) -> Outs {
    outputs_at_most(ctx, 1, "extra output")?;
    let name = imp.out_name(ctx, 0);
    imp.emit(ctx, op, inputs, vec![name])
}

/// Emits an extra one-output node a translation needs besides the node's own (a Cast around
/// Pow, a zero point QuantizeLinear omits): named `{node}_{suffix}`, typed and folded like
/// any other.
fn helper(
    imp: &mut Importer,
    ctx: &NodeCtx,
    suffix: &str,
    op: Op,
    inputs: &[ValueRef],
) -> Result<ValueRef, OnnxError> {
    let name = imp.unique(&format!("{}_{suffix}", ctx.name));
    let sub = NodeCtx {
        name: name.clone(),
        op_type: ctx.op_type,
        proto: ctx.proto,
        opset: ctx.opset,
    };
    let out = imp.fresh(&name);
    let outs = imp.emit(&sub, op, inputs, vec![out])?;
    Ok(outs[0])
}

/// The constant value of input `i`, or [`OnnxError::NonConstantInput`] naming it.
pub(super) fn constant_input(
    imp: &Importer,
    ctx: &NodeCtx,
    ins: &Ins,
    i: usize,
) -> Result<std::sync::Arc<strata_ir::Tensor>, OnnxError> {
    let v = imp.req(ctx, ins, i)?;
    imp.constant(v)
        .ok_or_else(|| ctx.non_constant(ctx.proto.input.get(i).map_or("", String::as_str)))
}

/// Inputs 0 and 1, both constants, expanded to their numpy broadcast shape (for the ops
/// folded at import: Mod, And, Or, Xor).
pub(super) fn broadcast_constants(
    imp: &Importer,
    ctx: &NodeCtx,
    ins: &Ins,
) -> Result<[strata_ir::Tensor; 2], OnnxError> {
    let (a, b) = (
        constant_input(imp, ctx, ins, 0)?,
        constant_input(imp, ctx, ins, 1)?,
    );
    let unsupported = |e: strata_runtime::RuntimeError| ctx.unsupported(e.to_string());
    let shape =
        strata_runtime::kernels::elementwise::broadcast_shape("broadcast", a.shape(), b.shape())
            .map_err(unsupported)?;
    let expand = |t: &strata_ir::Tensor| {
        strata_runtime::kernels::layout::expand(&shape, t).map_err(unsupported)
    };
    Ok([expand(&a)?, expand(&b)?])
}

/// Binds `t` as the node's one output (a constant, folded like any other).
pub(super) fn fold_to(imp: &mut Importer, ctx: &NodeCtx, t: strata_ir::Tensor) -> Outs {
    let c = imp.add_constant(&format!("{}_value", ctx.name), t);
    single(imp, ctx, Op::Identity, &[c])
}

/// Present inputs in order (after `arity` has checked the required ones).
fn present(ins: &Ins) -> Vec<ValueRef> {
    ins.iter().flatten().copied().collect()
}

/// A shape-inference error raised by the frontend itself (before the IR sees the op).
fn shape_err(ctx: &NodeCtx, source: strata_ir::InferError) -> OnnxError {
    OnnxError::Shape {
        node: ctx.name.clone(),
        op_type: ctx.op_type.to_string(),
        source,
    }
}
