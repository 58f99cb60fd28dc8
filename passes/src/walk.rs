//! The node walk that node-by-node passes share, and how passes attribute graph errors.

use strata_ir::{Graph, GraphError, NodeId, NodeKind, Op};

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
