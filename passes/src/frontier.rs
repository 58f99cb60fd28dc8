//! One forward pass over the calibration set, advanced layer by layer.
//!
//! Sequential calibration needs every layer's input as the network quantized *so far*
//! computes it. Re-running the network prefix for every layer costs `O(layers²)` forward
//! work (and again for every plane count): minutes for a 30-layer model on two images. A
//! [`Frontier`] instead keeps, for every chunk of calibration samples, the values some
//! not-yet-evaluated node still reads, and [`Frontier::advance`] evaluates only the nodes
//! between that frontier and the next layer's input. Each node runs once per chunk, so a
//! whole calibration is one forward pass; a layer replaced after its input was reached (the
//! bit-plane op that replaces a calibrated layer) is evaluated by a later advance like any
//! other node.
//!
//! Memory: the cached values are the widest cut of the graph times the sample count. Above
//! [`RESIDENT_BYTES`] whole chunks are spilled to a temporary file and read back when they
//! are needed, so memory stays bounded however many samples are given.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use strata_ir::{DType, Graph, GraphError, NodeId, NodeKind, Tensor, TensorData, ValueRef};
use strata_runtime::{eval_op_with, QuantPath};

use crate::calibrate::CalibrationData;
use crate::PassError;

/// Cached activations kept in memory before chunks are spilled to disk.
pub const RESIDENT_BYTES: usize = 1 << 30;

/// The live values of every calibration chunk; see the module documentation.
pub(crate) struct Frontier<'d> {
    pass: &'static str,
    data: &'d CalibrationData<'d>,
    chunks: Vec<Chunk>,
    /// Op nodes already evaluated for every chunk.
    evaluated: HashSet<NodeId>,
    budget: usize,
    resident: usize,
    spill: Option<File>,
}

/// One chunk of `len` samples from `start`, with its cached values in memory or on disk.
struct Chunk {
    start: usize,
    len: usize,
    values: Store,
}

enum Store {
    Resident(HashMap<ValueRef, Tensor>),
    /// `(value, dtype, shape, file offset, byte length)` of each value written to the spill
    /// file (append-only; space is not reused, the file is deleted when the frontier is).
    Spilled(Vec<(ValueRef, DType, Vec<usize>, u64, usize)>),
}

impl<'d> Frontier<'d> {
    /// A frontier at the graph inputs: nothing evaluated, nothing cached.
    pub fn new(pass: &'static str, data: &'d CalibrationData<'d>) -> Frontier<'d> {
        Frontier::with_budget(pass, data, RESIDENT_BYTES)
    }

    /// [`Frontier::new`] with a different in-memory budget (tests use a tiny one).
    pub fn with_budget(
        pass: &'static str,
        data: &'d CalibrationData<'d>,
        budget: usize,
    ) -> Frontier<'d> {
        let mut chunks = Vec::new();
        let mut start = 0;
        while start < data.samples {
            let len = data.chunk.min(data.samples - start);
            chunks.push(Chunk {
                start,
                len,
                values: Store::Resident(HashMap::new()),
            });
            start += len;
        }
        Frontier {
            pass,
            data,
            chunks,
            evaluated: HashSet::new(),
            budget,
            resident: 0,
            spill: None,
        }
    }

