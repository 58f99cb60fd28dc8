//! `bitplane-rewrite`: replace every layer `vl-quantize` quantized by a bit-plane op.
//!
//! Each Conv/Gemm/MatMul becomes `bitplane_conv`/`bitplane_linear` fed by constants
//! `<layer>.planes` (u8 `[B, R, 8·ceil(K/64)]`), `<layer>.alpha`, `.beta`, `.bias` (f32
//! `[S, R]`) and `.act` (f32 `[S, 2]`: scale, zero) with one row per plane count. The node
//! keeps its name and its output value keeps its name and type, so nothing downstream (graph
//! outputs, later passes, users of the model) notices the swap. The float weight and bias
//! constants that only the layer used are removed with it: they are exactly what the planes
//! replace, and leaving them would ship the model twice.
//!
//! Building the op is [`replace_with_bitplane`], which `vl-quantize` and the baselines also
//! use on their working copies of the graph, so there is one way to make a bit-plane layer.

use std::collections::HashSet;
use std::sync::Arc;

use strata_ir::ops::{Bitplane, BitplaneKernel, PlaneSpec};
use strata_ir::quant::ActBits;
use strata_ir::{Graph, NodeId, NodeKind, Op, Tensor, TensorData, ValueRef};

use crate::vl_quantize::{find_layer, layer_at, LayerKind, VlQuantization};
use crate::{Pass, PassContext, PassError};

const PASS: &str = "bitplane-rewrite";

/// One plane count's side table of a layer (see docs/vertical-layering.md).
#[derive(Debug, Clone, PartialEq)]
pub struct SideTable {
    pub k: u8,
    /// Per output channel: `W_k = alpha·q_k + beta`.
    pub alpha: Vec<f32>,
    pub beta: Vec<f32>,
    /// Per output channel folded bias.
    pub bias: Vec<f32>,
    /// The layer input's activation quantization at this `k`.
    pub act_scale: f32,
    pub act_zero: f32,
}

/// Everything needed to build one bit-plane layer.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizedLayer {
    /// Node name of the layer being replaced.
    pub name: String,
    pub bits: u8,
    /// Activation bits per plane count (applied to each table's `k`).
    pub act_bits: ActBits,
    pub rows: usize,
    pub cols: usize,
    /// `u8 [P, R, 8·ceil(K/64)]` data, `P ≤ bits` planes.
    pub planes: Vec<u8>,
    /// Per-channel `s_c` of the codes (kept for reports and re-fitting).
    pub scales: Vec<f32>,
    /// Side tables in strictly ascending `k`.
    pub tables: Vec<SideTable>,
}

fn rewrite_err(pass: &'static str, node: &str, reason: impl Into<String>) -> PassError {
    PassError::Rewrite {
        pass,
        node: node.to_string(),
        reason: reason.into(),
    }
}

/// Names in `graph` (of nodes and of values) that start with `prefix`: what a fresh name
/// built on `prefix` must avoid, gathered in one walk over the graph.
fn names_with_prefix(graph: &Graph, prefix: &str) -> HashSet<String> {
    graph
        .node_ids()
        .filter_map(|id| graph.node(id).ok())
        .flat_map(|node| std::iter::once(&node.name).chain(node.outputs.iter().map(|v| &v.name)))
        .filter(|n| n.starts_with(prefix))
        .cloned()
        .collect()
}

/// A constant name not in `taken` (`base`, else `base.1`, …), which it then joins.
fn fresh_name(taken: &mut HashSet<String>, base: &str) -> String {
    let name = if taken.contains(base) {
        (1..)
            .map(|i| format!("{base}.{i}"))
            .find(|n| !taken.contains(n))
            .unwrap_or_else(|| base.to_string())
    } else {
        base.to_string()
    };
    taken.insert(name.clone());
    name
}

