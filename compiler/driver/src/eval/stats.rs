//! Scoring one set of logits: top-1, agreement and logit error against FP32, paired
//! comparisons with their exact McNemar test, and the weight bytes a plane count costs.

use strata_ir::{Graph, NodeKind, Op, Tensor};

use super::{EvalError, EvalRow, PairedComparison};

fn rows_of(logits: &Tensor) -> Result<(&[f32], usize, usize), EvalError> {
    match (logits.as_f32(), logits.shape()) {
        (Some(v), [n, c]) if *c > 0 => Ok((v, *n, *c)),
        _ => Err(EvalError::Logits {
            dtype: logits.dtype().to_string(),
            shape: logits.shape().to_vec(),
        }),
    }
}

/// Index of the largest value (first on ties), as numpy's argmax.
pub fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

/// Each sample's argmax of logits `[N, classes]`.
pub fn predictions(logits: &Tensor) -> Result<Vec<usize>, EvalError> {
    let (values, _, c) = rows_of(logits)?;
    Ok(values.chunks(c.max(1)).map(argmax).collect())
}

/// Scores one set of logits against labels and, optionally, the FP32 logits.
pub fn score(
    method: &'static str,
    planes: Option<u8>,
    logits: &Tensor,
    labels: &Tensor,
    reference: Option<&Tensor>,
    weight_bytes: u64,
) -> Result<EvalRow, EvalError> {
    let right = correct(logits, labels)?.into_iter().filter(|&r| r).count();
    let (values, n, c) = rows_of(logits)?;
    let predictions: Vec<usize> = values.chunks(c).map(argmax).collect();
    let (mut agreement, mut max_err, mut mean_err) = (None, None, None);
    if let Some(reference) = reference {
        if reference.shape() != logits.shape() {
            return Err(EvalError::ReferenceShape {
                reference: reference.shape().to_vec(),
                got: logits.shape().to_vec(),
            });
        }
        let (ref_values, _, _) = rows_of(reference)?;
        let agree = ref_values
            .chunks(c)
            .zip(&predictions)
            .filter(|(row, &p)| argmax(row) == p)
            .count();
        let (mut max, mut sum) = (0f64, 0f64);
        for (a, b) in values.iter().zip(ref_values) {
            let d = (*a as f64 - *b as f64).abs();
            max = max.max(d);
            sum += d;
        }
        agreement = Some(agree as f64 / n.max(1) as f64);
        max_err = Some(max);
        mean_err = Some(sum / values.len().max(1) as f64);
    }
    Ok(EvalRow {
        method,
        planes,
        top1: right as f64 / n.max(1) as f64,
        agreement,
        max_logit_error: max_err,
        mean_logit_error: mean_err,
        weight_bytes,
        layer_planes: None,
    })
}

/// Whether each sample's argmax equals its label.
pub fn correct(logits: &Tensor, labels: &Tensor) -> Result<Vec<bool>, EvalError> {
    let (values, n, c) = rows_of(logits)?;
    let labels = labels
        .to_i64_vec()
        .ok_or_else(|| EvalError::LabelType(labels.dtype().to_string()))?;
    if labels.len() != n {
        return Err(EvalError::LabelCount {
            labels: labels.len(),
            rows: n,
        });
    }
    Ok(values
        .chunks(c)
        .zip(&labels)
        .map(|(row, &l)| argmax(row) as i64 == l)
        .collect())
}

/// Compares two methods' per-sample correctness (from [`correct`], same samples in the same
/// order) on the images where they differ.
pub fn paired(
    planes: u8,
    against: &'static str,
    against_planes: Option<u8>,
    strata: &[bool],
    other: &[bool],
) -> PairedComparison {
    let strata_only = strata.iter().zip(other).filter(|(&a, &b)| a && !b).count();
    let other_only = strata.iter().zip(other).filter(|(&a, &b)| !a && b).count();
    PairedComparison {
        planes,
        against,
        against_planes,
        strata_only,
        other_only,
        p_value: mcnemar_exact(strata_only, other_only),
    }
}

/// Exact two-sided McNemar test: with `n = b + c` discordant samples, each equally likely to
/// fall either way under the null hypothesis, `p = min(1, 2·P[Binomial(n, ½) ≤ min(b, c)])`.
/// Summed in log space so that thousands of discordant samples do not underflow.
pub fn mcnemar_exact(b: usize, c: usize) -> f64 {
    let n = b + c;
    if n == 0 {
        return 1.0;
    }
    let m = b.min(c);
    // ln C(n, i) − n ln 2, for i = 0..=m.
    let mut ln_term = -(n as f64) * std::f64::consts::LN_2;
    let mut terms = Vec::with_capacity(m + 1);
    terms.push(ln_term);
    for i in 1..=m {
        ln_term += ((n - i + 1) as f64).ln() - (i as f64).ln();
        terms.push(ln_term);
    }
    let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let tail = top.exp() * terms.iter().map(|t| (t - top).exp()).sum::<f64>();
    (2.0 * tail).min(1.0)
}

