//! `once-qat{steps, batch=64, lr=1e-4, planes, weights, seed=0}`: quantization-aware training of
//! all plane counts at once ("train once, deploy at any k").
//!
//! Runs after `vl-quantize` and before `bitplane-rewrite`. Each step draws a seeded batch of
//! calibration samples and runs the network once per trained plane count `k`, every
//! quantizable layer replaced by its fake-quantized form: input `x̂ = fq_act,k(x)`, weight
//! `W_k = alpha_k·(q_B(W) >> (B−k)) + beta_k` derived from the one shared set of float weights
//! `W`, bias `bias_k`. The loss is `Σ_k λ_k·L_k` with `L_k` the KL divergence to the FP32
//! teacher's logits (T = 1; no labels needed) plus softmax cross-entropy when `ctx.labels` is
//! set. Adam with a cosine learning-rate schedule updates `W` (straight-through estimator),
//! every `alpha_k`, `beta_k`, `bias_k` and activation step size (LSQ, gradient scaled by
//! `autodiff::fake_quant::lsq_grad_scale`). Activation zero points stay fixed (their LSQ
//! gradient only comes from clamped values and an integer zero point cannot take small
//! steps). The per-channel code scales `s_c` also stay fixed, so that the planes re-derived at
//! the end (`q_B = clamp(round(W/s_c))`, packed with `strata_ir::quant::pack_planes`) are
//! exactly the codes the side tables were trained against, and the `k`-plane model is the
//! first `k` planes of the one code (the prefix property) by construction.
//!
//! Everything is deterministic for a given seed: batches come from a seeded xorshift, the
//! tape walks the graph in its deterministic topological order and the gradient kernels
//! reduce in a fixed order regardless of thread count.

use std::collections::HashMap;

use strata_ir::ops::{Conv, Gemm};
use strata_ir::{Graph, NodeId, NodeKind, Op, Tensor, ValueRef};
use strata_runtime::autodiff::fake_quant::{lsq_grad_scale, ActFakeQuant, WeightFakeQuant};
use strata_runtime::autodiff::{backward_op, loss};
use strata_runtime::RuntimeError;

use crate::bitplane_rewrite::half_precision;
use crate::calibrate::CalibrationData;
use crate::pipeline::{PassOptions, PipelineError};
use crate::vl_quantize::{parse_plane_list, quantizable_layers, LayerKind, QuantLayer};
use crate::{Pass, PassContext, PassError, VlQuantization};

const PASS: &str = "once-qat";

/// See the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct OnceQat {
    /// Optimiser steps (≥ 1: a QAT pass that trains nothing is a configuration mistake).
    pub steps: usize,
    /// Samples per step (capped at the number of calibration samples; a graph input with a
    /// fixed leading dimension forces that dimension).
    pub batch: usize,
    /// Peak Adam learning rate; the schedule decays it to 0 along a half cosine.
    pub lr: f32,
    /// Plane counts to train (`None`: every plane count `vl-quantize` produced).
    pub planes: Option<Vec<u8>>,
    /// `λ_k`, one per trained plane count (`None`: all 1).
    pub weights: Option<Vec<f32>>,
    /// Seed of the batch sampler.
    pub seed: u64,
}

impl OnceQat {
    pub(crate) fn create(options: &PassOptions) -> Result<Box<dyn Pass>, PipelineError> {
        let steps: usize = options.get("steps", 0)?;
        if steps == 0 {
            return Err(options.invalid("steps", "is required and must be at least 1"));
        }
        let batch: usize = options.get("batch", 64)?;
        if batch == 0 {
            return Err(options.invalid("batch", "must be at least 1"));
        }
        let lr: f32 = options.get("lr", 1e-4)?;
        if !(lr.is_finite() && lr > 0.0) {
            return Err(options.invalid("lr", "must be positive and finite"));
        }
        let planes = match options.raw("planes") {
            None => None,
            Some(text) => {
                let p = parse_plane_list(text).map_err(|r| options.invalid("planes", r))?;
                if p.is_empty() || p.contains(&0) {
                    return Err(options.invalid("planes", "plane counts must be at least 1"));
                }
                Some(p)
            }
        };
        let weights = match options.raw("weights") {
            None => None,
            Some(text) => Some(parse_weights(text).map_err(|r| options.invalid("weights", r))?),
        };
        if let (Some(p), Some(w)) = (&planes, &weights) {
            if p.len() != w.len() {
                return Err(options.invalid(
                    "weights",
                    format!("has {} entries for {} plane counts", w.len(), p.len()),
                ));
            }
        }
        let seed: u64 = options.get("seed", 0)?;
        Ok(Box::new(OnceQat {
            steps,
            batch,
            lr,
            planes,
            weights,
            seed,
        }))
    }
}

