//! The one forward loop over a graph. Inference ([`crate::run`]) and the taped passes of
//! training ([`crate::autodiff::forward_with_tape_by`]) both run through it; they differ only
//! in what a [`Visit`] does per op node and in whether values are kept.

use std::collections::HashMap;

use strata_ir::{Graph, Node, NodeId, NodeKind, Op, Tensor, ValueRef};

use crate::{kernels, RuntimeError};

/// A value held during execution: borrowed from the caller or the graph's constant store, or
/// produced by an op (and then freed after its last use, unless the visit retains values).
pub(crate) enum Slot<'a> {
    Borrowed(&'a Tensor),
    Owned(Tensor),
}

impl Slot<'_> {
    pub(crate) fn get(&self) -> &Tensor {
        match self {
            Slot::Borrowed(t) => t,
            Slot::Owned(t) => t,
        }
    }
}

/// What the loop asks of its caller.
pub(crate) trait Visit {
    type Error: From<RuntimeError>;
    /// Keep every value (a tape for the backward pass) instead of freeing each after its
    /// last use; a retaining visit is never handed an input to consume.
    const RETAIN: bool;
    /// The outputs of op node `id`. `owned_first` is its first input when the loop could
    /// move it into the kernel (then `rest` holds the others), else `rest` holds them all.
    fn eval(
        &mut self,
        id: NodeId,
        node: &Node,
        op: &Op,
        owned_first: Option<Tensor>,
        rest: &[&Tensor],
    ) -> Result<Vec<Tensor>, Self::Error>;
}

/// Runs `graph` on `inputs` (checked by the caller, which found `batch`) in topological
/// order. Returns the values held at the end: the graph outputs, or every value when
/// retaining.
pub(crate) fn interpret<'t, V: Visit>(
    graph: &'t Graph,
    inputs: &'t [Tensor],
    batch: usize,
    visit: &mut V,
) -> Result<HashMap<ValueRef, Slot<'t>>, V::Error> {
    let order = graph.topo_order().map_err(RuntimeError::from)?;

    // Remaining uses of every value; graph outputs are pinned with an extra use never released.
    let mut uses: HashMap<ValueRef, usize> = HashMap::new();
    for &id in &order {
        for v in graph.node_inputs(id) {
            *uses.entry(v).or_insert(0) += 1;
        }
    }
    for &v in graph.outputs() {
        *uses.entry(v).or_insert(0) += 1;
    }

    let mut values: HashMap<ValueRef, Slot<'t>> = HashMap::new();
    for (i, &id) in graph.inputs().iter().enumerate() {
        values.insert(ValueRef::first(id), Slot::Borrowed(&inputs[i]));
    }

    for &id in &order {
        let node = graph.node(id).map_err(RuntimeError::from)?;
        let op = match &node.kind {
            NodeKind::Input => continue,
            NodeKind::Constant(_) => {
                let v = ValueRef::first(id);
                if let Some(t) = graph.constant_value(v) {
                    values.insert(v, Slot::Borrowed(t.as_ref()));
                }
                continue;
            }
            NodeKind::Op(op) => op,
        };
        // The declared output types at this batch size bound what the kernel allocates: refuse
        // a value beyond the limits before the kernel tries (kernels check their own too).
        for out in &node.outputs {
            if strata_ir::limits::check_type(&out.ty, batch).is_err() {
                let shape = out
                    .ty
                    .shape
                    .resolve(batch)
                    .iter()
                    .map(|&d| d as u128)
                    .collect();
                return Err(RuntimeError::TooLarge {
                    op: op.mnemonic(),
                    shape,
                }
                .in_node(&node.name, op.mnemonic())
                .into());
            }
        }
        let args = graph.node_inputs(id);
        for (slot, v) in args.iter().enumerate() {
            if !values.contains_key(v) {
                return Err(missing(graph, &node.name, slot, *v).into());
            }
        }
        // Release this node's uses up front; a value whose count drops to zero is no longer
        // needed after this op, and an owned first argument can be moved into the kernel.
        let mut dead = Vec::new();
        for v in &args {
            if let Some(n) = uses.get_mut(v) {
                *n -= 1;
                if *n == 0 && !V::RETAIN {
                    dead.push(*v);
                }
            }
        }
        let movable = args.first().copied().filter(|v| {
            kernels::benefits_from_ownership(op)
                && dead.contains(v)
                && args.iter().filter(|a| *a == v).count() == 1
        });
        let owned_first = match movable.and_then(|v| values.remove(&v).map(|s| (v, s))) {
            Some((_, Slot::Owned(t))) => Some(t),
            Some((v, borrowed)) => {
                values.insert(v, borrowed);
                None
            }
            None => None,
        };
        let result = {
            let skip = owned_first.is_some() as usize;
            let rest: Vec<&Tensor> = args[skip..]
                .iter()
                .filter_map(|v| values.get(v).map(Slot::get))
                .collect();
            visit.eval(id, node, op, owned_first, &rest)?
        };
        crate::check_output_count(node, op, result.len())?;
        for v in dead {
            values.remove(&v);
        }
        for (i, t) in result.into_iter().enumerate() {
            let v = ValueRef {
                node: id,
                output: i,
            };
            // Values nobody reads (e.g. an unused Split piece) are dropped at once.
            if V::RETAIN || uses.get(&v).copied().unwrap_or(0) > 0 {
                values.insert(v, Slot::Owned(t));
            }
        }
    }
    Ok(values)
}

/// The graph outputs among `values`, in order.
pub(crate) fn outputs(
    graph: &Graph,
    values: &HashMap<ValueRef, Slot<'_>>,
) -> Result<Vec<Tensor>, RuntimeError> {
    let mut outputs = Vec::with_capacity(graph.outputs().len());
    for (slot, &v) in graph.outputs().iter().enumerate() {
        match values.get(&v) {
            Some(value) => outputs.push(value.get().clone()),
            None => return Err(missing(graph, "<graph outputs>", slot, v)),
        }
    }
    Ok(outputs)
}

/// Input `slot` of `node` (value `v`) was never computed.
pub(crate) fn missing(graph: &Graph, node: &str, slot: usize, v: ValueRef) -> RuntimeError {
    RuntimeError::MissingValue {
        node: node.to_string(),
        slot,
        producer: graph
            .node(v.node)
            .map(|n| n.name.clone())
            .unwrap_or_default(),
        output: v.output,
    }
}
