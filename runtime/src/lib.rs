//! Strata's reference runtime: an interpreter for the graph IR.
//!
//! Every other stage (passes, the C and MLIR backends, quantized kernels) is checked against
//! this crate, so it favours obviously-correct semantics that follow the ONNX reference, while
//! using GEMM-based convolution and rayon so that real test sets run in seconds.

mod adaptive;
pub mod autodiff;
mod chunk;
mod error;
mod interpret;
pub mod isa;
pub mod kernels;

use std::collections::{BTreeMap, HashSet};

use strata_ir::{Dim, Graph, Node, NodeId, NodeKind, Op, Tensor};

use interpret::{interpret, Visit};

pub use adaptive::AdaptiveRun;
pub use error::RuntimeError;
pub use kernels::bitplane::PreparedCache;
pub use kernels::{eval_op, eval_op_with, QuantPath};

/// Threads of the pool the kernels run on (rayon's global pool; `RAYON_NUM_THREADS` sets it),
/// so benchmarks and reports can state the parallelism they measured.
pub fn threads() -> usize {
    rayon::current_num_threads()
}

/// Choices for running a graph with bit-plane layers; other ops ignore them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// Plane count for every bit-plane layer (`None`: each layer's default).
    pub planes: Option<u8>,
    /// Per-layer plane counts by node name; they override `planes`.
    pub per_layer: BTreeMap<String, u8>,
    /// Integer (device) or dequantized float path for bit-plane layers.
    pub path: QuantPath,
}

/// [`run`] with bit-plane options: the plane count per layer and the computation path.
/// Naming a node in `per_layer` that is not a bit-plane layer is an error, so a typo in a
/// layer name cannot silently run the model at the wrong precision.
pub fn run_with(
    graph: &Graph,
    inputs: &[Tensor],
    options: &RunOptions,
) -> Result<Vec<Tensor>, RuntimeError> {
    Session::new(graph).run_with(inputs, options)
}

/// A graph ready for repeated runs: each bit-plane layer's `k`-plane codes are rebuilt from
/// its planes (and packed for the conv kernel) the first time a run needs that `k`, then
/// reused by every later run and batch chunk, so a batch-1 caller pays for the unpacking
/// once instead of on every call. [`run_with`] uses a session for one call (its chunks share
/// it). Holds 2 bytes per weight (4 for a convolution) per plane count used, until dropped;
/// only layers whose weights are graph constants are kept.
pub struct Session<'g> {
    graph: &'g Graph,
    prepared: PreparedCache,
    /// Bit-plane nodes whose every weight input is a graph constant.
    constant_layers: HashSet<NodeId>,
}

impl<'g> Session<'g> {
    pub fn new(graph: &'g Graph) -> Self {
        let constant_layers = graph
            .node_ids()
            .filter(|&id| {
                graph
                    .node(id)
                    .is_ok_and(|n| matches!(n.kind, NodeKind::Op(Op::Bitplane(_))))
                    && graph.node_inputs(id).iter().skip(1).all(|v| {
                        graph
                            .node(v.node)
                            .is_ok_and(|n| matches!(n.kind, NodeKind::Constant(_)))
                    })
            })
            .collect();
        Session {
            graph,
            prepared: PreparedCache::default(),
            constant_layers,
        }
    }

    /// [`run`] through this session.
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>, RuntimeError> {
        self.run_with(inputs, &RunOptions::default())
    }

    /// [`run_with`] through this session.
    pub fn run_with(
        &self,
        inputs: &[Tensor],
        options: &RunOptions,
    ) -> Result<Vec<Tensor>, RuntimeError> {
        check_layers(self.graph, options)?;
        let runner = Runner {
            graph: self.graph,
            options,
            session: self,
        };
        // The whole run on one pool thread: every kernel's parallel loop then starts from a
        // worker instead of handing its work to the pool and blocking, a round trip per op
        // that dominated small batches (no effect on the results: the kernels are the same).
        rayon::scope(|_| runner.run(inputs, None))
    }

    /// The codes prepared so far, by (node, plane count).
    pub fn prepared(&self) -> &PreparedCache {
        &self.prepared
    }

