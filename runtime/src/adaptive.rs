//! Running an adaptive-precision policy (`strata_ir::adaptive`): every sample starts at the
//! policy's first stage; the samples whose output is not confident enough run again at the
//! next stage, and so on. Each stage is the integer path at that stage's per-layer counts, so
//! a sample's output is exactly what `run_with` gives it at the stage that answered.

use strata_ir::adaptive::AdaptivePolicy;
use strata_ir::Tensor;

use crate::{QuantPath, RunOptions, RuntimeError, Session};

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
        let values = input
            .as_f32()
            .ok_or_else(|| RuntimeError::Adaptive("the input must be float32".into()))?;
        let per_in = values.len().checked_div(n).unwrap_or(0);
        let mut pending: Vec<usize> = (0..n).collect();
        let mut stages = vec![0u8; n];
        let mut ran = Vec::with_capacity(policy.stages.len());
        let mut output: Option<(Vec<usize>, Vec<f32>, usize)> = None;
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
            if y.shape().first() != Some(&pending.len()) {
                return Err(RuntimeError::Adaptive(format!(
                    "the output's axis 0 must be the batch ({} samples), got shape {:?}",
                    pending.len(),
                    y.shape()
                )));
            }
            let y_values = y
                .as_f32()
                .ok_or_else(|| RuntimeError::Adaptive("the output must be float32".into()))?;
            let per_out = y_values.len() / pending.len();
            let (_, full, _) = output.get_or_insert_with(|| {
                let mut out_shape = y.shape().to_vec();
                out_shape[0] = n;
                (out_shape, vec![0f32; n * per_out], per_out)
            });
            let mut next = Vec::new();
            for (j, &i) in pending.iter().enumerate() {
                let row = &y_values[j * per_out..(j + 1) * per_out];
                if policy.accepts(s, row) {
                    full[i * per_out..(i + 1) * per_out].copy_from_slice(row);
                    stages[i] = s as u8;
                } else {
                    next.push(i);
                }
            }
            pending = next;
        }
        let (out_shape, full, _) = match output {
            Some(o) => o,
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
                    stages,
                    ran,
                });
            }
        };
        let output =
            Tensor::from_f32(out_shape, full).map_err(|e| RuntimeError::Adaptive(e.to_string()))?;
        Ok(AdaptiveRun {
            output,
            stages,
            ran,
        })
    }
}
