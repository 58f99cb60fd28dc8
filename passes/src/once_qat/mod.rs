//! `once-qat{steps, batch=64, lr=1e-3, weight-lr=0.02, planes, weights, seed=0, holdout=0.1,
//! evals=20, tables-only=0.3, normalize=true, temperature=auto, ce-weight=1}`:
//! quantization-aware training of all plane counts at once ("train once, deploy at any k")
//! that never leaves a plane count worse than its post-training-quantization start on
//! held-out samples.
//!
//! Runs after `vl-quantize` and before `bitplane-rewrite`. Each step draws a batch of
//! calibration samples (seeded, epoch-style: every training sample once before any repeats)
//! and runs the network once per trained plane count `k`, every quantizable layer replaced by
//! its fake-quantized form: input `x̂ = fq_act,k(x)`, weight `W_k = alpha_k·(q_B(W) >> (B−k)) +
//! beta_k` derived from the one shared set of float weights `W`, bias `bias_k`. The loss is
//! `Σ_k λ_k·L_k` with `L_k = T²·KL(teacher_T ‖ student_k,T)` against the FP32 teacher's logits
//! at temperature `T` (`temperature=auto`: [`auto_temperature`]; no labels needed) plus
//! `ce-weight ×` softmax cross-entropy when `ctx.labels` is set. With `normalize` (default),
//! `λ_k` is divided by `L_k` of the starting point on the held-out samples, so that a plane
//! count that starts almost at FP32 (MNIST CNN, k = 8: `L ≈ 0.02`) is not drowned by k = 2
//! (`L ≈ 79`) in the shared weights' gradient.
//!
//! Training has two phases, and the result is chosen on a held-out slice of the calibration
//! samples (the last `holdout` fraction; the whole set when that slice is empty), scored with
//! the side tables rounded to half precision exactly as the container stores them:
//!
//! 1. **joint** (the first `1 − tables-only` of the steps): Adam with a cosine schedule
//!    updates `W` (straight-through estimator; step unit: the 8-bit code step `s_c`, so
//!    `weight-lr` is in code steps per step) and every side table (`alpha_k`, `beta_k` in
//!    units of the starting `|alpha_k|`, `bias_k` in units of the layer's bias size, the
//!    activation step size in units of itself, LSQ gradient scaling). At `evals` evenly
//!    spaced checkpoints the held-out loss of every plane count is measured; the snapshot
//!    (weights and tables) kept is the one with the lowest mean `L_k/L_k(start)` among those
//!    where **no** plane count is worse than at the start — the start itself qualifies, so a
//!    weight update that helps k = 2 but costs k = 8 is rejected.
//! 2. **tables only** (the rest): from that snapshot, with `W` (and so the codes) frozen, the
//!    side tables train on; the plane counts no longer interact, so each `k` keeps the tables
//!    of its own best checkpoint (per-k early stopping).
//!
//! Activation zero points stay fixed (their LSQ gradient only comes from clamped values and an
//! integer zero point cannot take small steps). The per-channel code scales `s_c` also stay
//! fixed, so that the planes re-derived at the end (`q_B = clamp(round(W/s_c))`, packed with
//! `strata_ir::quant::pack_planes`) are exactly the codes the side tables were trained
//! against, and the `k`-plane model is the first `k` planes of the one code (the prefix
//! property) by construction.
//!
//! Everything is deterministic for a given seed: batches come from a seeded xorshift, the
//! plane counts of a step run in parallel but are reduced in plane-count order, and the
//! runtime's kernels reduce in a fixed order regardless of thread count. The pass leaves an
//! [`OnceQatReport`] (held-out losses, chosen checkpoint, time, throughput) in the context.

mod optim;
mod report;
mod trainer;

use std::collections::HashMap;
use std::time::Instant;

use strata_ir::{quant, Graph, Op, Tensor};

use crate::calibrate::CalibrationData;
use crate::pipeline::{PassOptions, PipelineError};
use crate::vl_quantize::{parse_plane_list, quantizable_layers};
use crate::{Pass, PassContext, PassError, VlQuantization};
use optim::{cosine, Adam, XorShift};
pub use report::OnceQatReport;
use trainer::{explicit_op, rt, tensor, Batch, HeldOut, KState, Layer, Trainer, PASS};

