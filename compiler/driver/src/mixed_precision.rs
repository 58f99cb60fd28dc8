//! Mixed precision under a weight-byte budget (`strata compile --budget-bytes N`).
//!
//! Layers differ in how much accuracy they lose when planes are dropped, and in how many
//! bytes a plane of theirs costs, so a per-layer plane count beats one uniform count at the
//! same size. The search:
//!
//! 1. **Cost** of layer `l` at `k` planes: its weight bytes in the packed-plane layout
//!    (target `armv7m`: kept planes `rows·ceil(cols/64)·8·k` plus the side tables for counts
//!    `≤ k`), read from the backend-neutral lowering the C backend prints
//!    ([`Lowered`](crate::backend::lower::Lowered)), so the budget is exactly what
//!    `PREFIX_WEIGHT_BYTES` says for that target, without printing any C; constants outside
//!    the bit-plane layers are a fixed cost. The other targets store codes rebuilt from the
//!    kept planes at `k` bits a weight in blocks padded to 16 rows and channel pairs, so the
//!    packed layout (no such padding) is the one whose bytes measure what is kept.
//! 2. **Sensitivity** of layer `l` at `k`: the increase of the mean |logit − FP32 logit| on
//!    the calibration samples when only layer `l` drops from the largest plane count to `k`
//!    (the runtime's per-layer plane selection, integer path). Not KL: calibration images come
//!    from the training set, where the FP32 softmax is saturated, so KL hides large logit
//!    errors there (measured on the MNIST CNN: a choice with calibration KL 6e-5 had test KL
//!    0.016, while mean |Δlogit| was 6.6 on both sets).
//! 3. **Choice**: an exact multiple-choice knapsack over the layers (dynamic programming over
//!    the Pareto front of (bytes, summed sensitivity)), minimising the summed sensitivity with
//!    total bytes `≤ N`; the best few candidates are then run as a whole and the one with
//!    the lowest measured error wins (sensitivities are not exactly additive).

use std::collections::BTreeMap;

use strata_ir::{Graph, NodeKind, Op, Tensor};
use strata_runtime::{run_with, RunOptions, RuntimeError};

use crate::backend::c::Target;
use crate::backend::lower::{layer_names, lower, LowerError, LowerOptions};

/// Candidates from the knapsack that are measured as a whole before one is chosen.
const CANDIDATES: usize = 8;

/// Why no per-layer choice could be made.
#[derive(Debug, thiserror::Error)]
pub enum MixedError {
    #[error("--budget-bytes {budget}: even the smallest plane count of every layer needs {min_bytes} weight bytes")]
    Budget { budget: u64, min_bytes: u64 },
    #[error("the model has no bit-plane layers: nothing to choose plane counts for")]
    NoLayers,
    #[error("layer `{node}`: its plane counts {counts:?} differ from `{first}`'s {first_counts:?}; mixed precision needs one set of plane counts")]
    Counts {
        node: String,
        counts: Vec<u8>,
        first: String,
        first_counts: Vec<u8>,
    },
    #[error("mixed precision: output 0 is {0}; expected f32 logits [N, classes]")]
    Output(String),
    #[error("mixed precision: {0}")]
    Runtime(#[from] RuntimeError),
    #[error("mixed precision: byte accounting by the lowering: {0}")]
    Lower(#[from] LowerError),
}

/// One layer's cost and sensitivity at one plane count.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerOption {
    pub planes: u8,
    /// C-backend weight bytes of the layer at this count.
    pub weight_bytes: u64,
    /// Increase of the calibration mean |Δlogit| over the all-largest model when only this
    /// layer runs at `planes` (0 at the largest count).
    pub delta_error: f64,
}

/// Everything measured for one layer.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LayerSensitivity {
    pub node: String,
    pub options: Vec<LayerOption>,
}

/// The result of the search: the per-layer counts and what they cost and measure.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MixedPlan {
    pub budget_bytes: u64,
    /// The chosen plane count of every bit-plane layer.
    pub layer_planes: BTreeMap<String, u8>,
    /// C-backend weight bytes of the chosen model (`≤ budget_bytes`).
    pub weight_bytes: u64,
    /// Measured mean |logit − FP32 logit| of the chosen model on the calibration samples.
    pub calibration_error: f64,
    /// The largest uniform plane count within the budget, for comparison.
    pub uniform: Option<UniformPoint>,
    pub layers: Vec<LayerSensitivity>,
}

