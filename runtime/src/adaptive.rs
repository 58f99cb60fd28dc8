//! Running an adaptive-precision policy (`strata_ir::adaptive`): every sample starts at the
//! policy's first stage; the samples whose output is not confident enough run again at the
//! next stage, and so on. Each stage is the integer path at that stage's per-layer counts, so
//! a sample's output is exactly what `run_with` gives it at the stage that answered.
//!
//! An escalated sample does not rerun the whole network: the values its previous stage
//! computed that the next stage would compute alike (every node that reads, directly or not,
//! no layer whose count changes: `strata_ir::adaptive::rerun_nodes`) are kept, and only the rest runs
//! again — what `strata_ir::adaptive::escalation_bit_ops` counts. That needs a graph whose
//! ops treat samples independently with the batch on axis 0 (the runtime's chunking rule),
//! so that a kept value's rows are the samples'; any other graph reruns every stage whole.

use std::collections::{HashMap, HashSet};

use strata_ir::adaptive::{rerun_nodes, AdaptivePolicy};
use strata_ir::{Graph, NodeKind, Tensor, ValueRef};

use crate::interpret::{interpret_reusing, Reuse};
use crate::{chunk, kernels, QuantPath, RunOptions, RunVisit, RuntimeError, Session};

/// What [`Session::run_adaptive`] computed.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveRun {
    /// The graph's output, every sample from the stage that answered it.
    pub output: Tensor,
    /// The index of the stage that answered each sample.
    pub stages: Vec<u8>,
    /// How many samples each stage ran (stage `i` runs every sample stage `i − 1` passed on).
    pub ran: Vec<usize>,
}

