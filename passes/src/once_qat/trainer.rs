//! The forward and backward passes of `once-qat`: the network at one plane count with every
//! quantizable layer fake-quantized, its loss against the FP32 teacher, and the gradients of
//! the shared weights and of that plane count's side tables.
//!
//! The plane counts of one step are independent given the shared weights, so they run in
//! parallel (rayon, one task per plane count, each using the runtime's own parallel im2col +
//! GEMM kernels inside); their results are collected in plane-count order and summed in that
//! order, so the result does not depend on the thread count or on timing.

use std::collections::HashMap;

use rayon::prelude::*;
use strata_ir::ops::{Conv, Gemm};
use strata_ir::quant::ActBits;
use strata_ir::{Graph, Node, NodeId, Op, Tensor, TensorData};
use strata_runtime::autodiff::fake_quant::{lsq_grad_scale, ActFakeQuant, WeightFakeQuant};
use strata_runtime::autodiff::{backward_op, forward_with_tape_by, loss, Tape};
use strata_runtime::eval_op;
use strata_runtime::RuntimeError;

use crate::bitplane_rewrite::half_precision;
use crate::vl_quantize::{LayerKind, QuantLayer};
use crate::PassError;

pub(super) const PASS: &str = "once-qat";

/// Trainable side table of one layer at one plane count.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct KState {
    pub alpha: Vec<f32>,
    pub beta: Vec<f32>,
    pub bias: Vec<f32>,
    pub act_scale: f32,
    pub act_zero: f32,
}

impl KState {
    /// The table as the container stores it (alpha, beta and bias in half precision), so
    /// that validation scores exactly what will be shipped.
    pub fn stored(&self) -> KState {
        let h = |v: &[f32]| v.iter().map(|&x| half_precision(x)).collect();
        KState {
            alpha: h(&self.alpha),
            beta: h(&self.beta),
            bias: h(&self.bias),
            ..self.clone()
        }
    }
}

/// A quantizable layer during training.
pub(super) struct Layer {
    pub view: QuantLayer,
    /// The layer's op with the weight `[R, …]` and the bias made explicit: Conv with bias, or
    /// Gemm with `trans_b` and a `[R]` C.
    pub op: Op,
    /// Shape `op` expects for the weight.
    pub weight_shape: Vec<usize>,
    /// Shared float weights `[R, K]` (the view of `vl-quantize`, without the Gemm gain).
    pub w: Vec<f32>,
    /// Fixed per-row code scales `s_c`.
    pub scales: Vec<f32>,
    /// One side table per trained plane count, in plane-count order.
    pub k: Vec<KState>,
    /// Multiply-accumulates of the layer's forward pass per sample.
    pub macs: u64,
}

/// Gradients of one layer at one plane count.
pub(super) struct LayerGrad {
    pub w: Vec<f32>,
    pub alpha: Vec<f32>,
    pub beta: Vec<f32>,
    pub bias: Vec<f32>,
    pub act_scale: f32,
}

/// One plane count's loss (`λ`-free) and gradients (of `λ·loss`) for one batch.
pub(super) struct KResult {
    pub loss: f32,
    /// Per layer; `None` for a layer no gradient reached.
    pub grads: Vec<Option<LayerGrad>>,
}

/// A batch: the inputs, the teacher's logits for it and optional labels.
pub(super) struct Batch {
    pub inputs: Vec<Tensor>,
    pub teacher: Tensor,
    pub labels: Option<Tensor>,
}

/// What the forward pass of one layer keeps for its backward pass.
struct LayerSaved {
    x: Tensor,
    xhat: Tensor,
    wk: Tensor,
    bias: Tensor,
    wfq: WeightFakeQuant,
    afq: ActFakeQuant,
}

/// Everything one forward pass produced.
struct Forward {
    logits: Tensor,
    tape: Tape,
    saved: HashMap<usize, LayerSaved>,
}

/// An error inside a taped pass: the trainer's own, or the shared loop's (which names its
/// node itself).
enum TapeError {
    Pass(PassError),
    Runtime(RuntimeError),
}

impl From<RuntimeError> for TapeError {
    fn from(e: RuntimeError) -> TapeError {
        TapeError::Runtime(e)
    }
}

impl From<PassError> for TapeError {
    fn from(e: PassError) -> TapeError {
        TapeError::Pass(e)
    }
}