/// `λ_k` list: comma-separated finite non-negative numbers, not all zero.
fn parse_weights(text: &str) -> Result<Vec<f32>, String> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim) {
        let v: f32 = part.parse().map_err(|e| format!("`{part}`: {e}"))?;
        if !(v.is_finite() && v >= 0.0) {
            return Err(format!("`{part}` must be finite and non-negative"));
        }
        out.push(v);
    }
    if out.iter().all(|&v| v == 0.0) {
        return Err("at least one weight must be positive".to_string());
    }
    Ok(out)
}

/// Adam state of one parameter vector.
#[derive(Debug, Clone)]
struct Adam {
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Adam {
    const B1: f32 = 0.9;
    const B2: f32 = 0.999;
    const EPS: f32 = 1e-8;

    fn new(n: usize) -> Adam {
        Adam {
            m: vec![0.0; n],
            v: vec![0.0; n],
        }
    }

    /// One bias-corrected Adam update at step `t` (1-based), `x[i]` moving by at most about
    /// `lr·unit[i]`: Adam's step is scale-free, so a parameter whose natural size is tiny (the
    /// 8-plane `alpha ≈ s_c`, an activation step size) needs its own unit or one step at a
    /// weight-sized learning rate would wreck it. Non-finite gradients are skipped so one
    /// overflowing batch cannot poison the weights.
    fn step(&mut self, x: &mut [f32], g: &[f32], lr: f32, t: i32, unit: Option<&[f32]>) {
        let c1 = 1.0 - Self::B1.powi(t);
        let c2 = 1.0 - Self::B2.powi(t);
        for (i, (((x, &g), m), v)) in x
            .iter_mut()
            .zip(g)
            .zip(&mut self.m)
            .zip(&mut self.v)
            .enumerate()
        {
            if !g.is_finite() {
                continue;
            }
            let u = unit.and_then(|u| u.get(i)).copied().unwrap_or(1.0);
            *m = Self::B1 * *m + (1.0 - Self::B1) * g;
            *v = Self::B2 * *v + (1.0 - Self::B2) * g * g;
            *x -= lr * u * (*m / c1) / ((*v / c2).sqrt() + Self::EPS);
        }
    }
}

/// xorshift64*: tiny, seedable and identical on every platform.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> XorShift {
        // splitmix64 of the seed, so seed 0 is fine and nearby seeds decorrelate.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-enough index in `0..n` (`n ≥ 1`).
    fn below(&mut self, n: usize) -> usize {
        ((self.next() >> 11) % n as u64) as usize
    }
}

/// Trainable state of one layer at one plane count.
#[derive(Debug, Clone)]
struct KState {
    alpha: Vec<f32>,
    beta: Vec<f32>,
    bias: Vec<f32>,
    act_scale: f32,
    act_zero: f32,
}

/// A quantizable layer during training.
struct Layer {
    view: QuantLayer,
    /// The layer's op with the weight `[R, …]` and the bias made explicit: Conv with bias, or
    /// Gemm with `trans_b` and a `[R]` C.
    op: Op,
    /// Shape `op` expects for the weight.
    weight_shape: Vec<usize>,
    /// Shared float weights `[R, K]` (the view of `vl-quantize`, without the Gemm gain).
    w: Vec<f32>,
    scales: Vec<f32>,
    /// One per trained plane count, in `plane_counts` order.
    k: Vec<KState>,
    /// Per plane count: the learning-rate unit of `alpha`/`beta` rows (|alpha| at the start)
    /// and of the activation step size (its starting value).
    units: Vec<(Vec<f32>, f32)>,
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

/// Gradients of one layer at one plane count.
struct LayerGrad {
    w: Vec<f32>,
    alpha: Vec<f32>,
    beta: Vec<f32>,
    bias: Vec<f32>,
    act_scale: f32,
}

/// The training problem: graph, layers, and the fixed code parameters.
struct Trainer<'g> {
    graph: &'g Graph,
    order: Vec<NodeId>,
    /// Node → index into `layers`.
    by_node: HashMap<NodeId, usize>,
    layers: Vec<Layer>,
    bits: u8,
    act_bits: u8,
    plane_counts: Vec<u8>,
}

