//! Adaptive precision: a policy, stored in the container, that picks each input's plane
//! counts from what the network computed so far.
//!
//! The policy is a cascade. Stage 0 runs every bit-plane layer at its own (low) count; when
//! the output is confident — the gap between its largest and second-largest element is at
//! least the stage's `min_margin` — that answer is kept, otherwise the input goes to the next
//! stage, whose counts are higher. The last stage always answers. Easy inputs pay for the
//! cheap stage only; the full-plane model sees only the hard ones.
//!
//! The decision is [`margin`] compared with `>=`: comparisons and one f32 subtraction, so the
//! runtime and the generated C decide identically on identical outputs. Everything that
//! executes or reports a policy reads [`margin`], [`AdaptivePolicy::accepts`] and
//! [`bit_ops`] from here.

use std::collections::{BTreeMap, HashSet};

use crate::container::ContainerError;
use crate::{Graph, GraphError, NodeId, NodeKind, Op};

/// Most stages a policy may have: each is one more run of the network for a hard input.
pub const MAX_STAGES: usize = 8;

/// One step of the cascade: the plane count of every bit-plane layer, and how confident the
/// output must be to stop here.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveStage {
    /// Plane count per bit-plane layer (node name → k); a layer not named runs at its
    /// default count.
    pub layer_planes: BTreeMap<String, u8>,
    /// Accept this stage's output when [`margin`] of it is `>=` this; ignored on the last
    /// stage, which always answers. Finite and `>= 0`.
    pub min_margin: f32,
}

/// A cascade of [`AdaptiveStage`]s, cheapest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptivePolicy {
    pub stages: Vec<AdaptiveStage>,
    /// The target it was fitted to, as the user wrote it (`budget=0.5`, `max-drop=0.1`).
    pub target: String,
}

/// The confidence of one sample's output: its largest element minus its second largest
/// (`+inf` with fewer than two elements; a NaN element never counts as larger). The first
/// maximum wins ties, so equal top elements give 0.
pub fn margin(sample: &[f32]) -> f32 {
    let (mut best, mut second) = (f32::NEG_INFINITY, f32::NEG_INFINITY);
    if sample.len() < 2 {
        return f32::INFINITY;
    }
    for &v in sample {
        if v > best {
            second = best;
            best = v;
        } else if v > second {
            second = v;
        }
    }
    best - second
}

impl AdaptivePolicy {
    /// Whether stage `stage` keeps its output `sample` (`false`: escalate to `stage + 1`).
    pub fn accepts(&self, stage: usize, sample: &[f32]) -> bool {
        match self.stages.get(stage) {
            Some(s) if stage + 1 < self.stages.len() => margin(sample) >= s.min_margin,
            _ => true,
        }
    }

    /// Checks the policy against `graph`: 1 to [`MAX_STAGES`] stages, every named layer a
    /// bit-plane layer with a side table for its count, margins finite and non-negative.
    pub fn check(&self, graph: &Graph) -> Result<(), ContainerError> {
        let bad = |reason: String| ContainerError::BadAdaptive { reason };
        if self.stages.is_empty() || self.stages.len() > MAX_STAGES {
            return Err(bad(format!(
                "{} stages (1 to {MAX_STAGES} allowed)",
                self.stages.len()
            )));
        }
        for (i, stage) in self.stages.iter().enumerate() {
            if !stage.min_margin.is_finite() || stage.min_margin < 0.0 {
                return Err(bad(format!(
                    "stage {i}: margin {} is not a finite number >= 0",
                    stage.min_margin
                )));
            }
            crate::container::check_layer_planes(graph, &stage.layer_planes)
                .map_err(|e| bad(format!("stage {i}: {e}")))?;
        }
        Ok(())
    }

    /// The policy a model with `available` planes runs: every stage's counts lowered as
    /// [`crate::container::effective_layer_planes`] lowers a stored choice, and a stage
    /// dropped when it runs exactly what the stage before it runs (escalating to it would
    /// repeat the same work). A file cut to fewer planes therefore never asks for a missing
    /// one.
    pub fn effective(&self, graph: &Graph, available: u8) -> Result<Self, ContainerError> {
        self.effective_within(graph, |_| available)
    }

    /// [`AdaptivePolicy::effective`] with a limit per layer (node name → the most planes it
    /// keeps): what a mixed-precision build, whose layers keep different plane counts, can
    /// run. A count above its layer's limit becomes the largest count with a side table
    /// within it.
    pub fn effective_within(
        &self,
        graph: &Graph,
        limit: impl Fn(&str) -> u8,
    ) -> Result<Self, ContainerError> {
        let mut stages: Vec<AdaptiveStage> = Vec::with_capacity(self.stages.len());
        for (i, stage) in self.stages.iter().enumerate() {
            let mut layer_planes = BTreeMap::new();
            for (node, &k) in &stage.layer_planes {
                let lowered = crate::container::lowered_planes(graph, node, k, limit(node))
                    .map_err(|e| ContainerError::BadAdaptive {
                        reason: format!("stage {i}: {e}"),
                    })?;
                layer_planes.insert(node.clone(), lowered);
            }
            if stages
                .last()
                .is_some_and(|s| s.layer_planes == layer_planes)
            {
                continue;
            }
            stages.push(AdaptiveStage {
                layer_planes,
                min_margin: stage.min_margin,
            });
        }
        Ok(AdaptivePolicy {
            stages,
            target: self.target.clone(),
        })
    }
}

