//! What a `once-qat` run reports: plane counts, losses and agreement before and after, and
//! the throughput of training.

use super::PASS;
use crate::PassContext;

/// What a `once-qat` run did, for the CLI's summary and the README's figures. Not stored in
/// the container (times vary from run to run; the container must not).
#[derive(Debug, Clone, PartialEq)]
pub struct OnceQatReport {
    /// Trained plane counts.
    pub plane_counts: Vec<u8>,
    /// Distillation temperature used.
    pub temperature: f32,
    /// Held-out loss per plane count at the start (the PTQ solution) and of the result.
    pub start_loss: Vec<f64>,
    pub final_loss: Vec<f64>,
    /// Held-out samples whose top-1 class is the teacher's, per plane count, at the start
    /// and in the result (what deployment sees; the loss is what training can follow).
    pub start_agree: Vec<usize>,
    pub final_agree: Vec<usize>,
    /// Step of the joint-phase snapshot that was kept (0: the start; the weights untouched).
    pub weights_from_step: usize,
    /// Per plane count, the step whose side tables were kept.
    pub tables_from_step: Vec<usize>,
    /// Samples trained on and held out, and the checkpoints' samples (the held-out ones, or
    /// every sample when none are held out).
    pub train_samples: usize,
    pub holdout_samples: usize,
    pub checked_samples: usize,
    pub steps: usize,
    pub batch: usize,
    /// Sample × plane-count forward+backward passes done by the optimiser steps.
    pub sample_passes: u64,
    /// Floating-point operations of those passes in the convolutions and matrix products
    /// (forward, input gradient and weight gradient: 3 × 2 × MACs per sample and plane count).
    pub flops: f64,
    /// Wall time of the optimiser steps, of the held-out evaluations, and of the whole pass
    /// (which adds the teacher's logits).
    pub train_seconds: f64,
    pub eval_seconds: f64,
    pub total_seconds: f64,
}

impl OnceQatReport {
    /// The report of the last `once-qat` run in this context.
    pub fn from_context(ctx: &PassContext) -> Option<&OnceQatReport> {
        ctx.results.get(PASS)?.downcast_ref()
    }

    /// Sample × plane-count forward+backward passes per second of the optimiser steps.
    pub fn samples_per_second(&self) -> f64 {
        self.sample_passes as f64 / self.train_seconds.max(1e-9)
    }

    /// Achieved GFLOP/s of the optimiser steps' convolutions and matrix products.
    pub fn gflops(&self) -> f64 {
        self.flops / self.train_seconds.max(1e-9) / 1e9
    }

    /// A few human-readable lines (the CLI prints them after compiling).
    pub fn summary(&self) -> String {
        let mut s = format!(
            "once-qat: {} steps × batch {} × {} plane counts on {} samples ({} held out): \
             {:.1} s training ({:.0} sample·k/s, {:.1} GFLOP/s), {:.1} s held-out checks, \
             {:.1} s in all\n",
            self.steps,
            self.batch,
            self.plane_counts.len(),
            self.train_samples,
            self.holdout_samples,
            self.train_seconds,
            self.samples_per_second(),
            self.gflops(),
            self.eval_seconds,
            self.total_seconds
        );
        s.push_str(&format!(
            "once-qat: T = {:.3}; weights from step {}; held-out loss per k (start → result, tables \
             from step), top-1 agreement with the teacher on {} held-out samples:",
            self.temperature,
            self.weights_from_step,
            self.checked_samples
        ));
        for (i, k) in self.plane_counts.iter().enumerate() {
            s.push_str(&format!(
                "\n  k={k}: {:.4e} → {:.4e} ({}), agreement {} → {}",
                self.start_loss[i],
                self.final_loss[i],
                self.tables_from_step[i],
                self.start_agree[i],
                self.final_agree[i]
            ));
        }
        s
    }
}