fn rt(node: &str) -> impl Fn(RuntimeError) -> PassError + '_ {
    move |source| PassError::Runtime {
        pass: PASS,
        node: node.to_string(),
        source: Box::new(source),
    }
}

fn tensor(node: &str, shape: Vec<usize>, data: Vec<f32>) -> Result<Tensor, PassError> {
    Tensor::from_f32(shape, data).map_err(|e| PassError::Rewrite {
        pass: PASS,
        node: node.to_string(),
        reason: e.to_string(),
    })
}

impl Trainer<'_> {
    fn lookup<'a>(
        &'a self,
        values: &'a HashMap<ValueRef, Tensor>,
        v: ValueRef,
    ) -> Option<&'a Tensor> {
        values
            .get(&v)
            .or_else(|| self.graph.constant_value(v).map(|t| t.as_ref()))
    }

    fn missing(&self, node: &str, slot: usize) -> PassError {
        PassError::Rewrite {
            pass: PASS,
            node: node.to_string(),
            reason: format!("input {slot} was not computed"),
        }
    }

    /// Runs the student at plane count index `ki`; returns the logits, every value, and what
    /// each layer saved for backward.
    #[allow(clippy::type_complexity)]
    fn forward(
        &self,
        inputs: &[Tensor],
        ki: usize,
    ) -> Result<
        (
            Tensor,
            HashMap<ValueRef, Tensor>,
            HashMap<usize, LayerSaved>,
        ),
        PassError,
    > {
        let k = self.plane_counts[ki];
        let mut values: HashMap<ValueRef, Tensor> = HashMap::new();
        for (&id, t) in self.graph.inputs().iter().zip(inputs) {
            values.insert(ValueRef::first(id), t.clone());
        }
        let mut saved = HashMap::new();
        for &id in &self.order {
            let node = self
                .graph
                .node(id)
                .map_err(|source| PassError::Graph { pass: PASS, source })?;
            let NodeKind::Op(op) = &node.kind else {
                continue;
            };
            let args = self.graph.node_inputs(id);
            let out = if let Some(&li) = self.by_node.get(&id) {
                let layer = &self.layers[li];
                let st = &layer.k[ki];
                let x = self
                    .lookup(&values, layer.view.input)
                    .ok_or_else(|| self.missing(&node.name, 0))?
                    .clone();
                let afq = ActFakeQuant {
                    bits: self.act_bits,
                    scale: st.act_scale,
                    zero: st.act_zero,
                };
                let xhat = afq.forward(&x).map_err(rt(&node.name))?;
                let wfq = WeightFakeQuant {
                    bits: self.bits,
                    k,
                    scale: layer.scales.clone(),
                    alpha: st.alpha.clone(),
                    beta: st.beta.clone(),
                };
                let w = tensor(
                    &node.name,
                    vec![layer.view.rows, layer.view.cols],
                    layer.w.clone(),
                )?;
                let wk = wfq.forward(&w).map_err(rt(&node.name))?;
                let wk = tensor(
                    &node.name,
                    layer.weight_shape.clone(),
                    wk.as_f32().unwrap_or(&[]).to_vec(),
                )?;
                let bias = tensor(&node.name, vec![layer.view.rows], st.bias.clone())?;
                let mut y = strata_runtime::eval_op(&layer.op, &[&xhat, &wk, &bias])
                    .map_err(rt(&node.name))?;
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
                y.truncate(1);
                y
            } else {
                let mut refs = Vec::with_capacity(args.len());
                for (slot, v) in args.iter().enumerate() {
                    refs.push(
                        self.lookup(&values, *v)
                            .ok_or_else(|| self.missing(&node.name, slot))?,
                    );
                }
                strata_runtime::eval_op(op, &refs).map_err(rt(&node.name))?
            };
            for (i, t) in out.into_iter().enumerate() {
                values.insert(
                    ValueRef {
                        node: id,
                        output: i,
                    },
                    t,
                );
            }
        }
        let out = self.graph.outputs()[0];
        let logits = self
            .lookup(&values, out)
            .ok_or_else(|| self.missing("<graph output>", 0))?
            .clone();
        Ok((logits, values, saved))
    }

    /// Back-propagates `seed` (∂L/∂logits) through one forward pass.
    fn backward(
        &self,
        values: &HashMap<ValueRef, Tensor>,
        saved: &HashMap<usize, LayerSaved>,
        seed: Tensor,
    ) -> Result<Vec<Option<LayerGrad>>, PassError> {
        let mut grads: HashMap<ValueRef, Tensor> = HashMap::new();
        grads.insert(self.graph.outputs()[0], seed);
        let mut out: Vec<Option<LayerGrad>> = (0..self.layers.len()).map(|_| None).collect();
        for &id in self.order.iter().rev() {
            let node = self
                .graph
                .node(id)
                .map_err(|source| PassError::Graph { pass: PASS, source })?;
            let NodeKind::Op(op) = &node.kind else {
                continue;
            };
            let Some(g) = grads.remove(&ValueRef::first(id)) else {
                continue;
            };
            let args = self.graph.node_inputs(id);
            let output = values
                .get(&ValueRef::first(id))
                .ok_or_else(|| self.missing(&node.name, 0))?;
            if let Some(&li) = self.by_node.get(&id) {
                let layer = &self.layers[li];
                let s = saved.get(&li).ok_or_else(|| self.missing(&node.name, 0))?;
                let gi = backward_op(&layer.op, &[&s.xhat, &s.wk, &s.bias], output, &g)
                    .map_err(rt(&node.name))?;
                let shape = vec![layer.view.rows, layer.view.cols];
                let mut it = gi.into_iter();
                let (gx, gw, gb) = (
                    it.next().flatten(),
                    it.next().flatten(),
                    it.next().flatten(),
                );
                let zeros = |n: usize| vec![0f32; n];
                let gw = match gw {
                    Some(t) => tensor(
                        &node.name,
                        shape.clone(),
                        t.as_f32().unwrap_or(&[]).to_vec(),
                    )?,
                    None => tensor(
                        &node.name,
                        shape.clone(),
                        zeros(layer.view.rows * layer.view.cols),
                    )?,
                };
                let w = tensor(&node.name, shape, layer.w.clone())?;
                let wg = s.wfq.backward(&w, &gw).map_err(rt(&node.name))?;
                let (gx_in, gscale) = match gx {
                    Some(gx) => {
                        let ag = s.afq.backward(&s.x, &gx).map_err(rt(&node.name))?;
                        let scaled = ag.scale * lsq_grad_scale(s.x.len(), self.act_bits);
                        (Some(ag.x), scaled)
                    }
                    None => (None, 0.0),
                };
                if let Some(gx) = gx_in {
                    accumulate(&mut grads, layer.view.input, gx);
                }
                out[li] = Some(LayerGrad {
                    w: wg.w.as_f32().unwrap_or(&[]).to_vec(),
                    alpha: wg.alpha,
                    beta: wg.beta,
                    bias: gb
                        .and_then(|t| t.as_f32().map(<[f32]>::to_vec))
                        .unwrap_or_else(|| zeros(layer.view.rows)),
                    act_scale: gscale,
                });
                continue;
            }
            let mut refs = Vec::with_capacity(args.len());
            for (slot, v) in args.iter().enumerate() {
                refs.push(
                    self.lookup(values, *v)
                        .ok_or_else(|| self.missing(&node.name, slot))?,
                );
            }
            let in_grads = backward_op(op, &refs, output, &g).map_err(rt(&node.name))?;
            for (v, ig) in args.into_iter().zip(in_grads) {
                // Constants are not trained (layer weights are handled above).
                if let (Some(ig), None) = (ig, self.graph.constant_value(v)) {
                    accumulate(&mut grads, v, ig);
                }
            }
        }
        Ok(out)
    }
}