    /// Evaluates, for every chunk, the nodes of `graph` that `target` depends on and that
    /// have not run yet, then drops cached values nothing unevaluated reads any more.
    /// `target` itself stays cached while an unevaluated node reads it.
    pub fn advance(&mut self, graph: &Graph, target: ValueRef) -> Result<(), PassError> {
        let order = self.pending(graph, target)?;
        let pass = self.pass;
        let gerr = |source| PassError::Graph { pass, source };
        let live = self.live_after(graph, &order)?;
        // A segment value no later node reads is dropped right after its last reader.
        let keep = |v: &ValueRef| live.contains(v) || *v == target;
        let mut last_use: HashMap<ValueRef, usize> = HashMap::new();
        for (i, &id) in order.iter().enumerate() {
            for v in graph.node_inputs(id) {
                last_use.insert(v, i);
            }
        }
        for c in 0..self.chunks.len() {
            let mut values = self.take(c)?;
            let (start, len) = (self.chunks[c].start, self.chunks[c].len);
            for (i, &id) in order.iter().enumerate() {
                let node = graph.node(id).map_err(gerr)?;
                let NodeKind::Op(op) = &node.kind else {
                    continue;
                };
                let args = graph.node_inputs(id);
                // An op that works in place (Relu, Reshape, …) takes its first input by value
                // when this node is that value's last reader: no copy, no fresh allocation.
                let first = args.first().copied().filter(|v| {
                    strata_runtime::kernels::benefits_from_ownership(op)
                        && last_use.get(v) == Some(&i)
                        && !keep(v)
                        && args.iter().filter(|a| *a == v).count() == 1
                });
                let first = first.and_then(|v| values.remove(&v));
                let args = if first.is_some() {
                    args[1..].to_vec()
                } else {
                    args
                };
                let mut owned = Vec::new();
                for v in &args {
                    if !values.contains_key(v) && graph.constant_value(*v).is_none() {
                        owned.push((*v, self.input_value(graph, *v, start, len)?));
                    }
                }
                let refs: Vec<&Tensor> = args
                    .iter()
                    .map(|v| {
                        values
                            .get(v)
                            .or_else(|| graph.constant_value(*v).map(|t| t.as_ref()))
                            .or_else(|| owned.iter().find(|(o, _)| o == v).map(|(_, t)| t))
                    })
                    .collect::<Option<_>>()
                    .ok_or_else(|| self.missing(graph, &node.name))?;
                let result = match first {
                    Some(t) => strata_runtime::kernels::eval_op_owned(op, t, &refs),
                    None => eval_op_with(op, &refs, None, QuantPath::default()),
                }
                .map_err(|e| PassError::Runtime {
                    pass: self.pass,
                    node: node.name.clone(),
                    source: Box::new(e.in_node(&node.name, op.mnemonic())),
                })?;
                if result.len() != node.outputs.len() {
                    return Err(PassError::Runtime {
                        pass: self.pass,
                        node: node.name.clone(),
                        source: Box::new(strata_runtime::RuntimeError::OutputCount {
                            node: node.name.clone(),
                            op: op.mnemonic(),
                            declared: node.outputs.len(),
                            produced: result.len(),
                        }),
                    });
                }
                for v in &args {
                    if last_use.get(v) == Some(&i) && !keep(v) {
                        values.remove(v);
                    }
                }
                for (output, t) in result.into_iter().enumerate() {
                    let v = ValueRef { node: id, output };
                    if keep(&v) || last_use.get(&v).is_some_and(|&u| u > i) {
                        values.insert(v, t);
                    }
                }
            }
            values.retain(|v, _| keep(v));
            self.put(c, values)?;
        }
        self.evaluated.extend(order);
        Ok(())
    }

    /// Hands `value` of every chunk, in sample order, to `f` with the chunk's first sample
    /// index. The value must be a graph input or have been reached by [`Frontier::advance`].
    pub fn visit(
        &mut self,
        graph: &Graph,
        value: ValueRef,
        mut f: impl FnMut(usize, &Tensor) -> Result<(), PassError>,
    ) -> Result<(), PassError> {
        for c in 0..self.chunks.len() {
            let (start, len) = (self.chunks[c].start, self.chunks[c].len);
            let values = self.take(c)?;
            let result = match values.get(&value) {
                Some(t) => f(start, t),
                None => {
                    let t = self.input_value(graph, value, start, len)?;
                    f(start, &t)
                }
            };
            self.put(c, values)?;
            result?;
        }
        Ok(())
    }

