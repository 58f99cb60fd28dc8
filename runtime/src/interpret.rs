//! The one forward loop over a graph. Inference ([`crate::run`]) and the taped passes of
//! training ([`crate::autodiff::forward_with_tape_by`]) both run through it; they differ only
//! in what a [`Visit`] does per op node and in whether values are kept.

use std::collections::{HashMap, HashSet};

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
    interpret_reusing(graph, inputs, batch, visit, Reuse::default())
}

/// Values a run takes from an earlier run instead of computing them, and values it must hand
/// back besides the graph outputs: what lets an adaptive cascade's next stage rerun only the
/// nodes whose plane counts (or inputs) changed.
#[derive(Default)]
pub(crate) struct Reuse<'k> {
    /// Values already known (for this run's samples); their producers do not run.
    pub given: HashMap<ValueRef, Tensor>,
    /// Values to keep to the end (returned among the held values).
    pub keep: Option<&'k HashSet<ValueRef>>,
}

/// [`interpret`] taking `reuse.given` as computed: only the op nodes the graph outputs (and
/// `reuse.keep`) still need, through values not given, run.
pub(crate) fn interpret_reusing<'t, V: Visit>(
    graph: &'t Graph,
    inputs: &'t [Tensor],
    batch: usize,
    visit: &mut V,
    reuse: Reuse<'_>,
) -> Result<HashMap<ValueRef, Slot<'t>>, V::Error> {
    let order = graph.topo_order().map_err(RuntimeError::from)?;
    let Reuse { given, keep } = reuse;
    let kept = keep.into_iter().flatten();

    // The nodes to run: from the values wanted at the end back through what they read,
    // stopping at given values. With nothing given, every node the outputs depend on; nodes
    // nobody reads were run before and still are (they may fail on bad input).
    let needed: Option<HashSet<_>> = (!given.is_empty()).then(|| {
        let mut run = HashSet::new();
        let mut stack: Vec<ValueRef> = graph
            .outputs()
            .iter()
            .copied()
            .chain(kept.clone().copied())
            .collect();
        while let Some(v) = stack.pop() {
            if given.contains_key(&v) || !run.insert(v.node) {
                continue;
            }
            stack.extend(graph.node_inputs(v.node));
        }
        run
    });
    let runs = |id: &NodeId| needed.as_ref().is_none_or(|n| n.contains(id));

    // Remaining uses of every value; graph outputs (and kept values) are pinned with an extra
    // use never released.
    let mut uses: HashMap<ValueRef, usize> = HashMap::new();
    for id in order.iter().filter(|id| runs(id)) {
        for v in graph.node_inputs(*id) {
            *uses.entry(v).or_insert(0) += 1;
        }
    }
    for &v in graph.outputs().iter().chain(kept) {
        *uses.entry(v).or_insert(0) += 1;
    }

    let mut values: HashMap<ValueRef, Slot<'t>> = HashMap::new();
    for (i, &id) in graph.inputs().iter().enumerate() {
        values.insert(ValueRef::first(id), Slot::Borrowed(&inputs[i]));
    }
    for (v, t) in given {
        values.insert(v, Slot::Owned(t));
    }

    for &id in order.iter().filter(|id| runs(id)) {
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