/// See the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct OnceQat {
    /// Optimiser steps (≥ 1: a QAT pass that trains nothing is a configuration mistake).
    pub steps: usize,
    /// Samples per step (capped at the number of training samples; a graph input with a
    /// fixed leading dimension forces that dimension).
    pub batch: usize,
    /// Peak learning rate of the side tables (relative to each parameter's unit).
    pub lr: f32,
    /// Peak learning rate of the shared weights, in 8-bit code steps per step (0 freezes the
    /// weights: side tables only).
    pub weight_lr: f32,
    /// Plane counts to train (`None`: every plane count `vl-quantize` produced). The others
    /// keep their `vl-quantize` tables and are not part of the "no plane count worse" check:
    /// when the weights move, their tables no longer match the codes, so train every plane
    /// count that will be shipped.
    pub planes: Option<Vec<u8>>,
    /// `λ_k`, one per trained plane count (`None`: all 1).
    pub weights: Option<Vec<f32>>,
    /// Seed of the batch sampler.
    pub seed: u64,
    /// Fraction of the calibration samples (the last ones) held out to choose checkpoints.
    pub holdout: f32,
    /// Held-out evaluations over the run (checkpoints).
    pub evals: usize,
    /// Fraction of the steps, at the end, that train the side tables alone.
    pub tables_only: f32,
    /// Divide `λ_k` by plane count `k`'s starting held-out loss.
    pub normalize: bool,
    /// Distillation temperature `T` (`None`: automatic, see [`auto_temperature`]).
    pub temperature: Option<f32>,
    /// Weight of the cross-entropy term when labels are given (the `T²·KL` term of a
    /// confident teacher can be orders of magnitude larger than a good model's cross-entropy).
    pub ce_weight: f32,
}

fn fraction(options: &PassOptions, key: &str, default: f32) -> Result<f32, PipelineError> {
    let v: f32 = options.get(key, default)?;
    if !(0.0..=1.0).contains(&v) {
        return Err(options.invalid(key, "must be between 0 and 1"));
    }
    Ok(v)
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
        let lr: f32 = options.get("lr", 1e-3)?;
        if !(lr.is_finite() && lr > 0.0) {
            return Err(options.invalid("lr", "must be positive and finite"));
        }
        let weight_lr: f32 = options.get("weight-lr", 0.02)?;
        if !(weight_lr.is_finite() && weight_lr >= 0.0) {
            return Err(options.invalid("weight-lr", "must be non-negative and finite"));
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
        let holdout = fraction(options, "holdout", 0.1)?;
        if holdout >= 1.0 {
            return Err(options.invalid("holdout", "must leave samples to train on (< 1)"));
        }
        let evals: usize = options.get("evals", 20)?;
        if evals == 0 {
            return Err(options.invalid("evals", "must be at least 1"));
        }
        let tables_only = fraction(options, "tables-only", 0.3)?;
        let normalize: bool = options.get("normalize", true)?;
        let temperature = match options.raw("temperature") {
            None | Some("auto") => None,
            Some(_) => {
                let t: f32 = options.get("temperature", 1.0)?;
                if !(t.is_finite() && t > 0.0) {
                    return Err(options.invalid("temperature", "must be positive and finite"));
                }
                Some(t)
            }
        };
        let ce_weight: f32 = options.get("ce-weight", 1.0)?;
        if !(ce_weight.is_finite() && ce_weight >= 0.0) {
            return Err(options.invalid("ce-weight", "must be non-negative and finite"));
        }
        Ok(Box::new(OnceQat {
            steps,
            batch,
            lr,
            weight_lr,
            planes,
            weights,
            seed,
            holdout,
            evals,
            tables_only,
            normalize,
            temperature,
            ce_weight,
        }))
    }
}

