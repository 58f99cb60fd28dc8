//! `eliminate-dead-code`: remove every node (and constant) that no graph output depends on.
//!
//! Frontends and folding leave orphans behind (the inputs of a folded op, an unused second
//! output); removing them keeps the IR, the container and the emitted code free of dead weight.
//! Graph inputs are kept even when unused: they are the model's calling convention.

use std::collections::BTreeSet;

use strata_ir::{Graph, NodeKind};

use crate::{Pass, PassContext, PassError};

/// See the module documentation.
pub struct EliminateDeadCode;

impl Pass for EliminateDeadCode {
    fn name(&self) -> &'static str {
        "eliminate-dead-code"
    }

    fn run(&self, graph: &mut Graph, _ctx: &mut PassContext) -> Result<bool, PassError> {
        let mut live = BTreeSet::new();
        let mut stack: Vec<_> = graph.outputs().iter().map(|v| v.node).collect();
        while let Some(id) = stack.pop() {
            if live.insert(id) {
                stack.extend(graph.node_inputs(id).into_iter().map(|v| v.node));
            }
        }
        let dead: Vec<_> = graph
            .node_ids()
            .filter(|id| !live.contains(id))
            .filter(|&id| !matches!(graph.node(id).map(|n| &n.kind), Ok(NodeKind::Input)))
            .collect();
        for &id in &dead {
            graph.remove_node(id).map_err(|source| PassError::Graph {
                pass: "eliminate-dead-code",
                source,
            })?;
        }
        Ok(!dead.is_empty())
    }
}