    /// Where the bit-plane node `id` keeps its prepared codes, if it may.
    fn cache_for(&self, id: NodeId) -> Option<(&PreparedCache, NodeId)> {
        self.constant_layers
            .contains(&id)
            .then_some((&self.prepared, id))
    }
}

pub(crate) fn check_layers(graph: &Graph, options: &RunOptions) -> Result<(), RuntimeError> {
    for name in options.per_layer.keys() {
        let found = graph.node_ids().any(|id| {
            graph
                .node(id)
                .is_ok_and(|n| &n.name == name && matches!(n.kind, NodeKind::Op(Op::Bitplane(_))))
        });
        if !found {
            return Err(RuntimeError::UnknownLayer { node: name.clone() });
        }
    }
    Ok(())
}

/// Executes `graph` on `inputs` (in graph-input order) and returns the graph outputs in order.
///
/// Inputs are checked against the declared input types; the batch dimension `N` binds to the
/// actual size of the first input that has it and must agree across inputs. Intermediate
/// values are dropped right after their last consumer runs, so memory stays bounded by the
/// widest point of the graph rather than its total size.
pub fn run(graph: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, RuntimeError> {
    Session::new(graph).run(inputs)
}

/// Rows `start..start + len` of a tensor along axis 0.
pub(crate) fn slice_batch(t: &Tensor, start: usize, len: usize) -> Result<Tensor, RuntimeError> {
    let op = strata_ir::ops::Slice {
        starts: vec![start as i64],
        ends: vec![(start + len) as i64],
        axes: vec![0],
        steps: vec![1],
    };
    kernels::layout::slice(&op, t)
}

/// Wall-clock time spent in one op node, as reported by [`run_profiled`].
#[derive(Debug, Clone, PartialEq)]
pub struct NodeTiming {
    /// The node's name, as in the IR text.
    pub node: String,
    /// The op mnemonic, so timings can be grouped by op kind.
    pub op: &'static str,
    /// Total wall-clock seconds, summed over batch chunks when the batch was chunked.
    pub seconds: f64,
}

/// [`run`] that also reports the time each op node took, in execution order; for finding
/// the slow layer of a model (`strata run --profile`, the speed example).
pub fn run_profiled(
    graph: &Graph,
    inputs: &[Tensor],
) -> Result<(Vec<Tensor>, Vec<NodeTiming>), RuntimeError> {
    let mut timings = Vec::new();
    let options = &RunOptions::default();
    let session = &Session::new(graph);
    let outputs = Runner {
        graph,
        options,
        session,
    }
    .run(inputs, Some(&mut timings))?;
    Ok((outputs, timings))
}

/// A graph with the options it runs under, shared by the chunked and the whole-batch driver.
#[derive(Clone, Copy)]
struct Runner<'a> {
    graph: &'a Graph,
    options: &'a RunOptions,
    session: &'a Session<'a>,
}

/// Where [`run_profiled`] collects the time of each node (`None`: not profiling).
type Timings<'a> = Option<&'a mut Vec<NodeTiming>>;
type Outputs = Result<Vec<Tensor>, RuntimeError>;