impl Session<'_> {
    /// Runs `input` (one graph input, batch on axis 0; one float output, batch on axis 0)
    /// through `policy`, which must already be [`AdaptivePolicy::effective`] for the planes
    /// present.
    pub fn run_adaptive(
        &self,
        input: &Tensor,
        policy: &AdaptivePolicy,
    ) -> Result<AdaptiveRun, RuntimeError> {
        let shape = input.shape().to_vec();
        let Some(&n) = shape.first() else {
            return Err(RuntimeError::Adaptive(
                "the input needs a batch axis (axis 0)".into(),
            ));
        };
        match self.reuse_chunk() {
            Some(chunk) if n > 0 => {
                rayon::scope(|_| self.run_adaptive_reusing(input, policy, n, chunk))
            }
            _ => self.run_adaptive_whole(input, policy, n),
        }
    }

    /// Whether [`Session::run_adaptive`] keeps a stage's values for the next (see the module
    /// documentation): the graph's ops are per-sample with the batch on axis 0.
    pub fn reuses_across_stages(&self) -> bool {
        self.reuse_chunk().is_some()
    }

    /// The samples per pass of the reusing cascade, when the graph allows it.
    fn reuse_chunk(&self) -> Option<usize> {
        let one_to_one = self.graph.inputs().len() == 1 && self.graph.outputs().len() == 1;
        one_to_one.then(|| chunk::plan(self.graph)).flatten()
    }

    /// The cascade in chunks of samples, each escalated sample rerunning only the nodes
    /// whose values change (`rerun_nodes`), from the values its previous stage kept.
    fn run_adaptive_reusing(
        &self,
        input: &Tensor,
        policy: &AdaptivePolicy,
        n: usize,
        chunk: usize,
    ) -> Result<AdaptiveRun, RuntimeError> {
        let graph = self.graph;
        crate::check_inputs(graph, std::slice::from_ref(input))?;
        let options: Vec<RunOptions> = policy
            .stages
            .iter()
            .map(|stage| RunOptions {
                planes: None,
                per_layer: stage.layer_planes.clone(),
                path: QuantPath::Integer,
            })
            .collect();
        for o in &options {
            crate::check_layers(graph, o)?;
        }
        // handed[s]: the values stage s keeps for stage s + 1.
        let handed = policy
            .stages
            .windows(2)
            .map(|w| handed_on(graph, &w[0].layer_planes, &w[1].layer_planes))
            .collect::<Result<Vec<_>, _>>()?;
        let out_ref = graph.outputs()[0];
        let mut answers = Answers::new(n);
        let mut ran = vec![0usize; options.len()];
        for start in (0..n).step_by(chunk) {
            let len = chunk.min(n - start);
            let mut samples: Vec<usize> = (start..start + len).collect();
            let mut x = crate::slice_batch(input, start, len)?;
            let mut given = HashMap::new();
            for (s, opts) in options.iter().enumerate() {
                ran[s] += samples.len();
                let mut visit = RunVisit {
                    options: opts,
                    session: self,
                    timings: None,
                };
                let reuse = Reuse {
                    given: std::mem::take(&mut given),
                    keep: handed.get(s),
                };
                let inputs = std::slice::from_ref(&x);
                let mut values =
                    interpret_reusing(graph, inputs, samples.len(), &mut visit, reuse)?;
                let y = values.get(&out_ref).map(|v| v.get()).ok_or_else(|| {
                    crate::interpret::missing(graph, "<graph outputs>", 0, out_ref)
                })?;
                let next = answers.take(policy, s, y, &samples)?;
                let Some(keep) = handed.get(s).filter(|_| !next.is_empty()) else {
                    break;
                };
                let rows =
                    Tensor::from_i64(vec![next.len()], next.iter().map(|&j| j as i64).collect())
                        .map_err(|e| RuntimeError::Adaptive(e.to_string()))?;
                for &v in keep {
                    let Some(slot) = values.remove(&v) else {
                        return Err(crate::interpret::missing(graph, "<next stage>", 0, v));
                    };
                    let t = slot.get();
                    let batched = graph.value(v)?.ty.shape.has_batch();
                    given.insert(
                        v,
                        if batched {
                            kernels::layout::gather(0, t, &rows)?
                        } else {
                            t.clone()
                        },
                    );
                }
                drop(values);
                x = kernels::layout::gather(0, &x, &rows)?;
                samples = next.iter().map(|&j| samples[j]).collect();
            }
        }
        // As the rerunning cascade counts: the stages no sample reached are not listed.
        while ran.last() == Some(&0) {
            ran.pop();
        }
        let (output, stages) = answers
            .finish()?
            .ok_or_else(|| RuntimeError::Adaptive("no sample was run".into()))?;
        Ok(AdaptiveRun {
            output,
            stages,
            ran,
        })
    }

    /// [`Session::run_adaptive`] rerunning the whole graph at every stage, keeping nothing:
    /// what a graph that is not per-sample runs, and the reference the reusing cascade is
    /// tested against (the same outputs, stages and counts).
    pub fn run_adaptive_rerunning(
        &self,
        input: &Tensor,
        policy: &AdaptivePolicy,
    ) -> Result<AdaptiveRun, RuntimeError> {
        let n = input.shape().first().copied().ok_or_else(|| {
            RuntimeError::Adaptive("the input needs a batch axis (axis 0)".into())
        })?;
        self.run_adaptive_whole(input, policy, n)
    }

    fn run_adaptive_whole(
        &self,
        input: &Tensor,
        policy: &AdaptivePolicy,
        n: usize,
    ) -> Result<AdaptiveRun, RuntimeError> {
        let shape = input.shape().to_vec();
        let values = input
            .as_f32()
            .ok_or_else(|| RuntimeError::Adaptive("the input must be float32".into()))?;
        let per_in = values.len().checked_div(n).unwrap_or(0);
        let mut pending: Vec<usize> = (0..n).collect();
        let mut answers = Answers::new(n);
        let mut ran = Vec::with_capacity(policy.stages.len());
        for (s, stage) in policy.stages.iter().enumerate() {
            if pending.is_empty() {
                break;
            }
            ran.push(pending.len());
            let mut sub_shape = shape.clone();
            sub_shape[0] = pending.len();
            let mut sub = Vec::with_capacity(pending.len() * per_in);
            for &i in &pending {
                sub.extend_from_slice(&values[i * per_in..(i + 1) * per_in]);
            }
            let x = Tensor::from_f32(sub_shape, sub)
                .map_err(|e| RuntimeError::Adaptive(e.to_string()))?;
            let options = RunOptions {
                planes: None,
                per_layer: stage.layer_planes.clone(),
                path: QuantPath::Integer,
            };
            let outs = self.run_with(&[x], &options)?;
            let [y] = &outs[..] else {
                return Err(RuntimeError::Adaptive(format!(
                    "the graph has {} outputs; adaptive precision needs one",
                    outs.len()
                )));
            };
            let next = answers.take(policy, s, y, &pending)?;
            pending = next.into_iter().map(|j| pending[j]).collect();
        }
        let (output, stages) = match answers.finish()? {
            Some(done) => done,
            // No samples: run the first stage on the empty batch for the output's shape.
            None => {
                let options = RunOptions {
                    planes: None,
                    per_layer: policy
                        .stages
                        .first()
                        .map(|s| s.layer_planes.clone())
                        .unwrap_or_default(),
                    path: QuantPath::Integer,
                };
                let outs = self.run_with(std::slice::from_ref(input), &options)?;
                let y = outs
                    .into_iter()
                    .next()
                    .ok_or_else(|| RuntimeError::Adaptive("the graph has no output".into()))?;
                return Ok(AdaptiveRun {
                    output: y,
                    stages: Vec::new(),
                    ran,
                });
            }
        };
        Ok(AdaptiveRun {
            output,
            stages,
            ran,
        })
    }
}

