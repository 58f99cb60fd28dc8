//! Value plumbing: Identity, Dropout (inference), Constant, Shape and Cast, and the shape
//! arithmetic that makes constants: ConstantOfShape, Range, and (of constants, folded here)
//! Not and ScatterND.

use onnx_protobuf::TensorProto;
use strata_ir::{DType, Op, Tensor, TensorData};

use super::{arity, constant_input, fold_to, outputs_at_most, single, Ins, OnnxOp, Outs};
use crate::attrs::NodeCtx;
use crate::import::Importer;
use crate::tensor::{dtype_from_onnx, tensor_from_proto};
use crate::OnnxError;

/// The tensor utility ops and the opsets they are accepted in (see [`OnnxOp`]).
pub(super) const OPS: &[OnnxOp] = &[
    OnnxOp::new("Identity", 1, 21, identity),
    OnnxOp::new("Dropout", 1, 22, dropout),
    OnnxOp::new("Constant", 1, 21, constant),
    OnnxOp::new("Shape", 1, 21, shape),
    OnnxOp::new("Cast", 1, 21, cast),
    // Later versions only added element types.
    OnnxOp::new("ConstantOfShape", 9, 9, constant_of_shape),
    OnnxOp::new("Range", 11, 11, range),
    OnnxOp::new("Not", 1, 1, not),
    // 16 added `reduction`, 18 its max and min.
    OnnxOp::new("ScatterND", 11, 18, scatter_nd),
];

/// The largest Dropout mask stored as a constant (elements).
const MAX_MASK: usize = 1 << 24;

fn identity(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 1, 1)?;
    let x = imp.req(ctx, ins, 0)?;
    single(imp, ctx, Op::Identity, &[x])
}

/// Inference-mode Dropout is the identity; its mask (if requested) is all true.
fn dropout(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    if ctx.opset < 12 {
        arity(ctx, ins, 1, 1)?;
    } else {
        arity(ctx, ins, 1, 3)?;
        if let Some(v) = ins.get(2).copied().flatten() {
            let t = imp
                .constant(v)
                .ok_or_else(|| ctx.non_constant(&ctx.proto.input[2]))?;
            // Training mode only matters when something is dropped: with ratio 0 it is the
            // identity too (the default ratio is 0.5).
            if t.to_f64_vec().iter().any(|&x| x != 0.0)
                && imp.const_scalar(ctx, ins, 1)? != Some(0.0)
            {
                return Err(ctx.unsupported(
                    "training_mode=true with a non-zero ratio (Strata imports inference graphs)",
                ));
            }
        }
    }
    outputs_at_most(ctx, 2, "extra output")?;
    let x = imp.req(ctx, ins, 0)?;
    let x_ty = imp.ty(x)?;
    let out = imp.out_name(ctx, 0);
    let mut outs = imp.emit(ctx, Op::Identity, &[x], vec![out])?;
    if ctx.proto.output.get(1).is_some_and(|m| !m.is_empty()) {
        let dims = x_ty.shape.as_known().ok_or_else(|| {
            ctx.unsupported("a mask output for an input whose shape depends on the batch size")
        })?;
        let n = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .filter(|&n| n <= MAX_MASK)
            .ok_or_else(|| {
                ctx.unsupported(format!(
                    "a mask output of shape {dims:?} is too large to store"
                ))
            })?;
        let mask = Tensor::new(dims, TensorData::Bool(vec![true; n]))
            .map_err(|e| ctx.unsupported(e.to_string()))?;
        let name = imp.out_name(ctx, 1);
        outs.push(imp.add_constant(&name, mask));
    }
    Ok(outs)
}

fn constant(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 0, 0)?;
    outputs_at_most(ctx, 1, "extra output")?;
    for attr in ["sparse_value", "value_string", "value_strings"] {
        if ctx.attr(attr).is_some() {
            return Err(
                ctx.unsupported_value(attr, "(sparse and string constants are not supported)")
            );
        }
    }
    let tensor = if let Some(t) = ctx.tensor("value")? {
        let named;
        let t = if t.name.is_empty() {
            named = TensorProto {
                name: ctx.name.clone(),
                ..t.clone()
            };
            &named
        } else {
            t
        };
        tensor_from_proto(t, None)?
    } else if let Some(v) = ctx.float("value_float")? {
        Tensor::scalar_f32(v)
    } else if let Some(v) = ctx.floats("value_floats")? {
        Tensor::from_f32(vec![v.len()], v).map_err(|e| ctx.unsupported(e.to_string()))?
    } else if let Some(v) = ctx.int("value_int")? {
        Tensor::from_i64(vec![], vec![v]).map_err(|e| ctx.unsupported(e.to_string()))?
    } else if let Some(v) = ctx.ints("value_ints")? {
        Tensor::from_i64(vec![v.len()], v).map_err(|e| ctx.unsupported(e.to_string()))?
    } else {
        return Err(OnnxError::MissingAttribute {
            node: ctx.name.clone(),
            op_type: ctx.op_type.to_string(),
            attr: "value".to_string(),
        });
    };
    let name = imp.out_name(ctx, 0);
    Ok(vec![imp.add_constant(&name, tensor)])
}