/// Adds `g` into `v`'s gradient (fan-out sums every use's contribution, in the fixed reverse
/// topological order).
fn accumulate(grads: &mut HashMap<ValueRef, Tensor>, v: ValueRef, g: Tensor) {
    match grads.get_mut(&v) {
        None => {
            grads.insert(v, g);
        }
        Some(acc) => {
            if let (strata_ir::TensorData::F32(a), Some(b)) = (acc.data_mut(), g.as_f32()) {
                a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
            }
        }
    }
}

/// Rows `idx` of every input (a Gather on the sample axis).
fn gather(inputs: &[Tensor], idx: &[usize]) -> Result<Vec<Tensor>, PassError> {
    let ids: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
    let indices = Tensor::new(vec![ids.len()], strata_ir::TensorData::I64(ids)).map_err(|e| {
        PassError::BadCalibration {
            pass: PASS,
            reason: e.to_string(),
        }
    })?;
    inputs
        .iter()
        .map(|t| {
            strata_runtime::eval_op(&Op::Gather { axis: 0 }, &[t, &indices])
                .map_err(rt("<calibration samples>"))?
                .pop()
                .ok_or_else(|| PassError::BadCalibration {
                    pass: PASS,
                    reason: "gathering a batch produced no tensor".to_string(),
                })
        })
        .collect()
}

