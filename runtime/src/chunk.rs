//! Batch chunking: running a large batch as a sequence of small ones.
//!
//! When every op treats the samples of the batch independently, executing the graph on
//! slices of the batch gives the same result while keeping every intermediate small (cache-
//! resident, allocated once and reused) instead of materialising gigabyte-sized activations
//! for a 10,000-image test set. Whether a graph qualifies is decided from the declared types
//! (the batch symbol `N` must sit on axis 0 of every value that has it) and the op's own
//! rule ([`strata_ir::Op::is_per_sample`]) that it never mixes or reorders samples. Anything not provably per-sample runs whole.

use strata_ir::{Dim, Graph, NodeKind, TensorType};

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
        let out_types: Vec<&TensorType> = node.outputs.iter().map(|v| &v.ty).collect();
        let ok = op.is_per_sample(&in_types, &out_types);
        if !ok {
            return None;
        }
    }
    Some((TARGET_CHUNK_BYTES / per_sample_max.max(1)).clamp(MIN_CHUNK, MAX_CHUNK))
}