fn shape(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 1, 1)?;
    let x = imp.req(ctx, ins, 0)?;
    let rank = imp.ty(x)?.rank() as i64;
    // Opset 15 added `start`/`end`; out-of-range values are clamped, as the spec says.
    let (start, end) = if ctx.opset >= 15 {
        (ctx.int_or("start", 0)?, ctx.int_or("end", rank)?)
    } else {
        (0, rank)
    };
    let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank) as usize;
    let (start, end) = (clamp(start), clamp(end));
    single(
        imp,
        ctx,
        Op::Shape {
            start,
            end: end.max(start),
        },
        &[x],
    )
}

fn cast(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 1, 1)?;
    let x = imp.req(ctx, ins, 0)?;
    let to = ctx.required("to", ctx.int("to")?)?;
    let code = i32::try_from(to)
        .map_err(|_| ctx.out_of_range("to", format!("{to} is not a type code")))?;
    let to = dtype_from_onnx(code, &format!("{} (Cast `to`)", ctx.name))?;
    single(imp, ctx, Op::Cast { to }, &[x])
}

/// ConstantOfShape: an Expand of its (one-element) `value` to the constant `shape` input, so
/// it folds to a constant at import like every constant-input op (and a huge one is left to
/// `fold-constants`). A shape that depends on the batch size is refused (typed error).
fn constant_of_shape(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 1, 1)?;
    let shape = imp
        .const_ints(ctx, ins, 0)?
        .ok_or_else(|| ctx.input_count("required input #0 is missing"))?;
    let shape = shape
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .ok()
                .filter(|&d| d as u64 <= crate::tensor::MAX_ELEMENTS)
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            ctx.out_of_range(
                "input",
                format!("shape {shape:?} has a negative or huge dimension"),
            )
        })?;
    let value = match ctx.tensor("value")? {
        None => Tensor::new(vec![], TensorData::F32(vec![0.0])),
        Some(t) => {
            let t = tensor_from_proto(t, None)?;
            if t.len() != 1 {
                return Err(ctx.out_of_range(
                    "value",
                    format!("must hold one element, it holds {}", t.len()),
                ));
            }
            Tensor::new(vec![], t.into_data())
        }
    }
    .map_err(|e| ctx.unsupported(e.to_string()))?;
    let value = imp.add_constant(&format!("{}_value", ctx.name), value);
    single(imp, ctx, Op::Expand { shape }, &[value])
}

/// A ConstantOfShape of float zeros, or an Expand of a constant float zero, whose shape is
/// `[D, N, H]` (or `[N, D, H]`) with `N` the batch size: what PyTorch exports for an RNN's
/// zero initial state when the batch is free (the TorchScript exporter a ConstantOfShape,
/// the dynamo exporter an Expand, each of `Shape → Gather → Concat`). The IR has no tensor
/// whose shape is computed from the batch size, but an LSTM or GRU initial state that is all
/// zeros is the same as an absent one, so the importer leaves such a node out (and Slices and
/// Transposes of it) and drops the input of the recurrent layers that read it; any other
/// reader gets a `BatchDependent` error naming this node's shape input, which is returned
/// (`None`: not such a node; import it as usual).
pub(crate) fn batch_zero_state(imp: &Importer, ctx: &NodeCtx, ins: &Ins) -> Option<String> {
    let (shape_input, zero) = match ctx.op_type {
        "ConstantOfShape" => {
            let zero = match ctx.tensor("value").ok()? {
                None => true,
                Some(t) => is_f32_zeros(&tensor_from_proto(t, None).ok()?),
            };
            (0, zero)
        }
        "Expand" => {
            let v = ins.first().copied().flatten()?;
            (1, imp.constant(v).is_some_and(|t| is_f32_zeros(&t)))
        }
        _ => return None,
    };
    let shape = imp.sym_input(ctx, ins, shape_input).ok().flatten()?;
    // `[D, N, H]`, or `[N, D, H]` for layout 1.
    let batch_axes: Vec<usize> = (0..shape.elems.len())
        .filter(|&i| shape.elems[i] == crate::sym::SymInt::Batch)
        .collect();
    let state = zero && shape.elems.len() == 3 && matches!(batch_axes[..], [0] | [1]);
    state.then(|| crate::import::input_name(ctx, shape_input))
}

