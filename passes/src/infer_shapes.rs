//! `infer-shapes`: recompute the type of every op output from its inputs.
//!
//! Needed after anything that changes a type upstream (a new input shape, a rewritten
//! constant), so downstream declared types never go stale.

use strata_ir::{Graph, GraphError, TensorType};

use crate::walk::{graph_err, op_nodes};
use crate::{Pass, PassContext, PassError};

/// See the module documentation.
pub struct InferShapes;

impl Pass for InferShapes {
    fn name(&self) -> &'static str {
        "infer-shapes"
    }

    fn accepts_stale_types(&self) -> bool {
        true
    }

    fn run(&self, graph: &mut Graph, _ctx: &mut PassContext) -> Result<bool, PassError> {
        let err = graph_err("infer-shapes");
        let mut changed = false;
        for (id, name, op) in op_nodes(graph, "infer-shapes")? {
            let inputs: Vec<TensorType> = graph
                .node_inputs(id)
                .into_iter()
                .map(|v| graph.value(v).map(|val| val.ty.clone()))
                .collect::<Result<_, _>>()
                .map_err(err)?;
            let refs: Vec<&TensorType> = inputs.iter().collect();
            let types = op.infer(&refs).map_err(|source| {
                err(GraphError::Infer {
                    node: name.clone(),
                    op: op.mnemonic(),
                    source,
                })
            })?;
            let node = graph.node_mut(id).map_err(err)?;
            if types.len() != node.outputs.len() {
                return Err(err(GraphError::OutputCount {
                    node: name,
                    op: op.mnemonic(),
                    declared: node.outputs.len(),
                    produced: types.len(),
                }));
            }
            for (value, ty) in node.outputs.iter_mut().zip(types) {
                if value.ty != ty {
                    value.ty = ty;
                    changed = true;
                }
            }
        }
        Ok(changed)
    }
}