/// Rows `idx` of a row-major `[N, C]` buffer as a tensor.
fn rows_of(data: &[f32], c: usize, idx: &[usize]) -> Result<Tensor, PassError> {
    let mut out = Vec::with_capacity(idx.len() * c);
    for &i in idx {
        out.extend_from_slice(&data[i * c..(i + 1) * c]);
    }
    tensor("<teacher logits>", vec![idx.len(), c], out)
}

/// The layer's op with an explicit `[R]` bias and the shape its weight must have.
fn explicit_op(graph: &Graph, layer: &QuantLayer) -> Result<(Op, Vec<usize>), PassError> {
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
            Ok((op, w))
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
        )),
    }
}

impl Pass for OnceQat {
    fn name(&self) -> &'static str {
        PASS
    }

    fn run(&self, graph: &mut Graph, ctx: &mut PassContext) -> Result<bool, PassError> {
        let vlq = VlQuantization::from_context(ctx)
            .ok_or(PassError::MissingResult {
                pass: PASS,
                needs: "vl-quantize",
            })?
            .clone();
        let bad = |reason: String| PassError::BadArgument { pass: PASS, reason };
        let plane_counts = self
            .planes
            .clone()
            .unwrap_or_else(|| vlq.plane_counts.clone());
        if let Some(k) = plane_counts.iter().find(|k| !vlq.plane_counts.contains(k)) {
            return Err(bad(format!(
                "plane count {k} has no side table from vl-quantize (it has {:?})",
                vlq.plane_counts
            )));
        }
        let lambdas = self
            .weights
            .clone()
            .unwrap_or_else(|| vec![1.0; plane_counts.len()]);
        if lambdas.len() != plane_counts.len() {
            return Err(bad(format!(
                "weights has {} entries for {} plane counts",
                lambdas.len(),
                plane_counts.len()
            )));
        }
        let data = CalibrationData::new(PASS, graph, ctx.calibration.as_deref(), None)?;
        let batch = if data.chunk != crate::calibrate::CHUNK {
            data.chunk
        } else {
            self.batch.min(data.samples)
        };
        if graph.outputs().len() != 1 {
            return Err(bad(format!(
                "needs a graph with one output (logits [N, C]), this one has {}",
                graph.outputs().len()
            )));
        }

        // Teacher logits for every sample, once.
        let mut teacher: Vec<f32> = Vec::new();
        let mut classes = 0;
        let mut start = 0;
        while start < data.samples {
            let end = (start + data.chunk).min(data.samples);
            let inputs = data.rows(PASS, start, end, 1)?;
            let out = strata_runtime::run(graph, &inputs).map_err(rt(&graph.name))?;
            let t = &out[0];
            let (Some(v), [n, c]) = (t.as_f32(), t.shape()) else {
                return Err(bad(format!(
                    "the graph output must be f32 logits [N, C], got {} {:?}",
                    t.dtype(),
                    t.shape()
                )));
            };
            if *n != end - start || *c == 0 {
                return Err(bad(format!("graph output has shape [{n}, {c}]")));
            }
            classes = *c;
            teacher.extend_from_slice(v);
            start = end;
        }
        let labels = match &ctx.labels {
            None => None,
            Some(l) => {
                let v = l
                    .to_i64_vec()
                    .ok_or_else(|| bad(format!("labels must be integers, got {}", l.dtype())))?;
                if l.rank() != 1 || v.len() < data.samples {
                    return Err(bad(format!(
                        "labels have shape {:?} but there are {} calibration samples",
                        l.shape(),
                        data.samples
                    )));
                }
                if let Some(i) = v.iter().position(|&c| c < 0 || c as usize >= classes) {
                    return Err(bad(format!(
                        "label {i} is {} but the model has {classes} classes",
                        v[i]
                    )));
                }
                Some(v)
            }
        };

        // Layers, matched by name with vl-quantize's result.
        let views = quantizable_layers(graph)?;
        let mut layers = Vec::with_capacity(vlq.layers.len());
        let mut by_node = HashMap::new();
        for q in &vlq.layers {
            let view = views
                .iter()
                .find(|v| v.name == q.name)
                .cloned()
                .ok_or_else(|| PassError::Rewrite {
                    pass: PASS,
                    node: q.name.clone(),
                    reason: "is no longer a quantizable layer (was the graph changed after \
                             vl-quantize?)"
                        .to_string(),
                })?;
            if (view.rows, view.cols) != (q.rows, q.cols) || q.scales.len() != q.rows {
                return Err(PassError::Rewrite {
                    pass: PASS,
                    node: q.name.clone(),
                    reason: "weight shape differs from the one vl-quantize saw".to_string(),
                });
            }
            let mut k = Vec::with_capacity(plane_counts.len());
            for &pk in &plane_counts {
                let t = q
                    .tables
                    .iter()
                    .find(|t| t.k == pk)
                    .ok_or_else(|| PassError::Rewrite {
                        pass: PASS,
                        node: q.name.clone(),
                        reason: format!("no side table for k={pk}"),
                    })?;
                k.push(KState {
                    alpha: t.alpha.clone(),
                    beta: t.beta.clone(),
                    bias: t.bias.clone(),
                    act_scale: t.act_scale,
                    act_zero: t.act_zero,
                });
            }
            let units = k
                .iter()
                .map(|st| {
                    let a = st
                        .alpha
                        .iter()
                        .map(|a| if a.abs() > 0.0 { a.abs() } else { 1.0 })
                        .collect();
                    (a, st.act_scale)
                })
                .collect();
            let (op, weight_shape) = explicit_op(graph, &view)?;
            by_node.insert(view.node, layers.len());
            layers.push(Layer {
                w: view.weight.clone(),
                scales: q.scales.clone(),
                view,
                op,
                weight_shape,
                k,
                units,
            });
        }
        let order = graph
            .topo_order()
            .map_err(|source| PassError::Graph { pass: PASS, source })?;
        let mut tr = Trainer {
            graph,
            order,
            by_node,
            layers,
            bits: vlq.bits,
            act_bits: vlq.act_bits,
            plane_counts: plane_counts.clone(),
        };

        // Optimiser state: per layer the shared weights, per layer and k the side table.
        let mut adam_w: Vec<Adam> = tr.layers.iter().map(|l| Adam::new(l.w.len())).collect();
        let mut adam_k: Vec<Vec<[Adam; 4]>> = tr
            .layers
            .iter()
            .map(|l| {
                (0..plane_counts.len())
                    .map(|_| {
                        let r = l.view.rows;
                        [Adam::new(r), Adam::new(r), Adam::new(r), Adam::new(1)]
                    })
                    .collect()
            })
            .collect();
        let mut rng = XorShift::new(self.seed);
        // Field borrows (not `ctx.report`): the calibration samples stay borrowed meanwhile.
        let mut report = |stage: &str, done: usize| {
            if let Some(p) = ctx.progress.as_mut() {
                p(stage, done as u64, self.steps as u64);
            }
        };
        report(PASS, 0);
        for step in 0..self.steps {
            // A batch of every sample is the whole set in order (full-batch training).
            let idx: Vec<usize> = if batch == data.samples {
                (0..batch).collect()
            } else {
                (0..batch).map(|_| rng.below(data.samples)).collect()
            };
            let inputs = gather(data.inputs, &idx)?;
            let teach = rows_of(&teacher, classes, &idx)?;
            let labels_t = match &labels {
                None => None,
                Some(l) => Some(
                    Tensor::new(
                        vec![idx.len()],
                        strata_ir::TensorData::I64(idx.iter().map(|&i| l[i]).collect()),
                    )
                    .map_err(|e| bad(e.to_string()))?,
                ),
            };
            let mut gw: Vec<Vec<f32>> = tr.layers.iter().map(|l| vec![0.0; l.w.len()]).collect();
            let mut kgrads: Vec<Vec<Option<LayerGrad>>> = Vec::with_capacity(plane_counts.len());
            let mut losses = Vec::with_capacity(plane_counts.len());
            for (ki, &lambda) in lambdas.iter().enumerate() {
                let (logits, values, saved) = tr.forward(&inputs, ki)?;
                let (mut l, mut g) =
                    loss::kl_distillation(&logits, &teach, 1.0).map_err(rt("<loss>"))?;
                if let Some(lt) = &labels_t {
                    let (lc, gc) =
                        loss::softmax_cross_entropy(&logits, lt).map_err(rt("<loss>"))?;
                    l += lc;
                    if let (strata_ir::TensorData::F32(a), Some(b)) = (g.data_mut(), gc.as_f32()) {
                        a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                    }
                }
                losses.push(l);
                if let strata_ir::TensorData::F32(a) = g.data_mut() {
                    a.iter_mut().for_each(|x| *x *= lambda);
                }
                let grads = tr.backward(&values, &saved, g)?;
                for (acc, lg) in gw.iter_mut().zip(&grads) {
                    if let Some(lg) = lg {
                        acc.iter_mut().zip(&lg.w).for_each(|(a, b)| *a += b);
                    }
                }
                kgrads.push(grads);
            }
            let t = step as i32 + 1;
            let lr = self.lr
                * 0.5
                * (1.0 + (std::f32::consts::PI * step as f32 / self.steps as f32).cos());
            for (li, layer) in tr.layers.iter_mut().enumerate() {
                adam_w[li].step(&mut layer.w, &gw[li], lr, t, None);
                for (ki, grads) in kgrads.iter().enumerate() {
                    let Some(g) = &grads[li] else {
                        continue;
                    };
                    let st = &mut layer.k[ki];
                    let (unit, act_unit) = &layer.units[ki];
                    let [a, b, c, d] = &mut adam_k[li][ki];
                    a.step(&mut st.alpha, &g.alpha, lr, t, Some(unit));
                    b.step(&mut st.beta, &g.beta, lr, t, Some(unit));
                    c.step(&mut st.bias, &g.bias, lr, t, None);
                    let mut s = [st.act_scale];
                    d.step(&mut s, &[g.act_scale], lr, t, Some(&[*act_unit]));
                    // The step size must stay positive; never shrink below 1 % in one go.
                    st.act_scale = s[0].max(st.act_scale * 0.01);
                }
            }
            let text: Vec<String> = plane_counts
                .iter()
                .zip(&losses)
                .map(|(k, l)| format!("k={k} loss={l:.3e}"))
                .collect();
            report(&format!("{PASS} {}", text.join(" ")), step + 1);
        }

        // Re-derive the planes from the trained weights and write the tables back.
        let mut result = vlq.clone();
        for (q, layer) in result.layers.iter_mut().zip(&tr.layers) {
            let codes = codes_with_scales(&layer.w, &layer.scales, layer.view.cols, vlq.bits);
            if layer.w.iter().any(|v| !v.is_finite()) {
                return Err(PassError::Rewrite {
                    pass: PASS,
                    node: q.name.clone(),
                    reason: "training diverged (non-finite weights); lower lr".to_string(),
                });
            }
            q.planes = strata_ir::quant::pack_planes(&codes, q.rows, q.cols, vlq.bits);
            for (ki, &pk) in plane_counts.iter().enumerate() {
                let st = &layer.k[ki];
                if let Some(t) = q.tables.iter_mut().find(|t| t.k == pk) {
                    t.alpha = st.alpha.iter().map(|&v| half_precision(v)).collect();
                    t.beta = st.beta.iter().map(|&v| half_precision(v)).collect();
                    t.bias = st.bias.iter().map(|&v| half_precision(v)).collect();
                    t.act_scale = st.act_scale;
                    t.act_zero = st.act_zero;
                }
            }
        }
        // The graph itself is unchanged (like vl-quantize): bitplane-rewrite builds the trained
        // layers from the result, and replaces the float weights with them.
        ctx.results.insert("vl-quantize", Box::new(result));
        Ok(false)
    }
}

/// `q_B = clamp(round_half_away(W/s_c))` with the fixed per-row scales training used.
pub fn codes_with_scales(w: &[f32], scales: &[f32], cols: usize, bits: u8) -> Vec<i32> {
    let qmax = (1i32 << (bits - 1)) - 1;
    let qmin = -(1i32 << (bits - 1));
    w.iter()
        .enumerate()
        .map(|(i, &v)| ((v / scales[i / cols.max(1)]).round() as i32).clamp(qmin, qmax))
        .collect()
}