    /// Unevaluated op nodes `target` depends on, in topological order.
    fn pending(&self, graph: &Graph, target: ValueRef) -> Result<Vec<NodeId>, PassError> {
        let mut needed = HashSet::new();
        let mut stack = vec![target.node];
        while let Some(id) = stack.pop() {
            let node = graph.node(id).map_err(|source| PassError::Graph {
                pass: self.pass,
                source,
            })?;
            if !matches!(node.kind, NodeKind::Op(_))
                || self.evaluated.contains(&id)
                || !needed.insert(id)
            {
                continue;
            }
            stack.extend(graph.node_inputs(id).into_iter().map(|v| v.node));
        }
        // Kahn's algorithm over the needed nodes alone (a few per layer), the ready node added
        // first going first: ordering the whole graph for every layer and plane count made
        // the calibration quadratic in depth.
        let mut indegree: HashMap<NodeId, usize> = needed.iter().map(|&id| (id, 0)).collect();
        let mut consumers: HashMap<NodeId, Vec<NodeId>> = HashMap::new();
        for &id in &needed {
            for v in graph.node_inputs(id) {
                if needed.contains(&v.node) {
                    consumers.entry(v.node).or_default().push(id);
                    *indegree.entry(id).or_default() += 1;
                }
            }
        }
        let mut ready: BinaryHeap<Reverse<NodeId>> = indegree
            .iter()
            .filter(|(_, &d)| d == 0)
            .map(|(&id, _)| Reverse(id))
            .collect();
        let mut order = Vec::with_capacity(needed.len());
        while let Some(Reverse(id)) = ready.pop() {
            order.push(id);
            for c in consumers.get(&id).into_iter().flatten() {
                if let Some(d) = indegree.get_mut(c) {
                    *d -= 1;
                    if *d == 0 {
                        ready.push(Reverse(*c));
                    }
                }
            }
        }
        if order.len() != needed.len() {
            return Err(PassError::Graph {
                pass: self.pass,
                source: GraphError::Cycle {
                    node: needed
                        .iter()
                        .find(|id| !order.contains(id))
                        .and_then(|&id| graph.node(id).ok())
                        .map(|n| n.name.clone())
                        .unwrap_or_default(),
                },
            });
        }
        Ok(order)
    }

    /// Values an op node still to be evaluated after `order` reads.
    fn live_after(&self, graph: &Graph, order: &[NodeId]) -> Result<HashSet<ValueRef>, PassError> {
        let done: HashSet<NodeId> = order.iter().copied().collect();
        let mut live = HashSet::new();
        for id in graph.node_ids() {
            let is_op = graph
                .node(id)
                .is_ok_and(|n| matches!(n.kind, NodeKind::Op(_)));
            if is_op && !self.evaluated.contains(&id) && !done.contains(&id) {
                live.extend(graph.node_inputs(id));
            }
        }
        Ok(live)
    }

    /// A graph input's rows for one chunk (graph inputs are never cached: slicing is cheap).
    fn input_value(
        &self,
        graph: &Graph,
        v: ValueRef,
        start: usize,
        len: usize,
    ) -> Result<Tensor, PassError> {
        let index = graph.inputs().iter().position(|&id| id == v.node);
        let Some(index) = index else {
            let name = graph
                .node(v.node)
                .map(|n| n.name.clone())
                .unwrap_or_default();
            return Err(self.missing(graph, &name));
        };
        let mut rows = self.data.rows(self.pass, start, start + len, 1)?;
        Ok(rows.swap_remove(index))
    }

    fn missing(&self, graph: &Graph, node: &str) -> PassError {
        PassError::BadCalibration {
            pass: self.pass,
            reason: format!(
                "calibrating `{}`: a value node `{node}` reads was not computed",
                graph.name
            ),
        }
    }

    /// Chunk `c`'s cached values, read back from disk if they were spilled.
    fn take(&mut self, c: usize) -> Result<HashMap<ValueRef, Tensor>, PassError> {
        let store = std::mem::replace(&mut self.chunks[c].values, Store::Spilled(Vec::new()));
        match store {
            Store::Resident(values) => {
                self.resident -= bytes_of(&values);
                Ok(values)
            }
            Store::Spilled(entries) => {
                let mut values = HashMap::with_capacity(entries.len());
                for (v, dtype, shape, offset, len) in entries {
                    let mut buf = vec![0u8; len];
                    let file = self.spill_file()?;
                    file.seek(SeekFrom::Start(offset))
                        .and_then(|_| file.read_exact(&mut buf))
                        .map_err(|e| self.io_error("read back", e))?;
                    let t = TensorData::from_le_bytes(dtype, &buf)
                        .and_then(|d| Tensor::new(shape, d).ok())
                        .ok_or_else(|| {
                            self.io_error("decode", std::io::ErrorKind::InvalidData.into())
                        })?;
                    values.insert(v, t);
                }
                Ok(values)
            }
        }
    }