/// Whether `t` is float32 and all zeros (of either sign).
fn is_f32_zeros(t: &Tensor) -> bool {
    matches!(t.data(), TensorData::F32(v) if !v.is_empty() && v.iter().all(|&x| x == 0.0))
}

/// Range with constant `start`, `limit`, `delta` (scalars of one type): folded to a constant
/// at import, `max(ceil((limit − start) / delta), 0)` elements `start + i·delta`.
fn range(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 3, 3)?;
    let mut vals = [0.0f64; 3];
    let mut dtype = None;
    for (i, v) in vals.iter_mut().enumerate() {
        let x = imp.req(ctx, ins, i)?;
        let t = imp.ty(x)?;
        if t.rank() != 0 && t.shape.as_known() != Some(vec![1]) {
            return Err(ctx.input_count(format!("input #{i} must be a scalar, it is {t}")));
        }
        match dtype {
            None => dtype = Some(t.dtype),
            Some(d) if d != t.dtype => {
                return Err(ctx.unsupported(format!(
                    "input #{i} is {}, input #0 is {d}: Range needs one type",
                    t.dtype
                )))
            }
            _ => {}
        }
        let value = match imp.const_scalar(ctx, ins, i) {
            Ok(value) => value,
            // Computed from the batch size (e.g. `arange(x.size(0))`): say so.
            Err(e) => match imp.sym_input(ctx, ins, i) {
                Ok(Some(s)) if s.known().is_none() => return Err(OnnxError::BatchDependent {
                    node: ctx.name.clone(),
                    op_type: ctx.op_type.to_string(),
                    input: crate::import::input_name(ctx, i),
                    reason:
                        "Range is folded at import, so its bounds must not depend on the batch size"
                            .into(),
                }),
                _ => return Err(e),
            },
        };
        *v = value.ok_or_else(|| ctx.input_count(format!("required input #{i} is missing")))?;
    }
    let [start, limit, delta] = vals;
    let dtype = dtype.unwrap_or(DType::F32);
    if delta == 0.0 || !delta.is_finite() || !start.is_finite() || !limit.is_finite() {
        return Err(ctx.out_of_range(
            "input",
            format!("start {start}, limit {limit}, delta {delta} do not make a finite range"),
        ));
    }
    let n = ((limit - start) / delta).ceil().max(0.0);
    if n > crate::tensor::MAX_ELEMENTS as f64 {
        return Err(ctx.out_of_range("input", format!("the range has {n} elements")));
    }
    let n = n as usize;
    let data = match dtype {
        DType::F32 => {
            // Accumulated in the element type, as numpy's arange does.
            let (s, d) = (start as f32, delta as f32);
            TensorData::F32((0..n).map(|i| s + i as f32 * d).collect())
        }
        DType::F64 => TensorData::F64((0..n).map(|i| start + i as f64 * delta).collect()),
        DType::I32 => {
            let (s, d) = (start as i64, delta as i64);
            TensorData::I32((0..n).map(|i| (s + i as i64 * d) as i32).collect())
        }
        DType::I64 => {
            let (s, d) = (start as i64, delta as i64);
            TensorData::I64(
                (0..n)
                    .map(|i| s.wrapping_add((i as i64).wrapping_mul(d)))
                    .collect(),
            )
        }
        other => return Err(ctx.unsupported(format!("Range over {other}"))),
    };
    let t = Tensor::new(vec![n], data).map_err(|e| ctx.unsupported(e.to_string()))?;
    outputs_at_most(ctx, 1, "extra output")?;
    let name = imp.out_name(ctx, 0);
    Ok(vec![imp.add_constant(&name, t)])
}

/// Not of a constant boolean tensor (exporters emit it in mask arithmetic, e.g. Swin's).
fn not(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 1, 1)?;
    let x = constant_input(imp, ctx, ins, 0)?;
    let TensorData::Bool(b) = x.data() else {
        return Err(ctx.unsupported(format!("input of element type {}", x.dtype())));
    };
    let t = Tensor::new(
        x.shape().to_vec(),
        TensorData::Bool(b.iter().map(|v| !v).collect()),
    )
    .map_err(|e| ctx.unsupported(e.to_string()))?;
    fold_to(imp, ctx, t)
}