impl From<TapeError> for PassError {
    fn from(e: TapeError) -> PassError {
        match e {
            TapeError::Pass(e) => e,
            TapeError::Runtime(e) => rt("<graph>")(e),
        }
    }
}

/// The training problem: graph, layers, and the fixed code parameters.
pub(super) struct Trainer<'g> {
    pub graph: &'g Graph,
    /// Node → index into `layers`.
    pub by_node: HashMap<NodeId, usize>,
    pub layers: Vec<Layer>,
    pub bits: u8,
    /// Activation bits per plane count (fake quantization and LSQ gradient scaling).
    pub act_bits: ActBits,
    pub plane_counts: Vec<u8>,
    /// Distillation temperature.
    pub temperature: f32,
    /// Weight of the cross-entropy term (with labels).
    pub ce_weight: f32,
}

pub(super) fn rt(node: &str) -> impl Fn(RuntimeError) -> PassError + '_ {
    move |source| PassError::Runtime {
        pass: PASS,
        node: node.to_string(),
        source: Box::new(source),
    }
}

pub(super) fn tensor(node: &str, shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor, PassError> {
    Tensor::from_f32(shape, data).map_err(|e| PassError::Rewrite {
        pass: PASS,
        node: node.to_string(),
        reason: e.to_string(),
    })
}

/// `T²·KL(teacher ‖ student)` at temperature `T` plus `ce_weight ×` softmax cross-entropy when
/// labels are given, and its gradient
/// with respect to the student's logits.
pub(super) fn objective(
    logits: &Tensor,
    teacher: &Tensor,
    labels: Option<&Tensor>,
    temperature: f32,
    ce_weight: f32,
) -> Result<(f32, Tensor), PassError> {
    let (mut l, mut g) =
        loss::kl_distillation(logits, teacher, temperature).map_err(rt("<loss>"))?;
    if let Some(lt) = labels {
        let (lc, gc) = loss::softmax_cross_entropy(logits, lt).map_err(rt("<loss>"))?;
        l += ce_weight * lc;
        if let (TensorData::F32(a), Some(b)) = (g.data_mut(), gc.as_f32()) {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += ce_weight * y);
        }
    }
    Ok((l, g))
}

/// The layer's op with an explicit `[R]` bias, the shape its weight must have, and its
/// forward multiply-accumulates per sample (the float layer's own count, [`Op::macs`]).
pub(super) fn explicit_op(
    graph: &Graph,
    layer: &QuantLayer,
) -> Result<(Op, Vec<usize>, u64), PassError> {
    let graph_err = |source| PassError::Graph { pass: PASS, source };
    let node = graph.node(layer.node).map_err(graph_err)?;
    let float_op = node.op().ok_or_else(|| PassError::Rewrite {
        pass: PASS,
        node: layer.name.clone(),
        reason: "is not an op node".to_string(),
    })?;
    let in_types = graph
        .node_inputs(layer.node)
        .into_iter()
        .map(|v| graph.value(v).map(|val| &val.ty))
        .collect::<Result<Vec<_>, _>>()
        .map_err(graph_err)?;
    let out_types: Vec<_> = node.outputs.iter().map(|v| &v.ty).collect();
    let macs = float_op
        .macs(&in_types, &out_types)
        .map_err(|source| PassError::Rewrite {
            pass: PASS,
            node: layer.name.clone(),
            reason: source.to_string(),
        })?;
    match &layer.kind {
        LayerKind::Conv(c) => {
            let w = graph
                .node_inputs(layer.node)
                .get(1)
                .and_then(|&v| graph.constant_value(v))
                .map(|t| t.shape().to_vec())
                .ok_or_else(|| PassError::Rewrite {
                    pass: PASS,
                    node: layer.name.clone(),
                    reason: "lost its constant weight".to_string(),
                })?;
            let op = Op::Conv(Conv {
                has_bias: true,
                ..c.clone()
            });
            Ok((op, w, macs))
        }
        LayerKind::Linear => Ok((
            Op::Gemm(Gemm {
                alpha: 1.0,
                beta: 1.0,
                trans_a: false,
                trans_b: true,
                has_c: true,
            }),
            vec![layer.rows, layer.cols],
            macs,
        )),
    }
}