    /// Stores chunk `c`'s values: in memory while the budget allows, else on disk.
    fn put(&mut self, c: usize, values: HashMap<ValueRef, Tensor>) -> Result<(), PassError> {
        let bytes = bytes_of(&values);
        if self.resident + bytes <= self.budget {
            self.resident += bytes;
            self.chunks[c].values = Store::Resident(values);
            return Ok(());
        }
        let mut entries = Vec::with_capacity(values.len());
        for (v, t) in values {
            let raw = t.data().to_le_bytes();
            let file = self.spill_file()?;
            let offset = file
                .seek(SeekFrom::End(0))
                .and_then(|off| file.write_all(&raw).map(|_| off))
                .map_err(|e| self.io_error("write", e))?;
            entries.push((v, t.dtype(), t.shape().to_vec(), offset, raw.len()));
        }
        self.chunks[c].values = Store::Spilled(entries);
        Ok(())
    }

    fn spill_file(&mut self) -> Result<&mut File, PassError> {
        match self.spill {
            Some(ref mut file) => Ok(file),
            None => {
                let file = tempfile::tempfile().map_err(|e| self.io_error("create", e))?;
                Ok(self.spill.insert(file))
            }
        }
    }

    fn io_error(&self, what: &str, e: std::io::Error) -> PassError {
        PassError::BadCalibration {
            pass: self.pass,
            reason: format!("cannot {what} the temporary file of cached activations: {e}"),
        }
    }

    /// Spilled chunks (for tests and the memory report).
    #[cfg(test)]
    fn spilled(&self) -> usize {
        self.chunks
            .iter()
            .filter(|c| matches!(&c.values, Store::Spilled(e) if !e.is_empty()))
            .count()
    }
}

