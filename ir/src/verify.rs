//! The verifier: checks the invariants every pass and backend relies on, so a bug in one
//! stage is reported where it happens instead of as a wrong result three stages later.

use std::collections::{BTreeMap, HashMap};

use crate::{Graph, InferError, NodeId, NodeKind, TensorType};

/// A broken graph invariant. Every variant names the node and its op (`input` and `const`
/// for the non-op nodes).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VerifyError {
    #[error("graph has a cycle through node `{node}`")]
    Cycle { node: String },
    #[error("node `{node}` ({op}): input slot {slot} is not connected")]
    MissingInput {
        node: String,
        op: &'static str,
        slot: usize,
    },
    #[error("node `{node}` ({op}): input slot {slot} is connected more than once")]
    DuplicateInputSlot {
        node: String,
        op: &'static str,
        slot: usize,
    },
    #[error("node `{node}` ({op}): input slot {slot} reads output {output} of `{producer}`, which has only {outputs}")]
    BadOutputIndex {
        node: String,
        op: &'static str,
        slot: usize,
        producer: String,
        output: usize,
        outputs: usize,
    },
    #[error("node `{node}` ({op}): takes {expected} inputs, has {got}")]
    InputArity {
        node: String,
        op: &'static str,
        expected: String,
        got: usize,
    },
    #[error("node `{node}` ({op}): produces {expected} values, declares {got}")]
    OutputArity {
        node: String,
        op: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("node `{node}` ({op}): value name `{name}` is already defined by node `{first}` ({first_op})")]
    DuplicateValueName {
        name: String,
        node: String,
        op: &'static str,
        first: String,
        first_op: &'static str,
    },
    #[error("node `{node}` ({op}): {source}")]
    Infer {
        node: String,
        op: &'static str,
        #[source]
        source: InferError,
    },
    #[error("node `{node}` ({op}): output {output} is declared {declared} but the inputs give {inferred}")]
    TypeMismatch {
        node: String,
        op: &'static str,
        output: usize,
        declared: TensorType,
        inferred: TensorType,
    },
    #[error("node `{node}` (const): declared type {declared} but the tensor is {actual}")]
    ConstantType {
        node: String,
        declared: TensorType,
        actual: TensorType,
    },
    #[error("node `{node}` (const): its tensor is missing from the constant store")]
    MissingConstant { node: String },
    #[error("node `{node}` ({op}) has incoming edges but takes no inputs")]
    UnexpectedInputs { node: String, op: &'static str },
    #[error("graph input {index} refers to node `{node}`, which is not an input node")]
    BadGraphInput { index: usize, node: String },
    #[error("graph input {index} refers to a node that does not exist")]
    MissingGraphInput { index: usize },
    #[error("input node `{node}` is not in the graph's input list")]
    UnlistedInput { node: String },
    #[error("graph output {index} refers to a value that does not exist")]
    DanglingOutput { index: usize },
    #[error("input `{node}`: {source}")]
    InputTooLarge {
        node: String,
        #[source]
        source: crate::limits::LimitError,
    },
}

fn kind_name(kind: &NodeKind) -> &'static str {
    match kind {
        NodeKind::Input => "input",
        NodeKind::Constant(_) => "const",
        NodeKind::Op(op) => op.mnemonic(),
    }
}