/// ScatterND of constants (Swin's shifted-window mask is built this way), folded at import:
/// a copy of `data` with the slices `indices` names replaced by (or, with `reduction` add,
/// mul, max or min, combined with) `updates`. Indices may be negative (from the end); one out of range
/// is an error naming it.
fn scatter_nd(imp: &mut Importer, ctx: &NodeCtx, ins: &Ins) -> Outs {
    arity(ctx, ins, 3, 3)?;
    let reduction = ctx.string("reduction")?.unwrap_or_else(|| "none".into());
    if !matches!(reduction.as_str(), "none" | "add" | "mul" | "max" | "min") {
        return Err(ctx.unsupported_value("reduction", reduction));
    }
    let data = constant_input(imp, ctx, ins, 0)?;
    let indices = constant_input(imp, ctx, ins, 1)?;
    let updates = constant_input(imp, ctx, ins, 2)?;
    let idx = indices
        .to_i64_vec()
        .filter(|_| matches!(indices.dtype(), DType::I64 | DType::I32))
        .ok_or_else(|| ctx.unsupported(format!("indices of element type {}", indices.dtype())))?;
    let (shape, ishape) = (data.shape(), indices.shape());
    let k = ishape.last().copied().unwrap_or(0);
    if ishape.is_empty() || k == 0 || k > shape.len() {
        return Err(ctx.unsupported(format!(
            "indices of shape {ishape:?} for data of shape {shape:?}"
        )));
    }
    let slice: usize = shape[k..].iter().product();
    let count = idx.len() / k;
    let mut want = ishape[..ishape.len() - 1].to_vec();
    want.extend(&shape[k..]);
    if updates.shape() != want.as_slice() {
        return Err(ctx.unsupported(format!(
            "updates of shape {:?} where {want:?} is expected",
            updates.shape()
        )));
    }
    // Element offset of every indexed slice.
    let mut offsets = Vec::with_capacity(count);
    for tuple in idx.chunks(k) {
        let mut off = 0usize;
        for (axis, (&i, &dim)) in tuple.iter().zip(shape).enumerate() {
            let d = dim as i64;
            let j = if i < 0 { i + d } else { i };
            if !(0..d).contains(&j) {
                return Err(
                    ctx.unsupported(format!("index {i} on axis {axis} of a dimension of {dim}"))
                );
            }
            off = off * dim + j as usize;
        }
        offsets.push(off * slice);
    }
    macro_rules! scatter {
        ($d:expr, $u:expr, $var:ident, $add:expr, $mul:expr) => {{
            let mut out = $d.clone();
            for (n, &o) in offsets.iter().enumerate() {
                let src = &$u[n * slice..(n + 1) * slice];
                for (y, &u) in out[o..o + slice].iter_mut().zip(src) {
                    *y = match reduction.as_str() {
                        "add" => $add(*y, u),
                        "mul" => $mul(*y, u),
                        "max" if u > *y => u,
                        "min" if u < *y => u,
                        "max" | "min" => *y,
                        _ => u,
                    };
                }
            }
            TensorData::$var(out)
        }};
    }
    let out = match (data.data(), updates.data()) {
        (TensorData::F32(d), TensorData::F32(u)) => scatter!(d, u, F32, |a, b| a + b, |a, b| a * b),
        (TensorData::F64(d), TensorData::F64(u)) => scatter!(d, u, F64, |a, b| a + b, |a, b| a * b),
        (TensorData::I64(d), TensorData::I64(u)) => {
            scatter!(d, u, I64, i64::wrapping_add, i64::wrapping_mul)
        }
        (TensorData::I32(d), TensorData::I32(u)) => {
            scatter!(d, u, I32, i32::wrapping_add, i32::wrapping_mul)
        }
        (TensorData::Bool(d), TensorData::Bool(u)) if reduction == "none" => {
            scatter!(d, u, Bool, |a: bool, b: bool| a | b, |a: bool, b: bool| a
                & b)
        }
        (d, u) => {
            return Err(ctx.unsupported(format!(
                "data of element type {} with updates of {} (reduction {reduction})",
                d.dtype(),
                u.dtype()
            )))
        }
    };
    let t = Tensor::new(shape.to_vec(), out).map_err(|e| ctx.unsupported(e.to_string()))?;
    fold_to(imp, ctx, t)
}