fn bytes_of(values: &HashMap<ValueRef, Tensor>) -> usize {
    values
        .values()
        .map(|t| t.len() * t.dtype().size_bytes())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibrate::pruned;
    use std::sync::Arc;
    use strata_ir::ops::{BinaryOp, Gemm, UnaryOp};
    use strata_ir::{Dim, Op, Shape, TensorType};

    /// x → Relu → Gemm(w1) → Relu → Add(skip from the first Relu) → Gemm(w2): a skip
    /// connection keeps a value live across a layer.
    fn net() -> (Graph, ValueRef, ValueRef, ValueRef) {
        let mut g = Graph::new("net");
        let ty = TensorType::new(DType::F32, Shape(vec![Dim::Batch, Dim::Known(4)]));
        let x = g.add_input("x", ty);
        let gemm = Op::Gemm(Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: true,
            has_c: false,
        });
        let w = |g: &mut Graph, name: &str, s: f32| {
            let data = (0..16).map(|i| (i as f32 * s).sin()).collect();
            g.add_constant(name, Arc::new(Tensor::from_f32(vec![4, 4], data).unwrap()))
        };
        let op = |g: &mut Graph, name: &str, op: Op, ins: &[ValueRef]| {
            let id = g
                .add_op_inferred(name, op, ins, vec![name.to_string()])
                .unwrap();
            ValueRef::first(id)
        };
        let relu = Op::Unary(UnaryOp::Relu);
        let r0 = op(&mut g, "r0", relu.clone(), &[x]);
        let w1 = w(&mut g, "w1", 0.7);
        let l1 = op(&mut g, "l1", gemm.clone(), &[r0, w1]);
        let r1 = op(&mut g, "r1", relu, &[l1]);
        let s = op(&mut g, "s", Op::Binary(BinaryOp::Add), &[r1, r0]);
        let w2 = w(&mut g, "w2", 1.3);
        let l2 = op(&mut g, "l2", gemm, &[s, w2]);
        g.set_outputs(vec![l2]);
        (g, r0, s, l2)
    }

    fn samples(n: usize) -> Vec<Tensor> {
        let data = (0..n * 4).map(|i| (i as f32 * 0.37).cos() * 2.0).collect();
        vec![Tensor::from_f32(vec![n, 4], data).unwrap()]
    }

    /// What the frontier must reproduce: the pruned prefix run on all samples at once.
    fn reference(g: &Graph, v: ValueRef, inputs: &[Tensor]) -> Tensor {
        let p = pruned(g, &[v]).unwrap();
        strata_runtime::run(&p, inputs).unwrap().remove(0)
    }

    fn collect(f: &mut Frontier<'_>, g: &Graph, v: ValueRef) -> Vec<f32> {
        let mut out = Vec::new();
        f.visit(g, v, |_, t| {
            out.extend_from_slice(t.as_f32().unwrap());
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn advancing_layer_by_layer_matches_running_each_prefix() {
        let (g, r0, s, l2) = net();
        let inputs = samples(600); // three chunks of 256, 256, 88
        let data = CalibrationData::new("t", &g, Some(&inputs), None).unwrap();
        let mut f = Frontier::new("t", &data);
        for v in [r0, s, l2] {
            f.advance(&g, v).unwrap();
            let want = reference(&g, v, &inputs);
            assert_eq!(collect(&mut f, &g, v), want.as_f32().unwrap());
        }
        // Every op ran exactly once per chunk: nothing is left to evaluate.
        assert!(f.pending(&g, l2).unwrap().is_empty());
    }

    #[test]
    fn values_nothing_reads_any_more_are_dropped() {
        let (g, r0, s, _) = net();
        let inputs = samples(10);
        let data = CalibrationData::new("t", &g, Some(&inputs), None).unwrap();
        let mut f = Frontier::new("t", &data);
        f.advance(&g, r0).unwrap();
        f.advance(&g, s).unwrap();
        // Only `s` (read by l2) is live: r0, l1 and r1 were freed.
        let Store::Resident(values) = &f.chunks[0].values else {
            panic!("spilled under a 1 GiB budget");
        };
        assert_eq!(values.keys().copied().collect::<Vec<_>>(), vec![s]);
    }

    #[test]
    fn chunks_over_the_budget_spill_to_disk_and_read_back_exactly() {
        let (g, r0, s, l2) = net();
        let inputs = samples(600);
        let data = CalibrationData::new("t", &g, Some(&inputs), None).unwrap();
        // Room for about one chunk of one value: the other chunks go to disk.
        let mut f = Frontier::with_budget("t", &data, 256 * 4 * 4 + 1);
        for v in [r0, s, l2] {
            f.advance(&g, v).unwrap();
            let want = reference(&g, v, &inputs);
            assert_eq!(collect(&mut f, &g, v), want.as_f32().unwrap());
        }
        assert!(f.spilled() >= 1, "nothing was spilled");
    }

    #[test]
    fn a_node_added_after_its_input_was_reached_is_evaluated_later() {
        let (mut g, r0, _, _) = net();
        let inputs = samples(8);
        let data = CalibrationData::new("t", &g, Some(&inputs), None).unwrap();
        let mut f = Frontier::new("t", &data);
        f.advance(&g, r0).unwrap();
        // Replace r0's consumer chain start with a new op reading the cached value.
        let id = g
            .add_op_inferred(
                "sig",
                Op::Unary(UnaryOp::Sigmoid),
                &[r0],
                vec!["sig".into()],
            )
            .unwrap();
        let neg = ValueRef::first(id);
        g.set_outputs(vec![neg]);
        f.advance(&g, neg).unwrap();
        let want = reference(&g, neg, &inputs);
        assert_eq!(collect(&mut f, &g, neg), want.as_f32().unwrap());
    }
}