impl Runner<'_> {
    /// Runs the batch in chunks when the graph is provably per-sample (see `chunk.rs`), else whole.
    fn run(self, inputs: &[Tensor], mut timings: Timings) -> Outputs {
        let Runner { graph, .. } = self;
        graph.topo_order()?;
        let batch = check_inputs(graph, inputs)?;
        let chunk = match (batch, chunk::plan(graph)) {
            (Some(b), Some(c)) if b > c => c,
            _ => return self.whole(inputs, timings),
        };
        let batch = batch.unwrap_or(0);
        let batched: Vec<bool> = graph
            .inputs()
            .iter()
            .map(|&id| {
                graph
                    .node(id)
                    .ok()
                    .and_then(|n| n.outputs.first())
                    .is_some_and(|v| v.ty.shape.has_batch())
            })
            .collect();
        let out_batched: Vec<bool> = graph
            .outputs()
            .iter()
            .map(|&v| graph.value(v).is_ok_and(|v| v.ty.shape.has_batch()))
            .collect();
        let mut pieces: Vec<Vec<Tensor>> = vec![Vec::new(); graph.outputs().len()];
        let mut start = 0;
        while start < batch {
            let len = chunk.min(batch - start);
            let chunk_inputs: Vec<Tensor> = inputs
                .iter()
                .zip(&batched)
                .map(|(t, &b)| {
                    if b {
                        slice_batch(t, start, len)
                    } else {
                        Ok(t.clone())
                    }
                })
                .collect::<Result<_, _>>()?;
            let mut chunk_timings = Vec::new();
            let outs = self.whole(
                &chunk_inputs,
                timings.is_some().then_some(&mut chunk_timings),
            )?;
            if let Some(t) = timings.as_deref_mut() {
                if t.is_empty() {
                    *t = chunk_timings;
                } else {
                    for (acc, c) in t.iter_mut().zip(chunk_timings) {
                        acc.seconds += c.seconds;
                    }
                }
            }
            for (i, out) in outs.into_iter().enumerate() {
                if out_batched[i] {
                    if out.shape().first() != Some(&len) {
                        // The declared types promised a per-sample output but the op disagreed:
                        // do not guess, run the batch whole.
                        return self.whole(inputs, timings);
                    }
                    pieces[i].push(out);
                } else if start == 0 {
                    pieces[i].push(out);
                }
            }
            start += len;
        }
        pieces
            .into_iter()
            .map(|mut parts| {
                if parts.len() == 1 {
                    if let Some(only) = parts.pop() {
                        return Ok(only);
                    }
                }
                let refs: Vec<&Tensor> = parts.iter().collect();
                kernels::layout::concat(0, &refs)
            })
            .collect()
    }

    /// Executes the whole graph on the given inputs in one pass.
    fn whole(self, inputs: &[Tensor], timings: Timings) -> Outputs {
        let batch = check_inputs(self.graph, inputs)?.unwrap_or(1);
        let mut visit = RunVisit {
            options: self.options,
            session: self.session,
            timings,
        };
        let values = interpret(self.graph, inputs, batch, &mut visit)?;
        interpret::outputs(self.graph, &values)
    }
}

/// Inference: each op at its layer's plane count, consuming its first input when it can,
/// timed when profiling.
pub(crate) struct RunVisit<'a, 'b> {
    pub(crate) options: &'a RunOptions,
    pub(crate) session: &'a Session<'a>,
    pub(crate) timings: Timings<'b>,
}

impl Visit for RunVisit<'_, '_> {
    type Error = RuntimeError;
    const RETAIN: bool = false;

    fn eval(
        &mut self,
        id: NodeId,
        node: &Node,
        op: &Op,
        owned_first: Option<Tensor>,
        rest: &[&Tensor],
    ) -> Outputs {
        let started = self.timings.is_some().then(std::time::Instant::now);
        let result = match owned_first {
            Some(t) => kernels::eval_op_owned(op, t, rest),
            None => {
                let options = self.options;
                let planes = options
                    .per_layer
                    .get(&node.name)
                    .copied()
                    .or(options.planes);
                let cache = self.session.cache_for(id);
                kernels::eval_op_cached(op, rest, planes, options.path, cache)
            }
        }
        .map_err(|e| e.in_node(&node.name, op.mnemonic()))?;
        if let (Some(t), Some(start)) = (self.timings.as_deref_mut(), started) {
            t.push(NodeTiming {
                node: node.name.clone(),
                op: op.mnemonic(),
                seconds: start.elapsed().as_secs_f64(),
            });
        }
        Ok(result)
    }
}

/// An op must produce exactly the outputs its node declares.
pub(crate) fn check_output_count(
    node: &Node,
    op: &Op,
    produced: usize,
) -> Result<(), RuntimeError> {
    if produced == node.outputs.len() {
        return Ok(());
    }
    Err(RuntimeError::OutputCount {
        node: node.name.clone(),
        op: op.mnemonic(),
        declared: node.outputs.len(),
        produced,
    })
}

/// Checks count, dtype, rank and known dimensions of the inputs and returns the batch size.
pub(crate) fn check_inputs(
    graph: &Graph,
    inputs: &[Tensor],
) -> Result<Option<usize>, RuntimeError> {
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
    Ok(batch)
}
