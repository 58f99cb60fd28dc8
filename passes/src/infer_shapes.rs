//! `infer-shapes`: recompute the type of every op output from its inputs.
//!
//! Needed after anything that changes a type upstream (a new input shape, a rewritten
//! constant), so downstream declared types never go stale.

use strata_ir::{Graph, GraphError, NodeKind, TensorType};

use crate::pipeline::{PassOptions, PipelineError};
use crate::{Pass, PassContext, PassError};

/// See the module documentation.
pub struct InferShapes;

impl InferShapes {
    pub(crate) fn create(_options: &PassOptions) -> Result<Box<dyn Pass>, PipelineError> {
        Ok(Box::new(InferShapes))
    }
}

impl Pass for InferShapes {
    fn name(&self) -> &'static str {
        "infer-shapes"
    }

    fn accepts_stale_types(&self) -> bool {
        true
    }

    fn run(&self, graph: &mut Graph, _ctx: &mut PassContext) -> Result<bool, PassError> {
        let err = |source| PassError::Graph {
            pass: "infer-shapes",
            source,
        };
        let mut changed = false;
        for id in graph.topo_order().map_err(err)? {
            let node = graph.node(id).map_err(err)?;
            let NodeKind::Op(op) = &node.kind else {
                continue;
            };
            let op = op.clone();
            let name = node.name.clone();
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
