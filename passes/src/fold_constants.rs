//! `fold-constants`: evaluate, at compile time, every op whose inputs are all constants, and
//! every `shape` op whose input type is fully known.
//!
//! Weight preprocessing that exporters leave in graphs (transposes, reshapes, casts of
//! initializers) and static shape arithmetic thereby disappear before quantization and code
//! generation see the graph. Evaluation uses the reference runtime, so folding can never
//! disagree with execution. The folded op's inputs are left for `eliminate-dead-code`.

use std::sync::Arc;

use strata_ir::{Graph, Op, Tensor, TensorType, ValueRef};

use crate::pipeline::{PassOptions, PipelineError};
use crate::walk::{graph_err, op_nodes};
use crate::{Pass, PassContext, PassError};

/// See the module documentation.
pub struct FoldConstants {
    /// Results with more elements than this stay computed at run time (guards against
    /// materialising a huge constant that would bloat the model).
    pub max_elements: usize,
}

impl FoldConstants {
    pub(crate) fn create(options: &PassOptions) -> Result<Box<dyn Pass>, PipelineError> {
        let max_elements = options.get("max-elements", usize::MAX)?;
        Ok(Box::new(FoldConstants { max_elements }))
    }
}

impl Pass for FoldConstants {
    fn name(&self) -> &'static str {
        "fold-constants"
    }

    fn run(&self, graph: &mut Graph, _ctx: &mut PassContext) -> Result<bool, PassError> {
        let gerr = graph_err("fold-constants");
        let mut changed = false;
        for (id, name, op) in op_nodes(graph, "fold-constants")? {
            let outputs = graph.node(id).map_err(gerr)?.outputs.clone();
            let inputs = graph.node_inputs(id);
            let results: Vec<Tensor> = if let (Op::Shape { start, end }, [x]) = (&op, &inputs[..]) {
                let ty = &graph.value(*x).map_err(gerr)?.ty;
                let Some(dims) = ty.shape.as_known() else {
                    continue;
                };
                let dims: Vec<i64> = dims
                    .get(*start..*end)
                    .unwrap_or(&[])
                    .iter()
                    .map(|&d| d as i64)
                    .collect();
                let n = dims.len();
                vec![
                    Tensor::from_i64(vec![n], dims).map_err(|e| PassError::Rewrite {
                        pass: "fold-constants",
                        node: name.clone(),
                        reason: e.to_string(),
                    })?,
                ]
            } else {
                let consts: Option<Vec<Arc<Tensor>>> = inputs
                    .iter()
                    .map(|&v| graph.constant_value(v).cloned())
                    .collect();
                let Some(consts) = consts else {
                    continue;
                };
                if outputs
                    .iter()
                    .any(|o| o.ty.shape.known_product() > self.max_elements)
                {
                    continue;
                }
                let refs: Vec<&Tensor> = consts.iter().map(|t| t.as_ref()).collect();
                strata_runtime::eval_op(&op, &refs).map_err(|source| PassError::Runtime {
                    pass: "fold-constants",
                    node: name.clone(),
                    source: Box::new(source),
                })?
            };
            if results.len() != outputs.len() {
                return Err(PassError::Rewrite {
                    pass: "fold-constants",
                    node: name,
                    reason: format!(
                        "evaluation produced {} outputs, the node declares {}",
                        results.len(),
                        outputs.len()
                    ),
                });
            }
            for (i, (tensor, declared)) in results.into_iter().zip(&outputs).enumerate() {
                if tensor.ty() != declared.ty {
                    return Err(PassError::Rewrite {
                        pass: "fold-constants",
                        node: name,
                        reason: format!(
                            "output {i} evaluated to {} but is declared {}",
                            tensor.ty(),
                            TensorType::clone(&declared.ty)
                        ),
                    });
                }
                let old = ValueRef {
                    node: id,
                    output: i,
                };
                let new = graph.add_constant(declared.name.clone(), tensor);
                graph.replace_all_uses(old, new).map_err(gerr)?;
            }
            graph.remove_node(id).map_err(gerr)?;
            changed = true;
        }
        Ok(changed)
    }
}