/// The distillation temperature `T` chosen from the teacher's logits `[N, C]`: half the
/// median gap between the two largest logits of a sample (at least 1). At `T = 1` a confident
/// classifier's softmax is saturated (the MNIST CNN's median gap is about 60, so
/// `KL ≈ 1e-19` however wrong the other logits are) and KL gives no signal; at this `T` the
/// median sample's runner-up still has a visible probability (gap of 2 in units of `T`),
/// so the loss sees every logit, while a model with soft outputs keeps `T ≈ 1`.
pub fn auto_temperature(logits: &[f32], classes: usize) -> f32 {
    if classes < 2 {
        return 1.0;
    }
    let mut gaps: Vec<f32> = logits
        .chunks_exact(classes)
        .map(|row| {
            let (mut a, mut b) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
            for &v in row {
                if v > a {
                    b = a;
                    a = v;
                } else if v > b {
                    b = v;
                }
            }
            a - b
        })
        .filter(|g| g.is_finite())
        .collect();
    if gaps.is_empty() {
        return 1.0;
    }
    let mid = gaps.len() / 2;
    let (_, median, _) = gaps.select_nth_unstable_by(mid, f32::total_cmp);
    (*median / 2.0).max(1.0)
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

/// A kept state: shared weights and every side table, with its held-out losses.
#[derive(Clone)]
struct Snapshot {
    step: usize,
    weights: Vec<Vec<f32>>,
    /// `[layer][ki]`.
    tables: Vec<Vec<KState>>,
    losses: Vec<f64>,
    agree: Vec<usize>,
}

/// The tables-only phase's best checkpoint of one plane count.
struct KBest {
    step: usize,
    /// `[layer]`.
    tables: Vec<KState>,
    loss: f64,
    agree: usize,
}

impl Snapshot {
    fn of(tr: &Trainer<'_>, step: usize, losses: Vec<f64>, agree: Vec<usize>) -> Snapshot {
        Snapshot {
            step,
            weights: tr.layers.iter().map(|l| l.w.clone()).collect(),
            tables: tr.layers.iter().map(|l| l.k.clone()).collect(),
            losses,
            agree,
        }
    }

    fn restore(&self, tr: &mut Trainer<'_>) {
        for ((l, w), t) in tr.layers.iter_mut().zip(&self.weights).zip(&self.tables) {
            l.w.clone_from(w);
            l.k.clone_from(t);
        }
    }
}

/// Per layer and plane count: Adam state and step units of the side table's parameters.
struct TableOpt {
    alpha: Adam,
    beta: Adam,
    bias: Adam,
    act: Adam,
    ab_unit: Vec<f32>,
    bias_unit: f32,
    act_unit: f32,
}

impl TableOpt {
    fn new(st: &KState, bias_unit: f32) -> TableOpt {
        let r = st.alpha.len();
        TableOpt {
            alpha: Adam::new(r),
            beta: Adam::new(r),
            bias: Adam::new(r),
            act: Adam::new(1),
            ab_unit: st
                .alpha
                .iter()
                .map(|a| if a.abs() > 0.0 { a.abs() } else { 1.0 })
                .collect(),
            bias_unit,
            act_unit: st.act_scale,
        }
    }

    fn reset(&mut self) {
        let r = self.ab_unit.len();
        self.alpha = Adam::new(r);
        self.beta = Adam::new(r);
        self.bias = Adam::new(r);
        self.act = Adam::new(1);
    }
}

/// Rows `idx` of a row-major `[N, C]` buffer as a tensor.
fn rows_of(data: &[f32], c: usize, idx: &[usize]) -> Result<Tensor, PassError> {
    let mut out = Vec::with_capacity(idx.len() * c);
    for &i in idx {
        out.extend_from_slice(&data[i * c..(i + 1) * c]);
    }
    tensor("<teacher logits>", vec![idx.len(), c], out)
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

/// The samples, teacher logits and labels a batch needs.
struct Samples<'a> {
    inputs: &'a [Tensor],
    teacher: &'a [f32],
    classes: usize,
    labels: Option<&'a [i64]>,
}

impl Samples<'_> {
    fn batch(&self, idx: &[usize]) -> Result<Batch, PassError> {
        Ok(Batch {
            inputs: gather(self.inputs, idx)?,
            teacher: rows_of(self.teacher, self.classes, idx)?,
            labels: match self.labels {
                None => None,
                Some(l) => Some(
                    Tensor::new(
                        vec![idx.len()],
                        strata_ir::TensorData::I64(idx.iter().map(|&i| l[i]).collect()),
                    )
                    .map_err(|e| PassError::BadArgument {
                        pass: PASS,
                        reason: e.to_string(),
                    })?,
                ),
            },
        })
    }
}