/// Bytes of weights a device stores to run `graph` at `planes` planes: for each bit-plane op,
/// `k` planes and the side-table row for `k`; every other constant as stored.
pub fn weight_bytes(graph: &Graph, planes: Option<u8>) -> u64 {
    weight_bytes_per_layer(graph, |_| planes)
}

/// [`weight_bytes`] with a plane count per bit-plane layer (by node name; `None`: all stored
/// planes), as a mixed-precision choice stores it.
pub fn weight_bytes_per_layer(graph: &Graph, planes: impl Fn(&str) -> Option<u8>) -> u64 {
    let mut bitplane_inputs = std::collections::BTreeSet::new();
    let mut total = 0u64;
    for id in graph.node_ids() {
        let Ok(node) = graph.node(id) else { continue };
        let NodeKind::Op(Op::Bitplane(bp)) = &node.kind else {
            continue;
        };
        let inputs = graph.node_inputs(id);
        bitplane_inputs.extend(inputs.iter().skip(1).map(|v| v.node));
        let stored = inputs
            .get(1)
            .and_then(|&v| graph.constant_value(v))
            .map(|t| t.shape().first().copied().unwrap_or(0))
            .unwrap_or(0);
        let k = planes(&node.name)
            .map(usize::from)
            .unwrap_or(stored)
            .min(stored) as u64;
        let row_bytes = strata_ir::quant::row_bytes(bp.spec.cols) as u64;
        let rows = bp.spec.rows as u64;
        // planes + alpha, beta, bias (f32 per row) + act scale and zero point.
        total += k * rows * row_bytes + 3 * 4 * rows + 8;
    }
    for id in graph.node_ids() {
        if bitplane_inputs.contains(&id) {
            continue;
        }
        if let Ok(node) = graph.node(id) {
            if let NodeKind::Constant(cid) = node.kind {
                if let Some(t) = graph.constant(cid) {
                    total += (t.len() * t.dtype().size_bytes()) as u64;
                }
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mcnemar_exact_matches_the_binomial_tail() {
        // 0 vs 3: 2 · (1/8).
        assert!((mcnemar_exact(0, 3) - 0.25).abs() < 1e-12);
        assert!((mcnemar_exact(3, 0) - 0.25).abs() < 1e-12);
        // 0 vs 10: 2 / 1024.
        assert!((mcnemar_exact(0, 10) - 2.0 / 1024.0).abs() < 1e-15);
        // 2 vs 8: 2 · (1 + 10 + 45) / 1024.
        assert!((mcnemar_exact(2, 8) - 112.0 / 1024.0).abs() < 1e-12);
        // A balanced split is no evidence at all, and nothing discordant neither.
        assert_eq!(mcnemar_exact(1, 1), 1.0);
        assert_eq!(mcnemar_exact(0, 0), 1.0);
        // Large counts neither underflow nor exceed 1.
        let p = mcnemar_exact(4000, 4100);
        assert!(p > 0.2 && p < 0.35, "{p}");
        let tiny = mcnemar_exact(0, 3000);
        assert!((0.0..1e-300).contains(&tiny), "{tiny}");
    }

    #[test]
    fn paired_counts_the_images_only_one_method_gets_right() {
        let labels = Tensor::new(vec![4], strata_ir::TensorData::I64(vec![0, 1, 1, 0])).unwrap();
        // Rows: right, right, wrong, wrong  /  right, wrong, right, right.
        let a = Tensor::from_f32(vec![4, 2], vec![1., 0., 0., 1., 1., 0., 0., 1.]).unwrap();
        let b = Tensor::from_f32(vec![4, 2], vec![1., 0., 1., 0., 0., 1., 1., 0.]).unwrap();
        let (ca, cb) = (correct(&a, &labels).unwrap(), correct(&b, &labels).unwrap());
        assert_eq!(ca, vec![true, true, false, false]);
        assert_eq!(cb, vec![true, false, true, true]);
        let c = paired(4, "dedicated-ptq", Some(4), &ca, &cb);
        assert_eq!((c.strata_only, c.other_only), (1, 2));
        assert_eq!(c.p_value, 1.0);
        let short = Tensor::new(vec![3], strata_ir::TensorData::I64(vec![0, 1, 1])).unwrap();
        assert!(matches!(
            correct(&a, &short),
            Err(EvalError::LabelCount { labels: 3, rows: 4 })
        ));
    }
}