impl Trainer<'_> {
    fn missing(&self, node: &str, slot: usize) -> PassError {
        PassError::Rewrite {
            pass: PASS,
            node: node.to_string(),
            reason: format!("input {slot} was not computed"),
        }
    }

    /// The shared float weights of every layer as `[R, K]` tensors (built once per step and
    /// read by every plane count).
    pub fn weight_tensors(&self) -> Result<Vec<Tensor>, PassError> {
        self.layers
            .iter()
            .map(|l| tensor(&l.view.name, vec![l.view.rows, l.view.cols], l.w.clone()))
            .collect()
    }

    /// Runs the student at plane count index `ki` with the side tables `tables` (one per
    /// layer); `keep` saves what the backward pass needs.
    fn forward(
        &self,
        inputs: &[Tensor],
        weights: &[Tensor],
        ki: usize,
        tables: &[&KState],
        keep: bool,
    ) -> Result<Forward, PassError> {
        let k = self.plane_counts[ki];
        let mut saved = HashMap::new();
        let (outputs, tape) = forward_with_tape_by(self.graph, inputs, |id, node, op, refs| {
            let Some(&li) = self.by_node.get(&id) else {
                return eval_op(op, refs).map_err(|e| rt(&node.name)(e).into());
            };
            let layer = &self.layers[li];
            let st = tables[li];
            // The layer's activation `x` is its first input.
            let x = refs.first().ok_or_else(|| self.missing(&node.name, 0))?;
            let afq = ActFakeQuant {
                bits: self.act_bits.of(k),
                scale: st.act_scale,
                zero: st.act_zero,
            };
            let xhat = afq.forward(x).map_err(rt(&node.name))?;
            let wfq = WeightFakeQuant {
                bits: self.bits,
                k,
                scale: layer.scales.clone(),
                alpha: st.alpha.clone(),
                beta: st.beta.clone(),
            };
            let wk = wfq.forward(&weights[li]).map_err(rt(&node.name))?;
            let wk = tensor(
                &node.name,
                layer.weight_shape.clone(),
                match wk.into_data() {
                    TensorData::F32(v) => v,
                    _ => Vec::new(),
                },
            )?;
            let bias = tensor(&node.name, vec![layer.view.rows], st.bias.clone())?;
            let mut y = eval_op(&layer.op, &[&xhat, &wk, &bias]).map_err(rt(&node.name))?;
            if keep {
                let x = (*x).clone();
                saved.insert(
                    li,
                    LayerSaved {
                        x,
                        xhat,
                        wk,
                        bias,
                        wfq,
                        afq,
                    },
                );
            }
            y.truncate(1);
            Ok::<_, TapeError>(y)
        })?;
        let logits = outputs
            .into_iter()
            .next()
            .ok_or_else(|| self.missing("<graph output>", 0))?;
        Ok(Forward {
            logits,
            tape,
            saved,
        })
    }

    /// Back-propagates `seed` (∂L/∂logits) through one forward pass.
    fn backward(
        &self,
        fwd: &Forward,
        weights: &[Tensor],
        seed: Tensor,
    ) -> Result<Vec<Option<LayerGrad>>, PassError> {
        let mut out: Vec<Option<LayerGrad>> = (0..self.layers.len()).map(|_| None).collect();
        let rule = |id, node: &Node, op: &Op, refs: &[&Tensor], output: &Tensor, g: Tensor| {
            let Some(&li) = self.by_node.get(&id) else {
                let in_grads = backward_op(op, refs, output, &g).map_err(rt(&node.name))?;
                // Constants are not trained (layer weights are handled below).
                let args = self.graph.node_inputs(id);
                let trained = args.iter().map(|&v| self.graph.constant_value(v).is_none());
                return Ok(in_grads
                    .into_iter()
                    .zip(trained)
                    .map(|(ig, t)| ig.filter(|_| t))
                    .collect());
            };
            let layer = &self.layers[li];
            let s = fwd
                .saved
                .get(&li)
                .ok_or_else(|| self.missing(&node.name, 0))?;
            let gi = backward_op(&layer.op, &[&s.xhat, &s.wk, &s.bias], output, &g)
                .map_err(rt(&node.name))?;
            let shape = vec![layer.view.rows, layer.view.cols];
            let mut it = gi.into_iter();
            let (gx, gw, gb) = (
                it.next().flatten(),
                it.next().flatten(),
                it.next().flatten(),
            );
            let n = layer.view.rows * layer.view.cols;
            let gw = match gw.map(Tensor::into_data) {
                Some(TensorData::F32(v)) => tensor(&node.name, shape, v)?,
                _ => tensor(&node.name, shape, vec![0.0; n])?,
            };
            let wg = s.wfq.backward(&weights[li], &gw).map_err(rt(&node.name))?;
            // The activation's gradient flows to the layer's input `x` (its first input).
            let (gx, gscale) = match gx {
                Some(gx) => {
                    let ag = s.afq.backward(&s.x, &gx).map_err(rt(&node.name))?;
                    (Some(ag.x), ag.scale * lsq_grad_scale(s.x.len(), s.afq.bits))
                }
                None => (None, 0.0),
            };
            out[li] = Some(LayerGrad {
                w: match wg.w.into_data() {
                    TensorData::F32(v) => v,
                    _ => vec![0.0; n],
                },
                alpha: wg.alpha,
                beta: wg.beta,
                bias: gb
                    .and_then(|t| t.as_f32().map(<[f32]>::to_vec))
                    .unwrap_or_else(|| vec![0.0; layer.view.rows]),
                act_scale: gscale,
            });
            Ok::<_, TapeError>(vec![gx])
        };
        fwd.tape.backward_by(self.graph, &[seed], rule)?;
        Ok(out)
    }

    /// Loss and gradients of every trained plane count on one batch, the plane counts in
    /// parallel; `lambdas[ki]` scales plane count `ki`'s gradients (not its reported loss).
    pub fn gradients(&self, batch: &Batch, lambdas: &[f32]) -> Result<Vec<KResult>, PassError> {
        let weights = self.weight_tensors()?;
        (0..self.plane_counts.len())
            .into_par_iter()
            .map(|ki| {
                let tables: Vec<&KState> = self.layers.iter().map(|l| &l.k[ki]).collect();
                let fwd = self.forward(&batch.inputs, &weights, ki, &tables, true)?;
                let (loss, mut g) = objective(
                    &fwd.logits,
                    &batch.teacher,
                    batch.labels.as_ref(),
                    self.temperature,
                    self.ce_weight,
                )?;
                if let TensorData::F32(a) = g.data_mut() {
                    a.iter_mut().for_each(|x| *x *= lambdas[ki]);
                }
                let grads = self.backward(&fwd, &weights, g)?;
                Ok(KResult { loss, grads })
            })
            .collect()
    }

    /// Mean loss per plane count over `batches` (sample-weighted), and how many samples'
    /// top-1 matches the teacher's, with the side tables as the container would store them.
    /// Forward only; plane counts in parallel.
    pub fn validation(&self, batches: &[Batch]) -> Result<Vec<HeldOut>, PassError> {
        let weights = self.weight_tensors()?;
        let total: usize = batches.iter().map(|b| b.teacher.shape()[0]).sum();
        (0..self.plane_counts.len())
            .into_par_iter()
            .map(|ki| {
                let stored: Vec<KState> = self.layers.iter().map(|l| l.k[ki].stored()).collect();
                let tables: Vec<&KState> = stored.iter().collect();
                let (mut sum, mut agree) = (0f64, 0usize);
                for b in batches {
                    let fwd = self.forward(&b.inputs, &weights, ki, &tables, false)?;
                    let (l, _) = objective(
                        &fwd.logits,
                        &b.teacher,
                        b.labels.as_ref(),
                        self.temperature,
                        self.ce_weight,
                    )?;
                    sum += l as f64 * b.teacher.shape()[0] as f64;
                    agree += top1_matches(&fwd.logits, &b.teacher);
                }
                Ok(HeldOut {
                    loss: sum / total.max(1) as f64,
                    agree,
                })
            })
            .collect()
    }
}

/// One plane count's held-out result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct HeldOut {
    pub loss: f64,
    /// Samples whose top-1 class is the teacher's.
    pub agree: usize,
}

/// Rows of two `[N, C]` logit tensors with the same argmax (first index on ties).
fn top1_matches(a: &Tensor, b: &Tensor) -> usize {
    let (Some(a), Some(b), &[_, c]) = (a.as_f32(), b.as_f32(), a.shape()) else {
        return 0;
    };
    let argmax = |row: &[f32]| {
        row.iter()
            .enumerate()
            .fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
    };
    a.chunks(c.max(1))
        .zip(b.chunks(c.max(1)))
        .filter(|(x, y)| argmax(x) == argmax(y))
        .count()
}
