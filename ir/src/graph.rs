//! The dataflow graph.
//!
//! Every value is produced by exactly one node: a graph input, a constant, or an op. Data
//! dependencies are `petgraph` edges from producer to consumer carrying which output feeds
//! which input slot, so the edges are the single source of truth for connectivity. Constant
//! tensors live in a side store, not in the node payloads, so that cloning, printing a
//! summary or rewriting the graph never copies weights.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use petgraph::stable_graph::{EdgeIndex, NodeIndex, StableDiGraph};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use crate::{InferError, Op, Tensor, TensorType};

/// Identifies a node in a [`Graph`]. Stable across removals of other nodes.
pub type NodeId = NodeIndex<u32>;

/// Identifies a constant tensor in the graph's constant store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConstId(pub u32);

/// One value: output `output` of node `node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ValueRef {
    pub node: NodeId,
    pub output: usize,
}

impl ValueRef {
    /// The first (usually only) output of a node.
    pub fn first(node: NodeId) -> ValueRef {
        ValueRef { node, output: 0 }
    }
}

/// A data dependency: output `output` of the source feeds input slot `input` of the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Edge {
    pub output: usize,
    pub input: usize,
}

/// A named, typed value produced by a node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Value {
    pub name: String,
    pub ty: TensorType,
}

/// What a node is.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// A graph input; its position is its index in [`Graph::inputs`].
    Input,
    /// A constant whose tensor is in the constant store.
    Constant(ConstId),
    /// An operation.
    Op(Op),
}

/// A node: a name (ONNX node name or value name), what it is, and the values it produces.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub kind: NodeKind,
    pub outputs: Vec<Value>,
}

impl Node {
    pub fn op(&self) -> Option<&Op> {
        match &self.kind {
            NodeKind::Op(op) => Some(op),
            _ => None,
        }
    }
}

/// Errors from building or querying a graph.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphError {
    #[error("node {0:?} does not exist")]
    UnknownNode(NodeId),
    #[error("value {value:?} does not exist (node has {outputs} outputs)")]
    UnknownValue { value: ValueRef, outputs: usize },
    #[error("graph has a cycle through node `{node}`")]
    Cycle { node: String },
    #[error("node `{node}` ({op}): {source}")]
    Infer {
        node: String,
        op: &'static str,
        #[source]
        source: InferError,
    },
    #[error("node `{node}` ({op}) declares {declared} output names but produces {produced}")]
    OutputCount {
        node: String,
        op: &'static str,
        declared: usize,
        produced: usize,
    },
}

/// A typed dataflow graph with a constant store.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub name: String,
    graph: StableDiGraph<Node, Edge>,
    inputs: Vec<NodeId>,
    outputs: Vec<ValueRef>,
    constants: BTreeMap<ConstId, Arc<Tensor>>,
    next_const: u32,
}

impl Graph {
    pub fn new(name: impl Into<String>) -> Graph {
        Graph {
            name: name.into(),
            ..Graph::default()
        }
    }

    /// Appends a graph input.
    pub fn add_input(&mut self, name: impl Into<String>, ty: TensorType) -> ValueRef {
        let name = name.into();
        let id = self.graph.add_node(Node {
            name: name.clone(),
            kind: NodeKind::Input,
            outputs: vec![Value { name, ty }],
        });
        self.inputs.push(id);
        ValueRef::first(id)
    }

    /// Adds a constant node holding `tensor`.
    pub fn add_constant(
        &mut self,
        name: impl Into<String>,
        tensor: impl Into<Arc<Tensor>>,
    ) -> ValueRef {
        let tensor = tensor.into();
        let name = name.into();
        let cid = ConstId(self.next_const);
        self.next_const += 1;
        let ty = tensor.ty();
        self.constants.insert(cid, tensor);
        let id = self.graph.add_node(Node {
            name: name.clone(),
            kind: NodeKind::Constant(cid),
            outputs: vec![Value { name, ty }],
        });
        ValueRef::first(id)
    }

