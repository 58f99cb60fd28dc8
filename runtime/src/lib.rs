//! Strata's reference runtime: an interpreter for the graph IR.
//!
//! Every other stage (passes, the C and MLIR backends, quantized kernels) is checked against
//! this crate, so it favours obviously-correct semantics that follow the ONNX reference, while
//! using GEMM-based convolution and rayon so that real test sets run in seconds.

mod error;
pub mod kernels;

use std::collections::HashMap;

use strata_ir::{Dim, Graph, NodeKind, Tensor, ValueRef};

pub use error::RuntimeError;
pub use kernels::eval_op;

/// A value held during execution: borrowed from the caller or the graph's constant store, or
/// produced by an op (and then freed after its last use).
enum Slot<'a> {
    Borrowed(&'a Tensor),
    Owned(Tensor),
}

impl Slot<'_> {
    fn get(&self) -> &Tensor {
        match self {
            Slot::Borrowed(t) => t,
            Slot::Owned(t) => t,
        }
    }
}

/// Executes `graph` on `inputs` (in graph-input order) and returns the graph outputs in order.
///
/// Inputs are checked against the declared input types; the batch dimension `N` binds to the
/// actual size of the first input that has it and must agree across inputs. Intermediate
/// values are dropped right after their last consumer runs, so memory stays bounded by the
/// widest point of the graph rather than its total size.
pub fn run(graph: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, RuntimeError> {
    let order = graph.topo_order()?;
    check_inputs(graph, inputs)?;

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

    let mut values: HashMap<ValueRef, Slot<'_>> = HashMap::new();
    for (i, &id) in graph.inputs().iter().enumerate() {
        values.insert(ValueRef::first(id), Slot::Borrowed(&inputs[i]));
    }

    for &id in &order {
        let node = graph.node(id)?;
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
        let args = graph.node_inputs(id);
        for (slot, v) in args.iter().enumerate() {
            if !values.contains_key(v) {
                let producer = graph
                    .node(v.node)
                    .map(|n| n.name.clone())
                    .unwrap_or_default();
                return Err(RuntimeError::MissingValue {
                    node: node.name.clone(),
                    slot,
                    producer,
                    output: v.output,
                });
            }
        }
        // Release this node's uses up front; a value whose count drops to zero is no longer
        // needed after this op, and an owned first argument can be moved into the kernel.
        let mut dead = Vec::new();
        for v in &args {
            if let Some(n) = uses.get_mut(v) {
                *n -= 1;
                if *n == 0 {
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
        let result = match owned_first {
            Some(t) => {
                let rest: Vec<&Tensor> = args[1..]
                    .iter()
                    .filter_map(|v| values.get(v).map(Slot::get))
                    .collect();
                kernels::eval_op_owned(op, t, &rest)
            }
            None => {
                let refs: Vec<&Tensor> = args
                    .iter()
                    .filter_map(|v| values.get(v).map(Slot::get))
                    .collect();
                eval_op(op, &refs)
            }
        }
        .map_err(|e| e.in_node(&node.name, op.mnemonic()))?;
        if result.len() != node.outputs.len() {
            return Err(RuntimeError::OutputCount {
                node: node.name.clone(),
                op: op.mnemonic(),
                declared: node.outputs.len(),
                produced: result.len(),
            });
        }
        for v in dead {
            values.remove(&v);
        }
        for (i, t) in result.into_iter().enumerate() {
            let v = ValueRef {
                node: id,
                output: i,
            };
            // Values nobody reads (e.g. an unused Split piece) are dropped at once.
            if uses.get(&v).copied().unwrap_or(0) > 0 {
                values.insert(v, Slot::Owned(t));
            }
        }
    }

    let mut outputs = Vec::with_capacity(graph.outputs().len());
    for &v in graph.outputs() {
        match values.get(&v) {
            Some(slot) => outputs.push(slot.get().clone()),
            None => {
                let producer = graph
                    .node(v.node)
                    .map(|n| n.name.clone())
                    .unwrap_or_default();
                return Err(RuntimeError::MissingValue {
                    node: "<graph outputs>".to_string(),
                    slot: outputs.len(),
                    producer,
                    output: v.output,
                });
            }
        }
    }
    Ok(outputs)
}

/// Checks count, dtype, rank and known dimensions of the inputs and binds the batch size.
fn check_inputs(graph: &Graph, inputs: &[Tensor]) -> Result<(), RuntimeError> {
    if inputs.len() != graph.inputs().len() {
        return Err(RuntimeError::InputCount {
            expected: graph.inputs().len(),
            got: inputs.len(),
        });
    }
    let mut batch: Option<usize> = None;
    for (&id, t) in graph.inputs().iter().zip(inputs) {
        let node = graph.node(id)?;
        let Some(value) = node.outputs.first() else {
            return Err(RuntimeError::MissingValue {
                node: node.name.clone(),
                slot: 0,
                producer: node.name.clone(),
                output: 0,
            });
        };
        let ty = &value.ty;
        let name = &value.name;
        if t.dtype() != ty.dtype {
            return Err(RuntimeError::InputDType {
                input: name.clone(),
                expected: ty.clone(),
                got: t.dtype(),
            });
        }
        if t.rank() != ty.rank() {
            return Err(RuntimeError::InputRank {
                input: name.clone(),
                expected: ty.clone(),
                got: t.rank(),
            });
        }
        for (axis, (&got, dim)) in t.shape().iter().zip(ty.shape.dims()).enumerate() {
            match *dim {
                Dim::Known(want) if want != got => {
                    return Err(RuntimeError::InputDim {
                        input: name.clone(),
                        axis,
                        got,
                        want,
                        expected: ty.clone(),
                    })
                }
                Dim::Known(_) => {}
                Dim::Batch => match batch {
                    Some(b) if b != got => {
                        return Err(RuntimeError::BatchMismatch {
                            input: name.clone(),
                            axis,
                            got,
                            batch: b,
                        })
                    }
                    Some(_) => {}
                    None => batch = Some(got),
                },
            }
        }
    }
    Ok(())
}