/// Bit-operations per sample of the bit-plane layers run at `layer_planes` (node → k; a layer
/// not named runs at `default`, lowered to its largest count with a side table): each
/// layer's multiply-accumulates × its weight planes × its activation bits at that count.
/// The cost the adaptive policy is fitted and reported against.
pub fn bit_ops(
    graph: &Graph,
    layer_planes: &BTreeMap<String, u8>,
    default: u8,
) -> Result<u64, GraphError> {
    layers_bit_ops(graph, layer_planes, default, |_| true)
}

/// The nodes stage `to` computes differently from stage `from` on the same input: every
/// bit-plane layer whose count differs between the two (named in one and not the other
/// counts as differing) and every node that reads one of those, directly or not. The rest
/// compute the same values at both stages, so an executor that kept them reruns only these
/// when an input escalates from `from` to `to`.
pub fn rerun_nodes(
    graph: &Graph,
    from: &BTreeMap<String, u8>,
    to: &BTreeMap<String, u8>,
) -> Result<HashSet<NodeId>, GraphError> {
    let mut rerun = HashSet::new();
    for id in graph.topo_order()? {
        let node = graph.node(id)?;
        let changed = matches!(&node.kind, NodeKind::Op(Op::Bitplane(_)))
            && from.get(&node.name) != to.get(&node.name);
        if changed
            || graph
                .node_inputs(id)
                .iter()
                .any(|v| rerun.contains(&v.node))
        {
            rerun.insert(id);
        }
    }
    Ok(rerun)
}

/// [`bit_ops`] of stage `to` for an input escalated from stage `from` by an executor that
/// keeps `from`'s values: the bit-plane layers among [`rerun_nodes`] only.
pub fn escalation_bit_ops(
    graph: &Graph,
    from: &BTreeMap<String, u8>,
    to: &BTreeMap<String, u8>,
    default: u8,
) -> Result<u64, GraphError> {
    let rerun = rerun_nodes(graph, from, to)?;
    layers_bit_ops(graph, to, default, |id| rerun.contains(&id))
}

fn layers_bit_ops(
    graph: &Graph,
    layer_planes: &BTreeMap<String, u8>,
    default: u8,
    counted: impl Fn(NodeId) -> bool,
) -> Result<u64, GraphError> {
    let mut total = 0u64;
    for id in graph.node_ids().filter(|&id| counted(id)) {
        let Ok(node) = graph.node(id) else { continue };
        let NodeKind::Op(Op::Bitplane(b)) = &node.kind else {
            continue;
        };
        let k = layer_planes
            .get(&node.name)
            .copied()
            .or_else(|| b.spec.default_planes(default as usize))
            .unwrap_or(default);
        let act = b.spec.act_bits_of(k).unwrap_or(b.spec.act_bits);
        let macs = graph.node_macs(id)?;
        total = total.saturating_add(
            macs.saturating_mul(u64::from(k))
                .saturating_mul(u64::from(act)),
        );
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn margin_is_the_gap_between_the_two_largest() {
        assert_eq!(margin(&[0.5, 3.0, 1.0, 2.5]), 0.5);
        assert_eq!(margin(&[3.0, 3.0, 1.0]), 0.0);
        assert_eq!(margin(&[-1.0, -4.0]), 3.0);
        assert_eq!(margin(&[7.0]), f32::INFINITY);
        assert_eq!(margin(&[]), f32::INFINITY);
        // NaN never wins, so it cannot make an uncertain output look confident.
        assert_eq!(margin(&[f32::NAN, 1.0, 0.0]), 1.0);
        assert!(margin(&[f32::NAN, f32::NAN]).is_nan());
    }

    #[test]
    fn the_last_stage_always_answers() {
        let stage = |m| AdaptiveStage {
            layer_planes: BTreeMap::new(),
            min_margin: m,
        };
        let p = AdaptivePolicy {
            stages: vec![stage(1.0), stage(5.0)],
            target: "budget=0.5".into(),
        };
        assert!(p.accepts(0, &[3.0, 1.0]));
        assert!(p.accepts(0, &[3.0, 2.0]));
        assert!(!p.accepts(0, &[3.0, 2.5]));
        assert!(!p.accepts(0, &[f32::NAN, f32::NAN]));
        assert!(p.accepts(1, &[3.0, 2.9]));
    }
}