/// The metadata key a budgeted compile stores its [`MixedPlan`] under (JSON).
pub const MIXED_PRECISION_KEY: &str = "mixed_precision";

impl MixedPlan {
    /// The plan stored in a container's metadata, if any.
    pub fn from_metadata(
        metadata: &BTreeMap<String, String>,
    ) -> Option<Result<MixedPlan, serde_json::Error>> {
        metadata
            .get(MIXED_PRECISION_KEY)
            .map(|text| serde_json::from_str(text))
    }
}

/// A uniform plane count measured the same way as the mixed choice.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UniformPoint {
    pub planes: u8,
    pub weight_bytes: u64,
    pub calibration_error: f64,
}

/// Mean |student − teacher| over all elements of two equally shaped f32 outputs.
pub fn mean_abs_error(teacher: &Tensor, student: &Tensor) -> Result<f64, MixedError> {
    let (Some(t), Some(s)) = (teacher.as_f32(), student.as_f32()) else {
        return Err(MixedError::Output(format!("{}", student.dtype())));
    };
    if t.is_empty() || t.len() != s.len() {
        return Err(MixedError::Output(format!(
            "shape {:?} (FP32 {:?})",
            student.shape(),
            teacher.shape()
        )));
    }
    let sum: f64 = t
        .iter()
        .zip(s)
        .map(|(&a, &b)| (a as f64 - b as f64).abs())
        .sum();
    Ok(sum / t.len() as f64)
}

/// The plane counts every bit-plane layer can run at (with the planes present), checked to
/// be the same for all layers, and the layer names in C-backend order.
fn layer_counts(graph: &Graph) -> Result<(Vec<String>, Vec<u8>), MixedError> {
    let names = layer_names(graph)?;
    let mut first: Option<(String, Vec<u8>)> = None;
    for id in graph.node_ids() {
        let Ok(node) = graph.node(id) else { continue };
        let NodeKind::Op(Op::Bitplane(b)) = &node.kind else {
            continue;
        };
        let present = graph
            .node_inputs(id)
            .get(strata_ir::ops::bitplane::INPUT_PLANES)
            .and_then(|&v| graph.constant_value(v))
            .and_then(|t| t.shape().first().copied())
            .unwrap_or(0);
        let counts: Vec<u8> = b
            .spec
            .plane_counts
            .iter()
            .copied()
            .filter(|&k| k as usize <= present)
            .collect();
        match &first {
            None => first = Some((node.name.clone(), counts)),
            Some((f, fc)) if *fc != counts => {
                return Err(MixedError::Counts {
                    node: node.name.clone(),
                    counts,
                    first: f.clone(),
                    first_counts: fc.clone(),
                })
            }
            Some(_) => {}
        }
    }
    match first {
        Some((_, counts)) if !counts.is_empty() => Ok((names, counts)),
        _ => Err(MixedError::NoLayers),
    }
}

