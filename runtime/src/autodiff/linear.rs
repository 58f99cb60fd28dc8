//! Gradients of Gemm and MatMul, computed with the same GEMM as the forward pass by reading
//! the operands through transposed strided views (no copies).

use strata_ir::ops::Gemm;
use strata_ir::Tensor;

use super::{broadcast_map, reduce_to, Ctx, Grads};
use crate::kernels::linear::{gemm_into, MatRef};
use crate::RuntimeError;

fn rank2(op: &'static str, t: &Tensor, input: usize) -> Result<(usize, usize), RuntimeError> {
    match t.shape() {
        [r, c] => Ok((*r, *c)),
        s => Err(RuntimeError::shape(
            op,
            format!("input {input} must be rank 2, got shape {s:?}"),
        )),
    }
}

/// The error for operands and an output gradient that do not fit together.
fn misfit(cx: &Ctx) -> RuntimeError {
    let (a, b) = (cx.inputs[0].shape(), cx.inputs[1].shape());
    let g = cx.grad.shape();
    let reason = format!("A {a:?}, B {b:?} and output gradient {g:?} do not fit");
    RuntimeError::shape(cx.op, reason)
}

/// `alpha·L·R` for `L [p, q]`, `R [q, r]`, stored as `[p, r]`, or transposed as `[r, p]`
/// (computed as `Rᵀ·Lᵀ`) when `t`: the gradient of an operand that the forward pass read
/// transposed.
fn product(
    op: &'static str,
    t: bool,
    (p, q, r): (usize, usize, usize),
    alpha: f32,
    l: MatRef<'_, f32>,
    rm: MatRef<'_, f32>,
) -> Result<Vec<f32>, RuntimeError> {
    let mut out = vec![0f32; p * r];
    if t {
        gemm_into(op, true, r, q, p, alpha, rm.t(), l.t(), 0.0, &mut out)?;
    } else {
        gemm_into(op, true, p, q, r, alpha, l, rm, 0.0, &mut out)?;
    }
    Ok(out)
}

/// `Y = alpha·A'·B' + beta·C` (A' = A or Aᵀ, B' likewise):
/// `dA' = alpha·dY·B'ᵀ`, `dB' = alpha·A'ᵀ·dY`, `dC = beta·dY` summed over broadcast axes.
pub(super) fn gemm(g: &Gemm, cx: &Ctx) -> Grads {
    let op = cx.op;
    let (a, b) = (cx.inputs[0], cx.inputs[1]);
    let (av, bv, gv) = (cx.x(0)?, cx.x(1)?, cx.dy);
    let ((a0, a1), (b0, b1)) = (rank2(op, a, 0)?, rank2(op, b, 1)?);
    let (m, k) = if g.trans_a { (a1, a0) } else { (a0, a1) };
    let (kb, n) = if g.trans_b { (b1, b0) } else { (b0, b1) };
    if kb != k || cx.grad.shape() != [m, n] {
        return Err(misfit(cx));
    }
    let gm = MatRef::of(gv, n, false);
    let alpha = g.alpha;
    // dA' [M, K] = alpha·dY·B'ᵀ ; dB' [K, N] = alpha·A'ᵀ·dY
    let bt = MatRef::of(bv, b1, !g.trans_b);
    let da = product(op, g.trans_a, (m, n, k), alpha, gm, bt)?;
    let at = MatRef::of(av, a1, !g.trans_a);
    let db = product(op, g.trans_b, (k, m, n), alpha, at, gm)?;
    let mut out = vec![cx.entry(a.shape(), da)?, cx.entry(b.shape(), db)?];
    if g.has_c {
        let c = cx.inputs[2];
        cx.x(2)?;
        let scaled: Vec<f32> = gv.iter().map(|v| v * g.beta).collect();
        out.push(Some(reduce_to(op, scaled, &[m, n], c.shape())?));
    }
    Ok(out)
}

/// numpy matmul: 1-D operands are promoted (`[k]` → `[1, k]` for A, `[k, 1]` for B), the
/// leading axes broadcast; each product's gradient is two GEMMs accumulated into the
/// (possibly broadcast) operand.
pub(super) fn matmul(cx: &Ctx) -> Grads {
    let op = cx.op;
    let (a, b) = (cx.inputs[0], cx.inputs[1]);
    let (av, bv, gv) = (cx.x(0)?, cx.x(1)?, cx.dy);
    if a.rank() == 0 || b.rank() == 0 {
        return Err(RuntimeError::shape(
            op,
            "operands must have rank at least 1",
        ));
    }
    let pa: Vec<usize> = if a.rank() == 1 {
        vec![1, a.shape()[0]]
    } else {
        a.shape().to_vec()
    };
    let pb: Vec<usize> = if b.rank() == 1 {
        vec![b.shape()[0], 1]
    } else {
        b.shape().to_vec()
    };
    let (m, k) = (pa[pa.len() - 2], pa[pa.len() - 1]);
    let (kb, n) = (pb[pb.len() - 2], pb[pb.len() - 1]);
    let (la, lb) = (&pa[..pa.len() - 2], &pb[..pb.len() - 2]);
    let lead = crate::kernels::elementwise::broadcast_shape(op, la, lb)?;
    let batch: usize = lead.iter().product();
    if kb != k || gv.len() != batch * m * n {
        return Err(misfit(cx));
    }
    let (ma, mb) = (broadcast_map(op, la, &lead)?, broadcast_map(op, lb, &lead)?);
    let mut da = vec![0f32; av.len()];
    let mut db = vec![0f32; bv.len()];
    for i in 0..batch {
        let g = MatRef::of(&gv[i * m * n..(i + 1) * m * n], n, false);
        let at = MatRef::of(&av[ma[i] * m * k..(ma[i] + 1) * m * k], k, true);
        let bt = MatRef::of(&bv[mb[i] * k * n..(mb[i] + 1) * k * n], n, true);
        let dai = &mut da[ma[i] * m * k..(ma[i] + 1) * m * k];
        // dA_i += dY_i · B_iᵀ ; dB_i += A_iᵀ · dY_i
        gemm_into(op, true, m, n, k, 1.0, g, bt, 1.0, dai)?;
        let dbi = &mut db[mb[i] * k * n..(mb[i] + 1) * k * n];
        gemm_into(op, true, k, m, n, 1.0, at, g, 1.0, dbi)?;
    }
    Ok(vec![cx.entry(a.shape(), da)?, cx.entry(b.shape(), db)?])
}
