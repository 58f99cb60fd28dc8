//! Batch chunking: running a large batch as a sequence of small ones.
//!
//! When every op treats the samples of the batch independently, executing the graph on
//! slices of the batch gives the same result while keeping every intermediate small (cache-
//! resident, allocated once and reused) instead of materialising gigabyte-sized activations
//! for a 10,000-image test set. Whether a graph qualifies is decided from the declared types
//! (the batch symbol `N` must sit on axis 0 of every value that has it) and a per-op rule
//! that the op never mixes or reorders samples. Anything not provably per-sample runs whole.

use strata_ir::{Dim, Graph, NodeKind, Op, TensorType};

/// Bytes of the largest per-sample intermediate a chunk should hold.
const TARGET_CHUNK_BYTES: usize = 4 << 20;
const MIN_CHUNK: usize = 64;
const MAX_CHUNK: usize = 256;

fn batch_axis(ty: &TensorType) -> Option<Option<usize>> {
    let dims = ty.shape.dims();
    let mut found = None;
    for (i, d) in dims.iter().enumerate() {
        if *d == Dim::Batch {
            if found.is_some() {
                return None;
            }
            found = Some(i);
        }
    }
    match found {
        Some(0) | None => Some(found),
        Some(_) => None,
    }
}

/// The chunk size for `graph`, or `None` when the graph is not provably per-sample.
pub(crate) fn plan(graph: &Graph) -> Option<usize> {
    let mut per_sample_max = 1usize;
    let mut any_batch_input = false;
    for &id in graph.inputs() {
        let node = graph.node(id).ok()?;
        let ty = &node.outputs.first()?.ty;
        if batch_axis(ty)? == Some(0) {
            any_batch_input = true;
        }
    }
    if !any_batch_input {
        return None;
    }
    for id in graph.node_ids() {
        let node = graph.node(id).ok()?;
        let op = match &node.kind {
            NodeKind::Op(op) => op,
            NodeKind::Input | NodeKind::Constant(_) => continue,
        };
        let mut in_types = Vec::new();
        for v in graph.node_inputs(id) {
            in_types.push(&graph.value(v).ok()?.ty);
        }
        let in_batch: Vec<bool> = in_types
            .iter()
            .map(|t| batch_axis(t).map(|a| a.is_some()))
            .collect::<Option<_>>()?;
        let out_batch: Vec<bool> = node
            .outputs
            .iter()
            .map(|v| batch_axis(&v.ty).map(|a| a.is_some()))
            .collect::<Option<_>>()?;
        for v in &node.outputs {
            if v.ty.shape.has_batch() {
                let bytes =
                    v.ty.shape
                        .known_product()
                        .saturating_mul(v.ty.dtype.size_bytes());
                per_sample_max = per_sample_max.max(bytes);
            }
        }
        if !in_batch.iter().any(|&b| b) {
            // A batch-independent subgraph (shape arithmetic on constants): must stay so.
            if out_batch.iter().any(|&b| b) {
                return None;
            }
            continue;
        }
        if out_batch.is_empty() || !out_batch.iter().all(|&b| b) {
            return None;
        }
        let only_first = in_batch.iter().skip(1).all(|&b| !b);
        let out_rank = node.outputs[0].ty.rank();
        #[allow(unreachable_patterns)]
        let ok = match op {
            Op::Conv(_)
            | Op::ConvTranspose(_)
            | Op::Clip(_)
            | Op::PRelu
            | Op::BatchNorm(_)
            | Op::Bitplane(_) => only_first,
            Op::MaxPool(_)
            | Op::AveragePool(_)
            | Op::GlobalPool(_)
            | Op::Unary(_)
            | Op::Identity
            | Op::Cast { .. } => true,
            Op::Softmax(s) => s.axis >= 1,
            Op::Flatten { axis } => *axis >= 1,
            Op::Reshape(r) => {
                let first_ok = matches!(r.shape.first(), Some(-1))
                    || (r.shape.first() == Some(&0) && !r.allow_zero);
                let inner = |t: &TensorType| {
                    t.shape.dims()[1..]
                        .iter()
                        .map(|d| d.known())
                        .collect::<Option<Vec<_>>>()
                };
                let (Some(a), Some(b)) = (inner(in_types[0]), inner(&node.outputs[0].ty)) else {
                    return None;
                };
                first_ok && a.iter().product::<usize>() == b.iter().product::<usize>()
            }
            Op::Transpose { perm } => perm.first() == Some(&0),
            Op::Concat { axis } => *axis >= 1 && in_batch.iter().all(|&b| b),
            Op::Pad(p) => {
                let r = in_types[0].rank();
                p.pads.len() == 2 * r && p.pads[0] == 0 && p.pads[r] == 0
            }
            Op::Squeeze { axes } => !axes.is_empty() && !axes.contains(&0),
            Op::Unsqueeze { axes } => !axes.contains(&0),
            Op::Gather { axis } => *axis >= 1 && only_first,
            Op::Slice(s) => !s.axes.contains(&0),
            Op::Split(s) => s.axis >= 1,
            Op::ReduceMean(r) => !r.axes.contains(&0),
            Op::Binary(_) => in_types
                .iter()
                .zip(&in_batch)
                .all(|(t, &b)| !b || t.rank() == out_rank),
            Op::Gemm(g) => only_first && !g.trans_a,
            Op::MatMul => only_first && in_types[0].rank() == out_rank && out_rank >= 2,
            Op::Shape { .. } => false,
            _ => false,
        };
        if !ok {
            return None;
        }
    }
    Some((TARGET_CHUNK_BYTES / per_sample_max.max(1)).clamp(MIN_CHUNK, MAX_CHUNK))
}
