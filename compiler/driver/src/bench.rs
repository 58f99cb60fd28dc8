//! `strata bench gemm`: the f32 GEMM peak of this machine through the runtime's own matrix
//! product (`matrixmultiply` micro-kernels, row blocks on rayon's pool, the same code path
//! and thread count as inference and once-QAT), so that the training throughput can be
//! quoted as a fraction of what the GEMM achieves here.

use std::time::Instant;

use strata_ir::{Op, Tensor};

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("bench gemm: size must be between 1 and 8192, got {0}")]
    Size(usize),
    #[error("bench gemm: repeats must be at least 1")]
    Repeats,
    #[error("bench gemm: {0}")]
    Runtime(#[from] strata_runtime::RuntimeError),
}

/// One GEMM measurement.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GemmBench {
    /// `n` of the `n × n × n` product.
    pub size: usize,
    /// Threads in the runtime's pool (set with `RAYON_NUM_THREADS`).
    pub threads: usize,
    /// Seconds of the fastest and of the median repeat.
    pub best_seconds: f64,
    pub median_seconds: f64,
    /// `2·n³` divided by those times.
    pub best_gflops: f64,
    pub median_gflops: f64,
}

/// Times `repeats` products of two `size × size` f32 matrices (plus one warm-up).
pub fn gemm(size: usize, repeats: usize) -> Result<GemmBench, BenchError> {
    if !(1..=8192).contains(&size) {
        return Err(BenchError::Size(size));
    }
    if repeats == 0 {
        return Err(BenchError::Repeats);
    }
    let fill = |seed: u32| -> Vec<f32> {
        (0..size * size)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 20) as f32)
            .map(|v| v / 4096.0 - 0.5)
            .collect()
    };
    let a = Tensor::from_f32(vec![size, size], fill(1)).map_err(|e| {
        strata_runtime::RuntimeError::Shape {
            op: "matmul",
            reason: e.to_string(),
        }
    })?;
    let b = Tensor::from_f32(vec![size, size], fill(2)).map_err(|e| {
        strata_runtime::RuntimeError::Shape {
            op: "matmul",
            reason: e.to_string(),
        }
    })?;
    strata_runtime::eval_op(&Op::MatMul, &[&a, &b])?;
    let mut times = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t = Instant::now();
        let out = strata_runtime::eval_op(&Op::MatMul, &[&a, &b])?;
        times.push(t.elapsed().as_secs_f64());
        drop(out);
    }
    times.sort_by(f64::total_cmp);
    let flops = 2.0 * (size as f64).powi(3);
    let best = times[0];
    let median = times[times.len() / 2];
    Ok(GemmBench {
        size,
        threads: strata_runtime::threads(),
        best_seconds: best,
        median_seconds: median,
        best_gflops: flops / best / 1e9,
        median_gflops: flops / median / 1e9,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_gemm_reports_consistent_figures() {
        let r = gemm(64, 3).unwrap();
        assert_eq!(r.size, 64);
        assert!(r.threads >= 1);
        assert!(r.best_seconds > 0.0 && r.best_seconds <= r.median_seconds);
        let flops = 2.0 * 64f64.powi(3);
        assert!((r.best_gflops - flops / r.best_seconds / 1e9).abs() < 1e-9);
        assert!(matches!(gemm(0, 1), Err(BenchError::Size(0))));
        assert!(matches!(gemm(8, 0), Err(BenchError::Repeats)));
    }
}