/// Replaces the layer named `q.name` in `graph` by a bit-plane op built from `q`, and removes
/// the layer's float weight/bias constants if nothing else uses them. Returns the new node.
pub fn replace_with_bitplane(
    pass: &'static str,
    graph: &mut Graph,
    q: &QuantizedLayer,
) -> Result<NodeId, PassError> {
    let gerr = |source| PassError::Graph { pass, source };
    let id = find_layer(pass, graph, &q.name)?;
    let layer = layer_at(graph, id).ok_or_else(|| {
        rewrite_err(
            pass,
            &q.name,
            "is no longer a quantizable Conv/Gemm/MatMul with constant weights",
        )
    })?;
    if (layer.rows, layer.cols) != (q.rows, q.cols) {
        return Err(rewrite_err(
            pass,
            &q.name,
            format!(
                "weight is [{}, {}] but was quantized as [{}, {}]",
                layer.rows, layer.cols, q.rows, q.cols
            ),
        ));
    }
    let s = q.tables.len();
    if s == 0 {
        return Err(rewrite_err(pass, &q.name, "no side table"));
    }
    let row_bytes = strata_ir::quant::row_bytes(q.cols);
    let plane_bytes = q.rows * row_bytes;
    if plane_bytes == 0 || q.planes.len() % plane_bytes != 0 {
        return Err(rewrite_err(
            pass,
            &q.name,
            format!(
                "{} plane bytes are not whole planes of {plane_bytes} bytes",
                q.planes.len()
            ),
        ));
    }
    let mut alpha = Vec::with_capacity(s * q.rows);
    let mut beta = Vec::with_capacity(s * q.rows);
    let mut bias = Vec::with_capacity(s * q.rows);
    let mut act = Vec::with_capacity(s * 2);
    for t in &q.tables {
        if t.alpha.len() != q.rows || t.beta.len() != q.rows || t.bias.len() != q.rows {
            return Err(rewrite_err(
                pass,
                &q.name,
                format!("side table for k={} does not have {} rows", t.k, q.rows),
            ));
        }
        alpha.extend(t.alpha.iter().map(|&v| half_precision(v)));
        beta.extend(t.beta.iter().map(|&v| half_precision(v)));
        bias.extend(t.bias.iter().map(|&v| half_precision(v)));
        act.extend([t.act_scale, t.act_zero]);
    }
    let kernel = match layer.kind {
        LayerKind::Conv(c) => BitplaneKernel::Conv(c),
        LayerKind::Linear => BitplaneKernel::Linear,
    };
    let op = Op::Bitplane(Bitplane {
        kernel,
        spec: {
            let counts: Vec<u8> = q.tables.iter().map(|t| t.k).collect();
            let act_bits = q.act_bits.per_count(&counts);
            PlaneSpec::with_act_bits(q.bits, counts, act_bits, q.rows, q.cols)
        },
    });
    let tensor = |shape: Vec<usize>, data: TensorData| {
        Tensor::new(shape, data).map_err(|e| rewrite_err(pass, &q.name, e.to_string()))
    };
    let consts = [
        (
            "planes",
            tensor(
                vec![q.planes.len() / plane_bytes, q.rows, row_bytes],
                TensorData::U8(q.planes.clone()),
            )?,
        ),
        ("alpha", tensor(vec![s, q.rows], TensorData::F32(alpha))?),
        ("beta", tensor(vec![s, q.rows], TensorData::F32(beta))?),
        ("bias", tensor(vec![s, q.rows], TensorData::F32(bias))?),
        ("act", tensor(vec![s, 2], TensorData::F32(act))?),
    ];
    let old_inputs = graph.node_inputs(id);
    let mut inputs: Vec<ValueRef> = vec![layer.input];
    let mut taken = names_with_prefix(graph, &q.name);
    for (suffix, t) in consts {
        let name = fresh_name(&mut taken, &format!("{}.{suffix}", q.name));
        inputs.push(graph.add_constant(name, Arc::new(t)));
    }
    let node = graph.node(id).map_err(gerr)?;
    let (name, outputs) = (node.name.clone(), node.outputs.clone());
    let new_id = graph.add_op(name, op, &inputs, outputs).map_err(gerr)?;
    graph
        .replace_all_uses(ValueRef::first(id), ValueRef::first(new_id))
        .map_err(gerr)?;
    graph.remove_node(id).map_err(gerr)?;
    // The replaced weight and bias constants go too unless something else reads them.
    for v in old_inputs.into_iter().skip(1) {
        let is_const = matches!(
            graph.node(v.node).map(|n| &n.kind),
            Ok(NodeKind::Constant(_))
        );
        if is_const && !graph.is_used(v) {
            graph.remove_node(v.node).map_err(gerr)?;
        }
    }
    // The new node's declared type must be what inference says (a wrong table shape would
    // otherwise surface only at run time).
    let types: Vec<_> = inputs
        .iter()
        .map(|&v| graph.value(v).map(|val| val.ty.clone()))
        .collect::<Result<_, _>>()
        .map_err(gerr)?;
    let refs: Vec<_> = types.iter().collect();
    let node = graph.node(new_id).map_err(gerr)?;
    let Some(op) = node.op() else {
        return Err(rewrite_err(pass, &q.name, "new node is not an op"));
    };
    let inferred = op
        .infer(&refs)
        .map_err(|e| rewrite_err(pass, &q.name, format!("bit-plane op does not type: {e}")))?;
    if inferred.first() != node.outputs.first().map(|v| &v.ty) {
        return Err(rewrite_err(
            pass,
            &q.name,
            format!(
                "bit-plane op types as {:?} but the layer produced {:?}",
                inferred.first(),
                node.outputs.first().map(|v| &v.ty)
            ),
        ));
    }
    Ok(new_id)
}

/// See the module documentation.
pub struct BitplaneRewrite;

impl Pass for BitplaneRewrite {
    fn name(&self) -> &'static str {
        PASS
    }

    fn run(&self, graph: &mut Graph, ctx: &mut PassContext) -> Result<bool, PassError> {
        let q = VlQuantization::from_context(ctx).ok_or(PassError::MissingResult {
            pass: PASS,
            needs: "vl-quantize",
        })?;
        for layer in &q.layers {
            replace_with_bitplane(PASS, graph, layer)?;
        }
        Ok(!q.layers.is_empty())
    }
}

/// Rounds a side-table entry to the nearest IEEE half-precision value (kept as f32).
///
/// Side tables are stored in half precision, which halves their share of a `.strata` file
/// (they are ~5 % of it at f32 for seven plane counts) at a relative cost of 2^-11 — far below
/// the quantization step of any plane count. Rounding here, where the op is built, means
/// every consumer (the quantizer's own later layers, the runtime, the backends, the
/// container) sees exactly the stored values. Values outside the half range stay f32 (the
/// container then stores that tensor in f32).
pub fn half_precision(v: f32) -> f32 {
    let h = half::f16::from_f32(v);
    if h.is_finite() || !v.is_finite() {
        h.to_f32()
    } else {
        v
    }
}