impl Pass for OnceQat {
    fn name(&self) -> &'static str {
        PASS
    }

    fn run(&self, graph: &mut Graph, ctx: &mut PassContext) -> Result<bool, PassError> {
        let started = Instant::now();
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
        if graph.outputs().len() != 1 {
            return Err(bad(format!(
                "needs a graph with one output (logits [N, C]), this one has {}",
                graph.outputs().len()
            )));
        }
        let fixed = data.chunk != crate::calibrate::CHUNK;

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

        // Held-out slice: the last samples (whole runs of a fixed leading dimension).
        let n = data.samples;
        let mut hold = (n as f64 * self.holdout as f64).floor() as usize;
        if fixed {
            hold -= hold % data.chunk;
        }
        if hold >= n {
            hold = 0;
        }
        let n_train = n - hold;
        let val_range = if hold == 0 { 0..n } else { n_train..n };
        let batch = if fixed {
            data.chunk
        } else {
            self.batch.min(n_train)
        };
        let samples = Samples {
            inputs: data.inputs,
            teacher: &teacher,
            classes,
            labels: labels.as_deref(),
        };
        let val_idx: Vec<usize> = val_range.clone().collect();
        let val_batches: Vec<Batch> = val_idx
            .chunks(data.chunk)
            .map(|c| samples.batch(c))
            .collect::<Result<_, _>>()?;

        // Layers, matched by name with vl-quantize's result.
        let views = quantizable_layers(graph)?;
        let mut layers = Vec::with_capacity(vlq.layers.len());
        let mut by_node = HashMap::new();
        let mut bias_units = Vec::with_capacity(vlq.layers.len());
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
            // The bias moves in units of its own typical size (RMS of the float bias).
            let rms = (view.bias.iter().map(|b| (b * b) as f64).sum::<f64>()
                / view.bias.len().max(1) as f64)
                .sqrt() as f32;
            bias_units.push(if rms > 1e-6 { rms } else { 1e-2 });
            let (op, weight_shape, macs) = explicit_op(graph, &view)?;
            by_node.insert(view.node, layers.len());
            layers.push(Layer {
                w: view.weight.clone(),
                scales: q.scales.clone(),
                view,
                op,
                weight_shape,
                k,
                macs,
            });
        }
        // A cycle is reported here, as this pass's error, before any training.
        graph
            .topo_order()
            .map_err(|source| PassError::Graph { pass: PASS, source })?;
        let mut tr = Trainer {
            graph,
            by_node,
            layers,
            bits: vlq.bits,
            act_bits: vlq.act_bits,
            plane_counts: plane_counts.clone(),
            temperature: self
                .temperature
                .unwrap_or_else(|| auto_temperature(&teacher[..n_train * classes], classes)),
            ce_weight: self.ce_weight,
        };
        let nk = plane_counts.len();

        // Optimiser state: per layer the shared weights (unit: the row's 8-bit code step),
        // per layer and k the side table.
        let mut adam_w: Vec<Adam> = tr.layers.iter().map(|l| Adam::new(l.w.len())).collect();
        let w_units: Vec<Vec<f32>> = tr
            .layers
            .iter()
            .map(|l| {
                l.scales
                    .iter()
                    .flat_map(|&s| std::iter::repeat_n(s, l.view.cols))
                    .collect()
            })
            .collect();
        let mut topt: Vec<Vec<TableOpt>> = tr
            .layers
            .iter()
            .zip(&bias_units)
            .map(|(l, &bu)| l.k.iter().map(|st| TableOpt::new(st, bu)).collect())
            .collect();

        let mut eval_seconds = 0f64;
        let mut evaluate = |tr: &Trainer<'_>| -> Result<(Vec<f64>, Vec<usize>), PassError> {
            let t = Instant::now();
            let h: Vec<HeldOut> = tr.validation(&val_batches)?;
            eval_seconds += t.elapsed().as_secs_f64();
            Ok((
                h.iter().map(|h| h.loss).collect(),
                h.iter().map(|h| h.agree).collect(),
            ))
        };
        let (start_loss, start_agree) = evaluate(&tr)?;
        let lam: Vec<f32> = lambdas
            .iter()
            .zip(&start_loss)
            .map(|(&l, &l0)| {
                if self.normalize {
                    (l as f64 / l0.max(1e-12)) as f32
                } else {
                    l
                }
            })
            .collect();

        let joint_steps = if self.weight_lr > 0.0 {
            self.steps - (self.steps as f64 * self.tables_only as f64).round() as usize
        } else {
            0
        };
        let table_steps = self.steps - joint_steps;
        let eval_every = self.steps.div_ceil(self.evals).max(1);
        let mut best = Snapshot::of(&tr, 0, start_loss.clone(), start_agree.clone());
        let mut best_k: Vec<KBest> = Vec::new();

        let mut rng = XorShift::new(self.seed);
        let mut perm: Vec<usize> = Vec::new();
        let mut next_batch = |rng: &mut XorShift| -> Vec<usize> {
            let mut idx = Vec::with_capacity(batch);
            while idx.len() < batch {
                if perm.is_empty() {
                    perm = rng.permutation(n_train);
                    perm.reverse();
                }
                idx.push(perm.pop().unwrap_or(0));
            }
            idx
        };
        let mut report = |stage: &str, done: usize| {
            if let Some(p) = ctx.progress.as_mut() {
                p(stage, done as u64, self.steps as u64);
            }
        };
        report(PASS, 0);
        let mut train_seconds = 0f64;
        let mut ema: Vec<Option<f64>> = vec![None; nk];
        for step in 0..self.steps {
            let joint = step < joint_steps;
            if step == joint_steps {
                // Tables-only phase: from the kept snapshot, weights frozen; each k keeps
                // the tables of its own best checkpoint from here on.
                best.restore(&mut tr);
                topt.iter_mut().flatten().for_each(TableOpt::reset);
                best_k = (0..nk)
                    .map(|ki| KBest {
                        step: best.step,
                        tables: tr.layers.iter().map(|l| l.k[ki].clone()).collect(),
                        loss: best.losses[ki],
                        agree: best.agree[ki],
                    })
                    .collect();
            }
            let t0 = Instant::now();
            let idx = next_batch(&mut rng);
            let b = samples.batch(&idx)?;
            let results = tr.gradients(&b, &lam)?;
            let lr = if joint {
                cosine(self.lr, step, joint_steps)
            } else {
                cosine(self.lr, step - joint_steps, table_steps)
            };
            for (li, layer) in tr.layers.iter_mut().enumerate() {
                if joint {
                    let mut gw = vec![0f32; layer.w.len()];
                    for r in &results {
                        if let Some(g) = &r.grads[li] {
                            gw.iter_mut().zip(&g.w).for_each(|(a, b)| *a += b);
                        }
                    }
                    let wlr = cosine(self.weight_lr, step, joint_steps);
                    adam_w[li].step(&mut layer.w, &gw, wlr, &w_units[li]);
                }
                for (ki, r) in results.iter().enumerate() {
                    let Some(g) = &r.grads[li] else {
                        continue;
                    };
                    let st = &mut layer.k[ki];
                    let o = &mut topt[li][ki];
                    o.alpha.step(&mut st.alpha, &g.alpha, lr, &o.ab_unit);
                    o.beta.step(&mut st.beta, &g.beta, lr, &o.ab_unit);
                    o.bias.step(&mut st.bias, &g.bias, lr, &[o.bias_unit]);
                    let mut s = [st.act_scale];
                    o.act.step(&mut s, &[g.act_scale], lr, &[o.act_unit]);
                    // The step size must stay positive; never shrink below 1 % in one go.
                    st.act_scale = s[0].max(st.act_scale * 0.01);
                }
            }
            train_seconds += t0.elapsed().as_secs_f64();
            for (e, r) in ema.iter_mut().zip(&results) {
                let l = r.loss as f64;
                *e = Some(e.map_or(l, |e| 0.9 * e + 0.1 * l));
            }
            let done = step + 1;
            if done % eval_every == 0 || done == joint_steps || done == self.steps {
                let (losses, agree) = evaluate(&tr)?;
                if joint {
                    let ok = losses.iter().zip(&start_loss).all(|(l, l0)| l <= l0);
                    let score = |ls: &[f64]| -> f64 {
                        ls.iter()
                            .zip(&start_loss)
                            .map(|(l, l0)| l / l0.max(1e-12))
                            .sum::<f64>()
                    };
                    if ok && score(&losses) < score(&best.losses) {
                        best = Snapshot::of(&tr, done, losses, agree);
                    }
                } else {
                    for (ki, bk) in best_k.iter_mut().enumerate() {
                        if losses[ki] < bk.loss {
                            *bk = KBest {
                                step: done,
                                tables: tr.layers.iter().map(|l| l.k[ki].clone()).collect(),
                                loss: losses[ki],
                                agree: agree[ki],
                            };
                        }
                    }
                }
            }
            let text: Vec<String> = plane_counts
                .iter()
                .zip(&ema)
                .map(|(k, l)| format!("k={k} loss={:.2e}", l.unwrap_or(0.0)))
                .collect();
            let phase = if joint { "joint" } else { "tables" };
            report(&format!("{PASS} {phase} {}", text.join(" ")), done);
        }

        // The result: the kept snapshot's weights; per k the tables of the best checkpoint.
        best.restore(&mut tr);
        let mut tables_from = vec![best.step; nk];
        let mut final_loss = best.losses.clone();
        let mut final_agree = best.agree.clone();
        for (ki, kb) in best_k.into_iter().enumerate() {
            for (l, t) in tr.layers.iter_mut().zip(kb.tables) {
                l.k[ki] = t;
            }
            tables_from[ki] = kb.step;
            final_loss[ki] = kb.loss;
            final_agree[ki] = kb.agree;
        }

        // Re-derive the planes from the kept weights and write the tables back.
        let mut result = vlq.clone();
        for (q, layer) in result.layers.iter_mut().zip(&tr.layers) {
            if layer.w.iter().any(|v| !v.is_finite()) {
                return Err(PassError::Rewrite {
                    pass: PASS,
                    node: q.name.clone(),
                    reason: "training diverged (non-finite weights); lower weight-lr".to_string(),
                });
            }
            let quant_err = |source| PassError::Quant {
                pass: PASS,
                node: q.name.clone(),
                source,
            };
            let codes =
                quant::quantize_with_scales(&layer.w, &layer.scales, layer.view.cols, vlq.bits)
                    .map_err(quant_err)?;
            q.planes = quant::pack_planes(&codes, q.rows, q.cols, vlq.bits).map_err(quant_err)?;
            for (ki, &pk) in plane_counts.iter().enumerate() {
                let st = layer.k[ki].stored();
                if let Some(t) = q.tables.iter_mut().find(|t| t.k == pk) {
                    t.alpha = st.alpha;
                    t.beta = st.beta;
                    t.bias = st.bias;
                    t.act_scale = st.act_scale;
                    t.act_zero = st.act_zero;
                }
            }
        }
        let macs: u64 = tr.layers.iter().map(|l| l.macs).sum();
        let sample_passes = (self.steps * batch * nk) as u64;
        let summary = OnceQatReport {
            plane_counts,
            temperature: tr.temperature,
            start_loss,
            final_loss,
            start_agree,
            final_agree,
            weights_from_step: best.step,
            tables_from_step: tables_from,
            train_samples: n_train,
            holdout_samples: hold,
            checked_samples: val_idx.len(),
            steps: self.steps,
            batch,
            sample_passes,
            flops: sample_passes as f64 * 6.0 * macs as f64,
            train_seconds,
            eval_seconds,
            total_seconds: started.elapsed().as_secs_f64(),
        };
        // The graph itself is unchanged (like vl-quantize): bitplane-rewrite builds the trained
        // layers from the result, and replaces the float weights with them.
        ctx.results.insert("vl-quantize", Box::new(result));
        ctx.results.insert(PASS, Box::new(summary));
        Ok(false)
    }
}
