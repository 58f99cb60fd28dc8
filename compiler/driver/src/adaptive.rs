//! Fitting an adaptive-precision policy (`strata_ir::adaptive`) to a user's target, on
//! unlabelled samples: the teacher is the full-plane model, so what is fitted is agreement
//! with it, never accuracy on labels the user may not have.
//!
//! Candidate stages: the uniform plane counts every layer has side tables for, each lower
//! count also with the small layers at the full count (`SMALL_LAYER_SHARE`), and
//! per-layer mixes from a greedy ladder over single-layer sensitivities. Every cascade of
//! one to three candidates ending at the full model (and every candidate on its own) is
//! tried, each gate at the quantiles of that stage's margins on the samples (`GRID`). A
//! cascade's cost is the bit-operations it spends per sample on average, as a fraction of
//! the full-plane model's: the first stage's in full (`strata_ir::adaptive::bit_ops`), and
//! each later stage a sample reaches at what the runtime reruns for it
//! (`strata_ir::adaptive::escalation_bit_ops`: the layers whose count changes and what
//! follows them; in full on a graph whose values the runtime cannot keep between stages).
//! Besides the candidates above, each low uniform count (and its small-layer variant) is
//! tried with its later layers at the full count (`tail_configs`): escalating to such a
//! stage keeps the earlier layers' values.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::Serialize;
use strata_ir::adaptive::{bit_ops, escalation_bit_ops, margin, AdaptivePolicy, AdaptiveStage};
use strata_ir::{Graph, NodeKind, Op, Tensor};
use strata_runtime::{QuantPath, RunOptions, Session};

use crate::eval::argmax;

/// Metadata key of the fit's report (JSON [`AdaptiveFit`]).
pub const ADAPTIVE_FIT_KEY: &str = "adaptive_fit";

/// Thresholds tried per gate: the 0, 2.5, …, 100 % quantiles of the stage's margins (every
/// other one in three-stage cascades). Odd, so the last stays on the coarse grid.
const GRID: usize = 41;
/// Longest cascade tried.
const MAX_FITTED_STAGES: usize = 3;

/// What the policy is fitted to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AdaptiveTarget {
    /// `budget=F`: average bit-operations at most `F` × the full-plane model's; the most
    /// agreement with it within that.
    Budget(f64),
    /// `max-drop=P`: at most `P` percentage points of samples whose top-1 differs from the
    /// full-plane model's; the fewest bit-operations within that.
    MaxDrop(f64),
}

impl FromStr for AdaptiveTarget {
    type Err = AdaptiveError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason: &str| AdaptiveError::Target {
            target: s.to_string(),
            reason: reason.to_string(),
        };
        let (key, value) = s
            .split_once('=')
            .ok_or_else(|| bad("expected budget=F or max-drop=P"))?;
        let v: f64 = value
            .trim()
            .parse()
            .map_err(|_| bad("the value is not a number"))?;
        if !v.is_finite() {
            return Err(bad("the value is not finite"));
        }
        match key.trim() {
            "budget" if v > 0.0 => Ok(AdaptiveTarget::Budget(v)),
            "budget" => Err(bad(
                "a budget is a fraction > 0 of the full model's bit-operations",
            )),
            "max-drop" if v >= 0.0 => Ok(AdaptiveTarget::MaxDrop(v)),
            "max-drop" => Err(bad("max-drop is a number of percentage points >= 0")),
            _ => Err(bad("expected budget=F or max-drop=P")),
        }
    }
}

impl std::fmt::Display for AdaptiveTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdaptiveTarget::Budget(v) => write!(f, "budget={v}"),
            AdaptiveTarget::MaxDrop(v) => write!(f, "max-drop={v}"),
        }
    }
}

