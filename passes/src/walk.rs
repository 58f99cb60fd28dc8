//! The node walk that node-by-node passes share, and how passes attribute graph errors.

use strata_ir::{Graph, GraphError, NodeId, NodeKind, Op, ValueRef};

use crate::PassError;

/// A `map_err` adapter that attributes a graph error to pass `pass`.
pub(crate) fn graph_err(pass: &'static str) -> impl Fn(GraphError) -> PassError + Copy {
    move |source| PassError::Graph { pass, source }
}

/// The op nodes in topological order, with their names and ops (inputs and constants are
/// skipped). Read before the pass edits anything: the passes using it rewrite only the node at
/// hand, so the entries still ahead stay current.
pub(crate) fn op_nodes(
    graph: &Graph,
    pass: &'static str,
) -> Result<Vec<(NodeId, String, Op)>, PassError> {
    let err = graph_err(pass);
    let mut ops = Vec::new();
    for id in graph.topo_order().map_err(err)? {
        let node = graph.node(id).map_err(err)?;
        if let NodeKind::Op(op) = &node.kind {
            ops.push((id, node.name.clone(), op.clone()));
        }
    }
    Ok(ops)
}

/// A node rewritten as a chain of new ones: each step is named `{node}.{suffix}` with output
/// `{output}.{suffix}`, and [`Chain::finish`] hands the last one the original output.
pub(crate) struct Chain<'a> {
    pub pass: &'static str,
    pub node: &'a str,
    pub output: &'a str,
}

impl Chain<'_> {
    /// One step of the chain, its type inferred.
    pub fn step(
        &self,
        graph: &mut Graph,
        suffix: &str,
        op: Op,
        ins: &[ValueRef],
    ) -> Result<ValueRef, PassError> {
        graph
            .add_op_inferred(
                format!("{}.{suffix}", self.node),
                op,
                ins,
                vec![format!("{}.{suffix}", self.output)],
            )
            .map(ValueRef::first)
            .map_err(graph_err(self.pass))
    }

    /// Replaces node `id` by the chain ending in `last`: the last node takes the original
    /// output's name and type (users see no change), readers move to it, `id` goes.
    pub fn finish(&self, graph: &mut Graph, id: NodeId, last: ValueRef) -> Result<(), PassError> {
        let err = graph_err(self.pass);
        graph.node_mut(last.node).map_err(err)?.outputs[0] =
            graph.node(id).map_err(err)?.outputs[0].clone();
        graph
            .replace_all_uses(ValueRef::first(id), last)
            .map_err(err)?;
        graph.remove_node(id).map_err(err)?;
        Ok(())
    }
}
