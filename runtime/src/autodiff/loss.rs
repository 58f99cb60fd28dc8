//! Training losses on logits `[N, C]`, each returning the loss and its gradient with
//! respect to the (student) logits, ready to seed [`super::Tape::backward`]. Both are
//! computed from log-softmax (max-shifted), so large logits never overflow.

use strata_ir::Tensor;

use super::{f32_tensor, f32s, same_shape};
use crate::RuntimeError;

fn logits_2d(op: &'static str, t: &Tensor, input: usize) -> Result<(usize, usize), RuntimeError> {
    match t.shape() {
        [n, c] if *c > 0 => Ok((*n, *c)),
        s => Err(RuntimeError::Shape {
            op,
            reason: format!("input {input}: logits must be [N, C] with C ≥ 1, got {s:?}"),
        }),
    }
}

/// Log-softmax of each row of `z / temperature`, in f64.
fn log_softmax(z: &[f32], c: usize, temperature: f64) -> Vec<f64> {
    let mut out = Vec::with_capacity(z.len());
    for row in z.chunks(c) {
        let mx = row
            .iter()
            .fold(f64::NEG_INFINITY, |m, &v| m.max(v as f64 / temperature));
        let lse = row
            .iter()
            .map(|&v| (v as f64 / temperature - mx).exp())
            .sum::<f64>()
            .ln()
            + mx;
        out.extend(row.iter().map(|&v| v as f64 / temperature - lse));
    }
    out
}

/// Softmax cross-entropy with integer class labels, averaged over the batch:
/// `L = −(1/N)·Σ_n log softmax(z_n)[label_n]`, `dL/dz = (softmax(z) − onehot)/N`.
/// `labels` holds one class index per row (any integer dtype); out-of-range labels are
/// an error naming the row. An empty batch has loss 0.
pub fn softmax_cross_entropy(
    logits: &Tensor,
    labels: &Tensor,
) -> Result<(f32, Tensor), RuntimeError> {
    const OP: &str = "softmax_cross_entropy";
    let z = f32s(OP, logits, 0)?;
    let (n, c) = logits_2d(OP, logits, 0)?;
    let labels_v = labels
        .to_i64_vec()
        .ok_or(RuntimeError::unsupported(OP, 1, labels.dtype()))?;
    if labels.shape() != [n] {
        return Err(RuntimeError::Shape {
            op: OP,
            reason: format!("labels must be [{n}], got {:?}", labels.shape()),
        });
    }
    let ls = log_softmax(z, c, 1.0);
    let mut loss = 0f64;
    let mut grad = Vec::with_capacity(z.len());
    let scale = 1.0 / n.max(1) as f64;
    for (row, (lrow, &label)) in ls.chunks(c).zip(&labels_v).enumerate() {
        if label < 0 || label as usize >= c {
            return Err(RuntimeError::IndexOutOfRange {
                op: OP,
                index: label,
                position: row,
                axis: 1,
                size: c,
            });
        }
        loss -= lrow[label as usize];
        for (j, &l) in lrow.iter().enumerate() {
            let onehot = if j == label as usize { 1.0 } else { 0.0 };
            grad.push(((l.exp() - onehot) * scale) as f32);
        }
    }
    Ok(((loss * scale) as f32, f32_tensor(OP, &[n, c], grad)?))
}

/// Knowledge-distillation loss KL(teacher ‖ student) on logits at temperature `T`, scaled
/// by `T²` (Hinton et al.) so its gradient magnitude does not shrink as `T` grows, and
/// averaged over the batch:
/// `L = (T²/N)·Σ_n Σ_c p_t·(log p_t − log p_s)` with `p = softmax(z / T)`;
/// `dL/dz_student = (T/N)·(p_s − p_t)`. The teacher gets no gradient.
pub fn kl_distillation(
    student: &Tensor,
    teacher: &Tensor,
    temperature: f32,
) -> Result<(f32, Tensor), RuntimeError> {
    const OP: &str = "kl_distillation";
    let (zs, zt) = (f32s(OP, student, 0)?, f32s(OP, teacher, 1)?);
    let (n, c) = logits_2d(OP, student, 0)?;
    same_shape(OP, "teacher logits", teacher, "student logits", student)?;
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(RuntimeError::Attribute {
            op: OP,
            attr: "temperature",
            reason: format!("must be positive and finite, got {temperature}"),
        });
    }
    let t = temperature as f64;
    let (ls, lt) = (log_softmax(zs, c, t), log_softmax(zt, c, t));
    let scale = 1.0 / n.max(1) as f64;
    let mut loss = 0f64;
    let mut grad = Vec::with_capacity(zs.len());
    for (&s, &tl) in ls.iter().zip(&lt) {
        let pt = tl.exp();
        if pt > 0.0 {
            loss += pt * (tl - s);
        }
        grad.push((t * scale * (s.exp() - pt)) as f32);
    }
    Ok((
        (loss * t * t * scale) as f32,
        f32_tensor(OP, &[n, c], grad)?,
    ))
}