/// Why no policy was fitted.
#[derive(Debug, thiserror::Error)]
pub enum AdaptiveError {
    #[error("adaptive target `{target}`: {reason}")]
    Target { target: String, reason: String },
    #[error("adaptive target `{target}` cannot be met: the cheapest stage on its own ({config}) already costs {cheapest:.3} of the full model's bit-operations")]
    Impossible {
        target: String,
        config: String,
        cheapest: f64,
    },
    #[error("adaptive precision needs bit-plane layers with plane counts in common ({0})")]
    NoPlaneCounts(String),
    #[error("adaptive precision needs samples: {0}")]
    Samples(String),
    #[error(transparent)]
    Runtime(#[from] strata_runtime::RuntimeError),
    #[error(transparent)]
    Graph(#[from] strata_ir::GraphError),
    #[error(transparent)]
    Container(#[from] strata_ir::container::ContainerError),
}

/// The fitted policy's figures on the fitting samples (stored as [`ADAPTIVE_FIT_KEY`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdaptiveFit {
    pub target: String,
    pub samples: usize,
    /// Each stage's configuration (`k=2`, `k=2, small layers 8`), cheapest first.
    pub stages: Vec<String>,
    /// Each gate's margin (the last stage has none).
    pub min_margins: Vec<f32>,
    /// Average bit-operations as a fraction of the full-plane model's.
    pub cost: f64,
    /// Fraction of samples whose top-1 is the full-plane model's.
    pub agreement: f64,
    /// Fraction of samples answered by each stage.
    pub answered: Vec<f64>,
}

/// A stage configuration: its label and every bit-plane layer's count.
type Config = (String, BTreeMap<String, u8>);

/// One stage configuration, run on every sample.
struct Candidate {
    label: String,
    layer_planes: BTreeMap<String, u8>,
    cost: f64,
    margins: Vec<f32>,
    top1: Vec<usize>,
}

/// The plane counts every bit-plane layer of `graph` has a side table for, up to `available`.
pub fn common_plane_counts(graph: &Graph, available: u8) -> Vec<u8> {
    let mut common: Option<Vec<u8>> = None;
    for id in graph.node_ids() {
        let Ok(node) = graph.node(id) else { continue };
        let NodeKind::Op(Op::Bitplane(b)) = &node.kind else {
            continue;
        };
        let counts: Vec<u8> = b.spec.plane_counts.clone();
        common = Some(match common {
            None => counts,
            Some(c) => c.into_iter().filter(|k| counts.contains(k)).collect(),
        });
    }
    common
        .unwrap_or_default()
        .into_iter()
        .filter(|&k| k <= available)
        .collect()
}

/// Most multiply-accumulates a "small" layer has, as a share of the network's: such layers
/// (a stem convolution over one channel, a classifier head, 1×1 shortcuts) are where few
/// planes hurt most and full planes cost least, so each low stage is also tried with them
/// at the full count.
const SMALL_LAYER_SHARE: f64 = 0.025;

/// The bit-plane layers with at most [`SMALL_LAYER_SHARE`] of the network's MACs.
fn small_layers(graph: &Graph) -> Result<Vec<String>, AdaptiveError> {
    let mut layers = Vec::new();
    for id in graph.node_ids() {
        let Ok(node) = graph.node(id) else { continue };
        if matches!(node.kind, NodeKind::Op(Op::Bitplane(_))) {
            layers.push((node.name.clone(), graph.node_macs(id)?));
        }
    }
    let total: u64 = layers.iter().map(|(_, m)| m).sum();
    Ok(layers
        .into_iter()
        .filter(|(_, m)| (*m as f64) <= SMALL_LAYER_SHARE * total as f64)
        .map(|(n, _)| n)
        .collect())
}

/// Samples the per-layer sensitivities are measured on (the first ones of the fitting set).
const SENSITIVITY_SAMPLES: usize = 2000;
/// Bit-operation levels (fractions of the full model's) at which a mixed configuration from
/// the ladder becomes a candidate stage.
const LADDER_LEVELS: [f64; 8] = [0.28, 0.32, 0.36, 0.4, 0.45, 0.5, 0.6, 0.7];

/// Each of `bases` with its later layers (in execution order) at the full count `top`: from
/// the second half of the layers, and from the second layer. A sample escalated from a base
/// to one of these reruns the later layers only.
fn tail_configs(graph: &Graph, bases: &[Config], top: u8) -> Result<Vec<Config>, AdaptiveError> {
    let layers: Vec<String> = graph
        .topo_order()?
        .into_iter()
        .filter_map(|id| graph.node(id).ok())
        .filter(|n| matches!(n.kind, NodeKind::Op(Op::Bitplane(_))))
        .map(|n| n.name.clone())
        .collect();
    let mut from: Vec<usize> = vec![layers.len() / 2, 1];
    from.retain(|&f| f >= 1 && f < layers.len());
    from.dedup();
    let mut configs = Vec::new();
    for (label, base) in bases {
        for &f in &from {
            let mut planes = base.clone();
            for l in &layers[f..] {
                planes.insert(l.clone(), top);
            }
            configs.push((format!("{label}, layers {}.. {top}", f + 1), planes));
        }
    }
    Ok(configs)
}

/// Per-layer plane counts at several costs, from a greedy ladder over additive
/// sensitivities: for every layer and count, the fraction of samples whose top-1 leaves the
/// full-plane model's when only that layer drops to that count; from every layer at the
/// lowest count, each step raises the layer whose next count removes the most sensitivity
/// per bit-operation added. Where precision matters differs by layer, so these stages are
/// more accurate than a uniform count of the same cost.
fn mixed_ladder(
    graph: &Graph,
    session: &Session<'_>,
    samples: &Tensor,
    counts: &[u8],
    full_ops: f64,
) -> Result<Vec<Config>, AdaptiveError> {
    let Some((&top, lower)) = counts.split_last() else {
        return Ok(Vec::new());
    };
    let layers: Vec<String> = uniform(graph, top).into_keys().collect();
    if lower.is_empty() || layers.len() < 2 {
        return Ok(Vec::new());
    }
    let n = samples.shape().first().copied().unwrap_or(0);
    let sub = first_rows(samples, n.min(SENSITIVITY_SAMPLES))?;
    let top1 = |planes: &BTreeMap<String, u8>| -> Result<Vec<usize>, AdaptiveError> {
        Ok(margins_and_top1(session, &sub, planes)?.1)
    };
    let teacher = top1(&uniform(graph, top))?;
    // sensitivity[l][c]: disagreement with layer l alone at counts[c] (0 at the top count).
    let mut sensitivity = vec![vec![0.0f64; counts.len()]; layers.len()];
    for (l, name) in layers.iter().enumerate() {
        for (c, &k) in lower.iter().enumerate() {
            let mut planes = uniform(graph, top);
            planes.insert(name.clone(), k);
            let got = top1(&planes)?;
            let differ = got.iter().zip(&teacher).filter(|(a, b)| a != b).count();
            sensitivity[l][c] = differ as f64 / teacher.len().max(1) as f64;
        }
    }
    let mut level = vec![0usize; layers.len()];
    let planes_of = |level: &[usize]| -> BTreeMap<String, u8> {
        layers
            .iter()
            .zip(level)
            .map(|(name, &c)| (name.clone(), counts[c]))
            .collect()
    };
    let mut ladder = Vec::new();
    let mut cost = bit_ops(graph, &planes_of(&level), top)? as f64 / full_ops;
    while level.iter().any(|&c| c + 1 < counts.len()) {
        let mut best: Option<(f64, usize, f64)> = None;
        for l in 0..layers.len() {
            if level[l] + 1 >= counts.len() {
                continue;
            }
            let mut next = level.clone();
            next[l] += 1;
            let next_cost = bit_ops(graph, &planes_of(&next), top)? as f64 / full_ops;
            let gain = sensitivity[l][level[l]] - sensitivity[l][level[l] + 1];
            let ratio = gain / (next_cost - cost).max(1e-12);
            if best.is_none_or(|(r, _, _)| ratio > r) {
                best = Some((ratio, l, next_cost));
            }
        }
        let Some((_, l, next_cost)) = best else { break };
        level[l] += 1;
        cost = next_cost;
        ladder.push((cost, planes_of(&level)));
    }
    // The ladder's last configuration at or below each level.
    let mut picked: Vec<Config> = Vec::new();
    for &target in &LADDER_LEVELS {
        let Some((c, planes)) = ladder.iter().rev().find(|(c, _)| *c <= target) else {
            continue;
        };
        if picked.iter().all(|(_, p)| p != planes) && planes.values().any(|&k| k != top) {
            picked.push((format!("mixed at {c:.2}"), planes.clone()));
        }
    }
    Ok(picked)
}

/// Each sample's margin and top-1 with the bit-plane layers at `planes` (integer path).
fn margins_and_top1(
    session: &Session<'_>,
    samples: &Tensor,
    planes: &BTreeMap<String, u8>,
) -> Result<(Vec<f32>, Vec<usize>), AdaptiveError> {
    let options = RunOptions {
        planes: None,
        per_layer: planes.clone(),
        path: QuantPath::Integer,
    };
    let out = session
        .run_with(std::slice::from_ref(samples), &options)?
        .into_iter()
        .next()
        .ok_or_else(|| AdaptiveError::Samples("the graph has no output".into()))?;
    let values = out
        .as_f32()
        .ok_or_else(|| AdaptiveError::Samples("the output is not float32".into()))?;
    let n = samples.shape().first().copied().unwrap_or(1).max(1);
    let rows = values.chunks((values.len() / n).max(1));
    Ok((
        rows.clone().map(margin).collect(),
        rows.map(argmax).collect(),
    ))
}

/// The first `n` samples of `t`.
fn first_rows(t: &Tensor, n: usize) -> Result<Tensor, AdaptiveError> {
    crate::build::first_rows(t.clone(), n).map_err(|e| AdaptiveError::Samples(e.to_string()))
}

/// Every bit-plane layer at `k`.
pub fn uniform(graph: &Graph, k: u8) -> BTreeMap<String, u8> {
    graph
        .node_ids()
        .filter_map(|id| graph.node(id).ok())
        .filter(|n| matches!(n.kind, NodeKind::Op(Op::Bitplane(_))))
        .map(|n| (n.name.clone(), k))
        .collect()
}

/// Fits a policy to `target` on `samples` (the graph's one input, batch on axis 0), for a
/// model with `available` planes.
pub fn fit(
    graph: &Graph,
    available: u8,
    samples: &Tensor,
    target: AdaptiveTarget,
) -> Result<(AdaptivePolicy, AdaptiveFit), AdaptiveError> {
    let counts = common_plane_counts(graph, available);
    let Some(&top) = counts.last() else {
        return Err(AdaptiveError::NoPlaneCounts(format!(
            "{available} planes present"
        )));
    };
    let n = samples.shape().first().copied().unwrap_or(0);
    if n == 0 {
        return Err(AdaptiveError::Samples("the sample tensor is empty".into()));
    }
    let full_ops = bit_ops(graph, &uniform(graph, top), top)?.max(1) as f64;
    let session = Session::new(graph);
    let small = small_layers(graph)?;
    // Uniform counts, and below the full count each also with the small layers at it.
    let mut configs: Vec<Config> = Vec::new();
    // The low counts (at most half the full one), the bases of the tail candidates: above
    // them a tail costs nearly a full stage, and every candidate is a run over the samples.
    let mut low: Vec<Config> = Vec::new();
    for &k in &counts {
        configs.push((format!("k={k}"), uniform(graph, k)));
        if k < top && !small.is_empty() {
            let mut planes = uniform(graph, k);
            for name in &small {
                planes.insert(name.clone(), top);
            }
            configs.push((format!("k={k}, small layers {top}"), planes));
        }
        if 2 * k <= top {
            low.extend(
                configs
                    .iter()
                    .rev()
                    .take(1 + usize::from(!small.is_empty()))
                    .cloned(),
            );
        }
    }
    configs.extend(tail_configs(graph, &low, top)?);
    configs.extend(mixed_ladder(graph, &session, samples, &counts, full_ops)?);
    // One candidate per configuration (a tail over the small layers can be the full model):
    // the first label stays, so the uniform counts keep theirs.
    let mut seen = std::collections::HashSet::new();
    configs.retain(|(_, planes)| seen.insert(planes.clone()));
    let mut candidates = Vec::with_capacity(configs.len());
    for (label, layer_planes) in configs {
        let cost = bit_ops(graph, &layer_planes, top)? as f64 / full_ops;
        let (margins, top1) = margins_and_top1(&session, samples, &layer_planes)?;
        candidates.push(Candidate {
            label,
            layer_planes,
            cost,
            margins,
            top1,
        });
    }
    // Cheapest first; the full-plane model (the teacher) is the most expensive, last.
    candidates.sort_by(|a, b| a.cost.total_cmp(&b.cost));
    if let AdaptiveTarget::Budget(b) = target {
        let cheapest = &candidates[0];
        if b < cheapest.cost {
            return Err(AdaptiveError::Impossible {
                target: target.to_string(),
                config: cheapest.label.clone(),
                cheapest: cheapest.cost,
            });
        }
    }
    let teacher = candidates
        .last()
        .map(|c| c.top1.clone())
        .unwrap_or_default();
    let reuse = session.reuses_across_stages();
    let mut escalation = Vec::with_capacity(candidates.len());
    for a in &candidates {
        let mut row = Vec::with_capacity(candidates.len());
        for b in &candidates {
            row.push(if reuse {
                escalation_bit_ops(graph, &a.layer_planes, &b.layer_planes, top)? as f64 / full_ops
            } else {
                b.cost
            });
        }
        escalation.push(row);
    }
    let best = search(&candidates, &escalation, &teacher, target);
    let stages = best
        .chain
        .iter()
        .enumerate()
        .map(|(s, &c)| AdaptiveStage {
            layer_planes: candidates[c].layer_planes.clone(),
            min_margin: best.margins.get(s).copied().unwrap_or(0.0),
        })
        .collect();
    let policy = AdaptivePolicy {
        stages,
        target: target.to_string(),
    };
    let fit = AdaptiveFit {
        target: target.to_string(),
        samples: n,
        stages: best
            .chain
            .iter()
            .map(|&c| candidates[c].label.clone())
            .collect(),
        min_margins: best.margins.clone(),
        cost: best.cost,
        agreement: best.agreement,
        answered: best.answered,
    };
    Ok((policy, fit))
}

/// Fits a policy for the model in container `bytes` on `samples` and returns the container
/// rewritten with it (graph, planes present, per-layer choice and metadata unchanged; the
/// fit's figures added under [`ADAPTIVE_FIT_KEY`]).
pub fn adapt_container(
    bytes: &[u8],
    samples: &Tensor,
    target: AdaptiveTarget,
) -> Result<(Vec<u8>, AdaptiveFit), AdaptiveError> {
    let loaded = strata_ir::container::read_container(bytes)?;
    let (policy, fit) = fit(&loaded.graph, loaded.available_planes, samples, target)?;
    let mut metadata = loaded.metadata;
    metadata.insert(
        ADAPTIVE_FIT_KEY.into(),
        serde_json::to_string(&fit).map_err(|e| AdaptiveError::Samples(e.to_string()))?,
    );
    let out = strata_ir::container::write_container(
        &loaded.graph,
        &strata_ir::container::ContainerOptions {
            metadata,
            layer_planes: loaded.layer_planes,
            adaptive: Some(policy),
        },
    )?;
    Ok((out, fit))
}

/// Each stage's plane counts in short: `k=4` when uniform, else `mixed(min..max)`.
pub fn stage_planes(policy: &AdaptivePolicy) -> Vec<String> {
    policy
        .stages
        .iter()
        .map(|s| {
            let lo = s.layer_planes.values().min();
            let hi = s.layer_planes.values().max();
            match (lo, hi) {
                (Some(a), Some(b)) if a == b => format!("k={a}"),
                (Some(a), Some(b)) => format!("mixed({a}..{b})"),
                _ => "default".to_string(),
            }
        })
        .collect()
}

/// Average bit-operations per sample of a run in which stage `i` ran `ran[i]` samples, as
/// a fraction of the full-plane model's (every bit-plane layer at its largest count present):
/// each later stage at what the runtime reruns for an escalated sample.
pub fn policy_cost(
    graph: &Graph,
    available: u8,
    policy: &AdaptivePolicy,
    ran: &[usize],
) -> Result<f64, AdaptiveError> {
    let top = common_plane_counts(graph, available)
        .last()
        .copied()
        .unwrap_or(available);
    let full = bit_ops(graph, &uniform(graph, top), top)?.max(1) as f64;
    let n = ran.first().copied().unwrap_or(0).max(1) as f64;
    let reuse = Session::new(graph).reuses_across_stages();
    let mut spent = 0.0;
    for (s, (stage, &count)) in policy.stages.iter().zip(ran).enumerate() {
        let ops = match s.checked_sub(1).map(|p| &policy.stages[p]) {
            Some(prev) if reuse => {
                escalation_bit_ops(graph, &prev.layer_planes, &stage.layer_planes, available)?
            }
            _ => bit_ops(graph, &stage.layer_planes, available)?,
        };
        spent += ops as f64 * count as f64;
    }
    Ok(spent / n / full)
}

/// A cascade over candidate indices with its gates and figures.
#[derive(Debug, Clone)]
struct Scored {
    chain: Vec<usize>,
    margins: Vec<f32>,
    cost: f64,
    agreement: f64,
    answered: Vec<f64>,
}

/// The best cascade for `target` (the full count alone always qualifies for `max-drop`; the
/// cheapest count alone for any budget `fit` accepted).
/// `escalation[a][b]`: the cost of stage `b` for a sample escalated from stage `a`.
fn search(
    candidates: &[Candidate],
    escalation: &[Vec<f64>],
    teacher: &[usize],
    target: AdaptiveTarget,
) -> Scored {
    let top = candidates.len() - 1;
    let n = teacher.len();
    let mut chains: Vec<Vec<usize>> = (0..candidates.len()).map(|c| vec![c]).collect();
    for a in 0..top {
        chains.push(vec![a, top]);
        for b in a + 1..top {
            chains.push(vec![a, b, top]);
        }
    }
    chains.retain(|c| c.len() <= MAX_FITTED_STAGES);
    let grids: Vec<Vec<f32>> = candidates.iter().map(|c| quantiles(&c.margins)).collect();
    let better = |a: &Scored, b: &Scored| -> bool {
        match target {
            AdaptiveTarget::Budget(budget) => {
                let (fa, fb) = (a.cost <= budget + 1e-12, b.cost <= budget + 1e-12);
                fa && !fb
                    || fa == fb
                        && (a.agreement > b.agreement
                            || a.agreement == b.agreement && a.cost < b.cost)
            }
            AdaptiveTarget::MaxDrop(points) => {
                let ok = |s: &Scored| (1.0 - s.agreement) * 100.0 <= points + 1e-9;
                let (fa, fb) = (ok(a), ok(b));
                fa && !fb
                    || fa == fb
                        && (a.cost < b.cost || a.cost == b.cost && a.agreement > b.agreement)
            }
        }
    };
    let mut best: Option<Scored> = None;
    let mut gates = Vec::new();
    for chain in &chains {
        // Every combination of thresholds for the chain's gates (all but the last stage).
        let gate_count = chain.len() - 1;
        // Two gates: every other threshold of each (the last, "never accept", included),
        // which keeps the search over every pair of stages to seconds.
        let stride = if gate_count > 1 { 2 } else { 1 };
        let mut idx = vec![0usize; gate_count];
        loop {
            gates.clear();
            gates.extend((0..gate_count).map(|g| grids[chain[g]][idx[g] * stride]));
            let scored = score(candidates, escalation, teacher, chain, &gates, n);
            if best.as_ref().is_none_or(|b| better(&scored, b)) {
                best = Some(scored);
            }
            // Next combination (odometer); a chain without gates has exactly one.
            let mut g = 0;
            while g < gate_count {
                idx[g] += 1;
                if idx[g] * stride < GRID {
                    break;
                }
                idx[g] = 0;
                g += 1;
            }
            if g == gate_count {
                break;
            }
        }
    }
    best.expect("at least the single-stage chains are scored")
}

/// Cost, agreement and answered fractions of `chain` with `gates` on the samples.
fn score(
    candidates: &[Candidate],
    escalation: &[Vec<f64>],
    teacher: &[usize],
    chain: &[usize],
    gates: &[f32],
    n: usize,
) -> Scored {
    let mut cost = 0.0;
    let mut agree = 0usize;
    let mut answered = vec![0usize; chain.len()];
    for (i, &want) in teacher.iter().enumerate().take(n) {
        for (s, &c) in chain.iter().enumerate() {
            let cand = &candidates[c];
            cost += match s {
                0 => cand.cost,
                _ => escalation[chain[s - 1]][c],
            };
            // The same comparison as `AdaptivePolicy::accepts`.
            if s + 1 == chain.len() || cand.margins[i] >= gates[s] {
                agree += usize::from(cand.top1[i] == want);
                answered[s] += 1;
                break;
            }
        }
    }
    Scored {
        chain: chain.to_vec(),
        margins: gates.to_vec(),
        cost: cost / n as f64,
        agreement: agree as f64 / n as f64,
        answered: answered.iter().map(|&a| a as f64 / n as f64).collect(),
    }
}

/// [`GRID`] thresholds from the margins' quantiles; the largest is above every finite
/// margin, so "never accept here" is among them.
fn quantiles(margins: &[f32]) -> Vec<f32> {
    let mut sorted: Vec<f32> = margins.iter().copied().filter(|m| !m.is_nan()).collect();
    sorted.sort_by(f32::total_cmp);
    if sorted.is_empty() {
        return vec![0.0; GRID];
    }
    (0..GRID)
        .map(|q| {
            if q + 1 == GRID {
                return f32::MAX;
            }
            let pos = q * (sorted.len() - 1) / (GRID - 1);
            sorted[pos].max(0.0)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_refuse_nonsense() {
        assert_eq!(
            "budget=0.5".parse::<AdaptiveTarget>().unwrap(),
            AdaptiveTarget::Budget(0.5)
        );
        assert_eq!(
            "max-drop=0.1".parse::<AdaptiveTarget>().unwrap(),
            AdaptiveTarget::MaxDrop(0.1)
        );
        for bad in [
            "budget=0",
            "budget=-1",
            "max-drop=-0.1",
            "speed=2",
            "budget",
            "budget=x",
        ] {
            let e = bad.parse::<AdaptiveTarget>().unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    /// Two counts; the cheap one is right exactly when confident (margin ≥ 2).
    fn toy() -> (Vec<Candidate>, Vec<usize>) {
        let cheap = Candidate {
            label: "k=2".into(),
            layer_planes: BTreeMap::new(),
            cost: 0.25,
            margins: vec![3.0, 2.5, 0.5, 1.0, 4.0, 0.1, 2.0, 5.0],
            top1: vec![1, 1, 0, 0, 1, 0, 1, 1],
        };
        let full = Candidate {
            label: "k=8".into(),
            layer_planes: BTreeMap::new(),
            cost: 1.0,
            margins: vec![9.0; 8],
            top1: vec![1; 8],
        };
        (vec![cheap, full], vec![1; 8])
    }

    /// Every escalation paying for its whole stage.
    fn full_reruns(c: &[Candidate]) -> Vec<Vec<f64>> {
        c.iter()
            .map(|_| c.iter().map(|b| b.cost).collect())
            .collect()
    }

    #[test]
    fn the_search_meets_each_target_at_the_least_cost() {
        let (c, t) = toy();
        // No drop allowed: escalate the three uncertain samples (margin < 2).
        let s = search(&c, &full_reruns(&c), &t, AdaptiveTarget::MaxDrop(0.0));
        assert_eq!(s.chain, vec![0, 1]);
        assert_eq!(s.agreement, 1.0);
        assert!((s.cost - (0.25 + 3.0 / 8.0)).abs() < 1e-12, "{s:?}");
        // Half the budget cannot escalate all three: the best agreement within it.
        let s = search(&c, &full_reruns(&c), &t, AdaptiveTarget::Budget(0.5));
        assert!(s.cost <= 0.5, "{s:?}");
        assert_eq!(s.agreement, 7.0 / 8.0, "{s:?}");
        // A loose drop: the cheap count alone.
        let s = search(&c, &full_reruns(&c), &t, AdaptiveTarget::MaxDrop(50.0));
        assert_eq!(s.chain, vec![0]);
    }

    /// An escalation that reruns only part of the network costs that part: the same chain
    /// and gates, and each escalated sample pays 0.6 instead of 1.0.
    #[test]
    fn escalations_cost_what_they_rerun() {
        let (c, t) = toy();
        let reuse = vec![vec![0.25, 0.6], vec![0.25, 1.0]];
        let s = search(&c, &reuse, &t, AdaptiveTarget::MaxDrop(0.0));
        assert_eq!(s.chain, vec![0, 1]);
        assert_eq!(s.agreement, 1.0);
        assert!((s.cost - (0.25 + 3.0 / 8.0 * 0.6)).abs() < 1e-12, "{s:?}");
        // The saving lets a budget of 0.5 escalate all three uncertain samples (7 of 8
        // agree when each escalation costs 1.0: above).
        let s = search(&c, &reuse, &t, AdaptiveTarget::Budget(0.5));
        assert_eq!(s.agreement, 1.0, "{s:?}");
        assert!(s.cost <= 0.5, "{s:?}");
    }
}