/// Chooses a plane count per bit-plane layer of the quantized `graph` that minimises the
/// loss of accuracy against `fp32_logits` (the FP32 model's output 0 on `calibration`) with
/// C-backend weight bytes `≤ budget`.
pub fn choose(
    graph: &Graph,
    calibration: &[Tensor],
    fp32_logits: &Tensor,
    budget: u64,
) -> Result<MixedPlan, MixedError> {
    let (names, counts) = layer_counts(graph)?;
    let kmax = *counts.last().ok_or(MixedError::NoLayers)?;
    let n_layers = names.len();

    // Costs from the lowering: layer bytes per count, and the fixed rest.
    let mut cost = vec![vec![0u64; counts.len()]; n_layers];
    let mut fixed = 0u64;
    for (j, &k) in counts.iter().enumerate() {
        let lowered = lower(
            graph,
            &LowerOptions {
                planes: k,
                layer_planes: None,
                // Packed planes: the one layout whose size is the information kept.
                layout: Target::Armv7m.layout(),
                code_bits: Default::default(),
            },
        )?;
        let layers: u64 = lowered.layers.iter().map(|l| l.weight_bytes()).sum();
        fixed = lowered.weight_bytes() - layers;
        for (l, layer) in lowered.layers.iter().enumerate() {
            cost[l][j] = layer.weight_bytes();
        }
    }

    let error_of = |per_layer: BTreeMap<String, u8>| -> Result<f64, MixedError> {
        let options = RunOptions {
            planes: Some(kmax),
            per_layer,
            ..Default::default()
        };
        let out = run_with(graph, calibration, &options)?;
        let logits = out
            .into_iter()
            .next()
            .ok_or_else(|| MixedError::Output("missing".into()))?;
        mean_abs_error(fp32_logits, &logits)
    };

    // Sensitivities: one layer at a time below the largest count.
    let base = error_of(BTreeMap::new())?;
    let mut delta = vec![vec![0f64; counts.len()]; n_layers];
    for (l, name) in names.iter().enumerate() {
        for (j, &k) in counts.iter().enumerate() {
            if k != kmax {
                delta[l][j] = error_of(BTreeMap::from([(name.clone(), k)]))? - base;
            }
        }
    }

    // Exact multiple-choice knapsack over the Pareto front of (bytes, summed sensitivity).
    let mut front: Vec<(u64, f64, Vec<usize>)> = vec![(fixed, 0.0, Vec::new())];
    for l in 0..n_layers {
        let mut next = Vec::with_capacity(front.len() * counts.len());
        for (bytes, est, choice) in &front {
            for j in 0..counts.len() {
                let b = bytes + cost[l][j];
                if b <= budget {
                    let mut c = choice.clone();
                    c.push(j);
                    next.push((b, est + delta[l][j], c));
                }
            }
        }
        next.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
        front.clear();
        let mut best = f64::INFINITY;
        for s in next {
            if s.1 < best {
                best = s.1;
                front.push(s);
            }
        }
        if front.is_empty() {
            let min_bytes = fixed
                + cost
                    .iter()
                    .map(|c| c.iter().copied().min().unwrap_or(0))
                    .sum::<u64>();
            return Err(MixedError::Budget { budget, min_bytes });
        }
    }

    // Measure the most promising candidates as a whole.
    front.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    let to_map = |choice: &[usize]| -> BTreeMap<String, u8> {
        names
            .iter()
            .zip(choice)
            .map(|(n, &j)| (n.clone(), counts[j]))
            .collect()
    };
    let mut chosen: Option<(f64, u64, Vec<usize>)> = None;
    for (bytes, _, choice) in front.iter().take(CANDIDATES) {
        let err = error_of(to_map(choice))?;
        let better = match &chosen {
            None => true,
            Some((best, best_bytes, _)) => err < *best || (err == *best && bytes < best_bytes),
        };
        if better {
            chosen = Some((err, *bytes, choice.clone()));
        }
    }
    let (calibration_error, weight_bytes, choice) = chosen.ok_or(MixedError::NoLayers)?;

    // The uniform reference: the largest count whose bytes fit.
    let mut uniform = None;
    for (j, &k) in counts.iter().enumerate().rev() {
        let bytes = fixed + cost.iter().map(|c| c[j]).sum::<u64>();
        if bytes <= budget {
            let all = names.iter().map(|n| (n.clone(), k)).collect();
            uniform = Some(UniformPoint {
                planes: k,
                weight_bytes: bytes,
                calibration_error: error_of(all)?,
            });
            break;
        }
    }

    let layers = names
        .iter()
        .enumerate()
        .map(|(l, node)| LayerSensitivity {
            node: node.clone(),
            options: counts
                .iter()
                .enumerate()
                .map(|(j, &k)| LayerOption {
                    planes: k,
                    weight_bytes: cost[l][j],
                    delta_error: delta[l][j],
                })
                .collect(),
        })
        .collect();
    Ok(MixedPlan {
        budget_bytes: budget,
        layer_planes: to_map(&choice),
        weight_bytes,
        calibration_error,
        uniform,
        layers,
    })
}