/// The values stage `from` keeps for stage `to`: those computed by nodes `to` does not rerun
/// and read by nodes it does (or the graph output itself, when nothing changes it).
fn handed_on(
    graph: &Graph,
    from: &std::collections::BTreeMap<String, u8>,
    to: &std::collections::BTreeMap<String, u8>,
) -> Result<HashSet<ValueRef>, RuntimeError> {
    let rerun = rerun_nodes(graph, from, to)?;
    let is_op = |v: &ValueRef| {
        graph
            .node(v.node)
            .is_ok_and(|n| matches!(n.kind, NodeKind::Op(_)))
    };
    let mut kept: HashSet<ValueRef> = rerun
        .iter()
        .flat_map(|&id| graph.node_inputs(id))
        .filter(|v| !rerun.contains(&v.node) && is_op(v))
        .collect();
    kept.extend(
        graph
            .outputs()
            .iter()
            .filter(|v| !rerun.contains(&v.node) && is_op(v)),
    );
    Ok(kept)
}

/// The cascade's answers so far: each sample's output row and the stage that gave it.
struct Answers {
    n: usize,
    /// The output's shape (axis 0: all `n` samples) and rows, from the first stage run.
    rows: Option<(Vec<usize>, Vec<f32>)>,
    stages: Vec<u8>,
}

impl Answers {
    fn new(n: usize) -> Self {
        Answers {
            n,
            rows: None,
            stages: vec![0; n],
        }
    }

    /// Takes stage `s`'s output `y` for `samples` (sample indices, in `y`'s row order):
    /// keeps the rows `policy` accepts and returns the positions in `samples` of the rest.
    fn take(
        &mut self,
        policy: &AdaptivePolicy,
        s: usize,
        y: &Tensor,
        samples: &[usize],
    ) -> Result<Vec<usize>, RuntimeError> {
        let y_values = stage_output(y, samples.len())?;
        let per = y_values.len() / samples.len().max(1);
        let n = self.n;
        let (_, rows) = self.rows.get_or_insert_with(|| {
            let mut shape = y.shape().to_vec();
            shape[0] = n;
            (shape, vec![0f32; n * per])
        });
        let mut rest = Vec::new();
        for (j, &i) in samples.iter().enumerate() {
            let row = &y_values[j * per..(j + 1) * per];
            if policy.accepts(s, row) {
                rows[i * per..(i + 1) * per].copy_from_slice(row);
                self.stages[i] = s as u8;
            } else {
                rest.push(j);
            }
        }
        Ok(rest)
    }

    /// The output tensor and each sample's stage; `None` when no stage ran.
    fn finish(self) -> Result<Option<(Tensor, Vec<u8>)>, RuntimeError> {
        let Some((shape, rows)) = self.rows else {
            return Ok(None);
        };
        let output =
            Tensor::from_f32(shape, rows).map_err(|e| RuntimeError::Adaptive(e.to_string()))?;
        Ok(Some((output, self.stages)))
    }
}

/// A stage's output as floats, checked to have one row per sample run.
fn stage_output(y: &Tensor, samples: usize) -> Result<&[f32], RuntimeError> {
    if y.shape().first() != Some(&samples) {
        return Err(RuntimeError::Adaptive(format!(
            "the output's axis 0 must be the batch ({samples} samples), got shape {:?}",
            y.shape()
        )));
    }
    y.as_f32()
        .ok_or_else(|| RuntimeError::Adaptive("the output must be float32".into()))
}