    /// Adds an op node with explicitly given outputs (no inference). Used by the text parser,
    /// which must reproduce exactly what was printed, and by passes that already know types.
    pub fn add_op(
        &mut self,
        name: impl Into<String>,
        op: Op,
        inputs: &[ValueRef],
        outputs: Vec<Value>,
    ) -> Result<NodeId, GraphError> {
        for &v in inputs {
            self.value(v)?;
        }
        let id = self.graph.add_node(Node {
            name: name.into(),
            kind: NodeKind::Op(op),
            outputs,
        });
        for (slot, v) in inputs.iter().enumerate() {
            self.graph.add_edge(
                v.node,
                id,
                Edge {
                    output: v.output,
                    input: slot,
                },
            );
        }
        Ok(id)
    }

    /// Adds an op node whose output types come from shape inference on its inputs.
    pub fn add_op_inferred(
        &mut self,
        name: impl Into<String>,
        op: Op,
        inputs: &[ValueRef],
        output_names: Vec<String>,
    ) -> Result<NodeId, GraphError> {
        let name = name.into();
        let types = inputs
            .iter()
            .map(|&v| self.value(v).map(|val| val.ty.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let refs: Vec<&TensorType> = types.iter().collect();
        let out_types = op.infer(&refs).map_err(|source| GraphError::Infer {
            node: name.clone(),
            op: op.mnemonic(),
            source,
        })?;
        if out_types.len() != output_names.len() {
            return Err(GraphError::OutputCount {
                node: name,
                op: op.mnemonic(),
                declared: output_names.len(),
                produced: out_types.len(),
            });
        }
        let outputs = output_names
            .into_iter()
            .zip(out_types)
            .map(|(name, ty)| Value { name, ty })
            .collect();
        self.add_op(name, op, inputs, outputs)
    }

    /// Graph inputs, in order.
    pub fn inputs(&self) -> &[NodeId] {
        &self.inputs
    }

    /// Graph outputs, in order.
    pub fn outputs(&self) -> &[ValueRef] {
        &self.outputs
    }

    pub fn set_outputs(&mut self, outputs: Vec<ValueRef>) {
        self.outputs = outputs;
    }

    pub fn node(&self, id: NodeId) -> Result<&Node, GraphError> {
        self.graph
            .node_weight(id)
            .ok_or(GraphError::UnknownNode(id))
    }

    pub fn node_mut(&mut self, id: NodeId) -> Result<&mut Node, GraphError> {
        self.graph
            .node_weight_mut(id)
            .ok_or(GraphError::UnknownNode(id))
    }

    /// The name and type of a value.
    pub fn value(&self, v: ValueRef) -> Result<&Value, GraphError> {
        let node = self.node(v.node)?;
        node.outputs.get(v.output).ok_or(GraphError::UnknownValue {
            value: v,
            outputs: node.outputs.len(),
        })
    }

    /// All node ids, in insertion order.
    pub fn node_ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.graph.node_indices()
    }

    pub fn node_count(&self) -> usize {
        self.graph.node_count()
    }

    /// The inputs of a node, ordered by slot. A gap in the slots (a dangling input) shows up
    /// as a shorter list; [`crate::verify`] reports it.
    pub fn node_inputs(&self, id: NodeId) -> Vec<ValueRef> {
        let mut edges: Vec<(usize, ValueRef)> = self
            .graph
            .edges_directed(id, Direction::Incoming)
            .map(|e| {
                (
                    e.weight().input,
                    ValueRef {
                        node: e.source(),
                        output: e.weight().output,
                    },
                )
            })
            .collect();
        edges.sort_by_key(|(slot, _)| *slot);
        edges.into_iter().map(|(_, v)| v).collect()
    }

    /// Input slots of a node with their producers, including duplicates or gaps, for the verifier.
    pub fn input_edges(&self, id: NodeId) -> Vec<(Edge, NodeId)> {
        let mut edges: Vec<(Edge, NodeId)> = self
            .graph
            .edges_directed(id, Direction::Incoming)
            .map(|e| (*e.weight(), e.source()))
            .collect();
        edges.sort_by_key(|(e, _)| (e.input, e.output));
        edges
    }

    /// Consumers of a value: `(node, input slot)`.
    pub fn users(&self, v: ValueRef) -> Vec<(NodeId, usize)> {
        let mut users: Vec<(NodeId, usize)> = self
            .graph
            .edges_directed(v.node, Direction::Outgoing)
            .filter(|e| e.weight().output == v.output)
            .map(|e| (e.target(), e.weight().input))
            .collect();
        users.sort();
        users
    }

    /// True when a value feeds another node or is a graph output.
    pub fn is_used(&self, v: ValueRef) -> bool {
        self.outputs.contains(&v) || !self.users(v).is_empty()
    }

    /// Points every use of `old` (node inputs and graph outputs) at `new`.
    pub fn replace_all_uses(&mut self, old: ValueRef, new: ValueRef) -> Result<(), GraphError> {
        self.value(new)?;
        let edges: Vec<(EdgeIndex, NodeId, Edge)> = self
            .graph
            .edges_directed(old.node, Direction::Outgoing)
            .filter(|e| e.weight().output == old.output)
            .map(|e| (e.id(), e.target(), *e.weight()))
            .collect();
        for (eid, target, w) in edges {
            self.graph.remove_edge(eid);
            self.graph.add_edge(
                new.node,
                target,
                Edge {
                    output: new.output,
                    input: w.input,
                },
            );
        }
        for out in &mut self.outputs {
            if *out == old {
                *out = new;
            }
        }
        Ok(())
    }

    /// Rewires input slot `slot` of `node` to `new`.
    pub fn set_node_input(
        &mut self,
        node: NodeId,
        slot: usize,
        new: ValueRef,
    ) -> Result<(), GraphError> {
        self.node(node)?;
        self.value(new)?;
        let old: Vec<EdgeIndex> = self
            .graph
            .edges_directed(node, Direction::Incoming)
            .filter(|e| e.weight().input == slot)
            .map(|e| e.id())
            .collect();
        for e in old {
            self.graph.remove_edge(e);
        }
        self.graph.add_edge(
            new.node,
            node,
            Edge {
                output: new.output,
                input: slot,
            },
        );
        Ok(())
    }

    /// Adds a raw edge without checks. Exists so tests can build malformed graphs for the verifier.
    pub fn add_edge_unchecked(&mut self, from: NodeId, to: NodeId, edge: Edge) {
        self.graph.add_edge(from, to, edge);
    }

    /// Removes a node with its edges (and its tensor, for a constant; its input slot, for an input).
    pub fn remove_node(&mut self, id: NodeId) -> Result<Node, GraphError> {
        let node = self
            .graph
            .remove_node(id)
            .ok_or(GraphError::UnknownNode(id))?;
        if let NodeKind::Constant(cid) = node.kind {
            self.constants.remove(&cid);
        }
        self.inputs.retain(|&i| i != id);
        Ok(node)
    }

    /// The tensor behind a constant id.
    pub fn constant(&self, id: ConstId) -> Option<&Arc<Tensor>> {
        self.constants.get(&id)
    }

    /// The tensor of a value if it is produced by a constant node.
    pub fn constant_value(&self, v: ValueRef) -> Option<&Arc<Tensor>> {
        match self.graph.node_weight(v.node)?.kind {
            NodeKind::Constant(cid) if v.output == 0 => self.constants.get(&cid),
            _ => None,
        }
    }

    /// Every constant in the store.
    pub fn constants(&self) -> impl Iterator<Item = (ConstId, &Arc<Tensor>)> {
        self.constants.iter().map(|(k, v)| (*k, v))
    }

    /// Nodes in a deterministic topological order: graph inputs first (in input order), then,
    /// among ready nodes, the one added first. This keeps printing stable and makes
    /// `parse(print(g))` reproduce the order (the text lists inputs in its header).
    pub fn topo_order(&self) -> Result<Vec<NodeId>, GraphError> {
        // Indexed by node index (passes call this once per layer and plane count, so plain
        // vectors instead of maps); `None` marks an index the stable graph left vacant.
        let bound = petgraph::visit::NodeIndexable::node_bound(&self.graph);
        let mut indegree: Vec<Option<usize>> = vec![None; bound];
        for id in self.graph.node_indices() {
            indegree[id.index()] = Some(self.graph.edges_directed(id, Direction::Incoming).count());
        }
        let nodes = indegree.iter().flatten().count();
        // Inputs sort before everything else, by position; other nodes by id.
        let mut input_pos: Vec<Option<usize>> = vec![None; bound];
        for (i, &n) in self.inputs.iter().enumerate() {
            if let Some(slot) = input_pos.get_mut(n.index()) {
                *slot = Some(i);
            }
        }
        let key = |id: NodeId| match input_pos.get(id.index()).copied().flatten() {
            Some(i) => Reverse((0u8, i, id)),
            None => Reverse((1u8, id.index(), id)),
        };
        let mut ready: BinaryHeap<Reverse<(u8, usize, NodeId)>> = self
            .graph
            .node_indices()
            .filter(|id| indegree[id.index()] == Some(0))
            .map(key)
            .collect();
        let mut order = Vec::with_capacity(nodes);
        while let Some(Reverse((_, _, id))) = ready.pop() {
            order.push(id);
            for e in self.graph.edges_directed(id, Direction::Outgoing) {
                if let Some(d) = indegree[e.target().index()].as_mut() {
                    *d -= 1;
                    if *d == 0 {
                        ready.push(key(e.target()));
                    }
                }
            }
        }
        if order.len() != nodes {
            let stuck = indegree
                .iter()
                .position(|d| d.is_some_and(|d| d > 0))
                .map(|i| self.graph[NodeId::new(i)].name.clone())
                .unwrap_or_default();
            return Err(GraphError::Cycle { node: stuck });
        }
        Ok(order)
    }

    /// The underlying petgraph graph, for algorithms that want it.
    pub fn petgraph(&self) -> &StableDiGraph<Node, Edge> {
        &self.graph
    }
}

/// Structural equality: same name, same nodes in the same topological order with the same
/// kinds, values, constants (bitwise) and connections, same inputs and outputs. Node ids
/// themselves do not matter, which is what `parse(print(g)) == g` needs.
impl PartialEq for Graph {
    fn eq(&self, other: &Self) -> bool {
        let (Ok(a), Ok(b)) = (self.topo_order(), other.topo_order()) else {
            return false;
        };
        if self.name != other.name || a.len() != b.len() {
            return false;
        }
        let pos_a: BTreeMap<NodeId, usize> = a.iter().enumerate().map(|(i, &n)| (n, i)).collect();
        let pos_b: BTreeMap<NodeId, usize> = b.iter().enumerate().map(|(i, &n)| (n, i)).collect();
        let map_a = |v: ValueRef| (pos_a.get(&v.node).copied(), v.output);
        let map_b = |v: ValueRef| (pos_b.get(&v.node).copied(), v.output);
        for (&na, &nb) in a.iter().zip(&b) {
            let (x, y) = (&self.graph[na], &other.graph[nb]);
            if x.name != y.name || x.outputs != y.outputs {
                return false;
            }
            let same_kind = match (&x.kind, &y.kind) {
                (NodeKind::Constant(ca), NodeKind::Constant(cb)) => {
                    self.constants.get(ca) == other.constants.get(cb)
                }
                (ka, kb) => ka == kb,
            };
            if !same_kind {
                return false;
            }
            let ia: Vec<_> = self.node_inputs(na).into_iter().map(map_a).collect();
            let ib: Vec<_> = other.node_inputs(nb).into_iter().map(map_b).collect();
            if ia != ib {
                return false;
            }
        }
        let ins_a: Vec<_> = self.inputs.iter().map(|n| pos_a.get(n)).collect();
        let ins_b: Vec<_> = other.inputs.iter().map(|n| pos_b.get(n)).collect();
        let outs_a: Vec<_> = self.outputs.iter().map(|&v| map_a(v)).collect();
        let outs_b: Vec<_> = other.outputs.iter().map(|&v| map_b(v)).collect();
        ins_a == ins_b && outs_a == outs_b
    }
}