/// Checks structure (connectivity, arity, names, acyclicity) and types (constants against
/// their tensors, op outputs against shape inference on the declared input types).
pub fn verify(graph: &Graph) -> Result<(), VerifyError> {
    // Graph inputs.
    let mut listed: HashMap<NodeId, usize> = HashMap::new();
    for (index, &id) in graph.inputs().iter().enumerate() {
        let node = graph
            .node(id)
            .map_err(|_| VerifyError::MissingGraphInput { index })?;
        if node.kind != NodeKind::Input {
            return Err(VerifyError::BadGraphInput {
                index,
                node: node.name.clone(),
            });
        }
        listed.insert(id, index);
    }

    // Per node: connectivity, arity, constants. Collected in id order for determinism.
    let mut names: BTreeMap<&str, (&str, &'static str)> = BTreeMap::new();
    for id in graph.node_ids() {
        let Ok(node) = graph.node(id) else { continue };
        let op_name = kind_name(&node.kind);
        let name = node.name.clone();
        for v in &node.outputs {
            if let Some(&(first, first_op)) = names.get(v.name.as_str()) {
                return Err(VerifyError::DuplicateValueName {
                    name: v.name.clone(),
                    node: node.name.clone(),
                    op: op_name,
                    first: first.to_string(),
                    first_op,
                });
            }
            names.insert(&v.name, (&node.name, op_name));
        }
        let edges = graph.input_edges(id);
        match &node.kind {
            NodeKind::Input | NodeKind::Constant(_) => {
                if !edges.is_empty() {
                    return Err(VerifyError::UnexpectedInputs {
                        node: name,
                        op: op_name,
                    });
                }
                if node.outputs.len() != 1 {
                    return Err(VerifyError::OutputArity {
                        node: name,
                        op: op_name,
                        expected: 1,
                        got: node.outputs.len(),
                    });
                }
                if node.kind == NodeKind::Input && !listed.contains_key(&id) {
                    return Err(VerifyError::UnlistedInput { node: name });
                }
                if node.kind == NodeKind::Input {
                    // Op outputs are checked by inference; an input's type is as declared.
                    crate::limits::check_type(&node.outputs[0].ty, 1).map_err(|source| {
                        VerifyError::InputTooLarge {
                            node: name.clone(),
                            source,
                        }
                    })?;
                }
                if let NodeKind::Constant(cid) = node.kind {
                    let t = graph
                        .constant(cid)
                        .ok_or_else(|| VerifyError::MissingConstant { node: name.clone() })?;
                    let actual = t.ty();
                    if node.outputs[0].ty != actual {
                        return Err(VerifyError::ConstantType {
                            node: name,
                            declared: node.outputs[0].ty.clone(),
                            actual,
                        });
                    }
                }
            }
            NodeKind::Op(op) => {
                for (slot, (edge, producer)) in edges.iter().enumerate() {
                    if edge.input < slot {
                        return Err(VerifyError::DuplicateInputSlot {
                            node: name,
                            op: op_name,
                            slot: edge.input,
                        });
                    }
                    if edge.input > slot {
                        return Err(VerifyError::MissingInput {
                            node: name,
                            op: op_name,
                            slot,
                        });
                    }
                    let p = graph
                        .node(*producer)
                        .map_err(|_| VerifyError::MissingInput {
                            node: name.clone(),
                            op: op_name,
                            slot,
                        })?;
                    if edge.output >= p.outputs.len() {
                        return Err(VerifyError::BadOutputIndex {
                            node: name,
                            op: op_name,
                            slot,
                            producer: p.name.clone(),
                            output: edge.output,
                            outputs: p.outputs.len(),
                        });
                    }
                }
                let got = edges.len();
                if let Err(expected) = op.check_input_count(got) {
                    return Err(VerifyError::InputArity {
                        node: name,
                        op: op_name,
                        expected,
                        got,
                    });
                }
                if node.outputs.len() != op.num_outputs() {
                    return Err(VerifyError::OutputArity {
                        node: name,
                        op: op_name,
                        expected: op.num_outputs(),
                        got: node.outputs.len(),
                    });
                }
            }
        }
    }

    for (index, &v) in graph.outputs().iter().enumerate() {
        graph
            .value(v)
            .map_err(|_| VerifyError::DanglingOutput { index })?;
    }

    // Types, in topological order (also detects cycles).
    let order = graph.topo_order().map_err(|e| match e {
        crate::GraphError::Cycle { node } => VerifyError::Cycle { node },
        other => VerifyError::Cycle {
            node: other.to_string(),
        },
    })?;
    for id in order {
        let Ok(node) = graph.node(id) else { continue };
        let NodeKind::Op(op) = &node.kind else {
            continue;
        };
        let op_name = op.mnemonic();
        let inputs: Vec<&TensorType> = graph
            .node_inputs(id)
            .into_iter()
            .filter_map(|v| graph.value(v).ok().map(|val| &val.ty))
            .collect();
        let inferred = op.infer(&inputs).map_err(|source| VerifyError::Infer {
            node: node.name.clone(),
            op: op_name,
            source,
        })?;
        for (output, (declared, inferred)) in node.outputs.iter().zip(inferred).enumerate() {
            if declared.ty != inferred {
                return Err(VerifyError::TypeMismatch {
                    node: node.name.clone(),
                    op: op_name,
                    output,
                    declared: declared.ty.clone(),
                    inferred,
                });
            }
        }
    }
    Ok(())
}
