//! Gradients of Gemm and MatMul, computed with the same GEMM as the forward pass by reading
//! the operands through transposed strided views (no copies).

use strata_ir::ops::Gemm;
use strata_ir::Tensor;

use super::{broadcast_map, f32_tensor, f32s, reduce_to};
use crate::kernels::linear::{gemm_strided, MatRef};
use crate::RuntimeError;

/// The logical matrix of row-major `data [rows, cols]`, transposed when `t`.
fn view(data: &[f32], cols: usize, t: bool) -> MatRef<'_, f32> {
    if t {
        MatRef {
            data,
            rs: 1,
            cs: cols,
        }
    } else {
        MatRef {
            data,
            rs: cols,
            cs: 1,
        }
    }
}

fn rank2(op: &'static str, t: &Tensor, input: usize) -> Result<(usize, usize), RuntimeError> {
    match t.shape() {
        [r, c] => Ok((*r, *c)),
        s => Err(RuntimeError::Shape {
            op,
            reason: format!("input {input} must be rank 2, got shape {s:?}"),
        }),
    }
}

/// `Y = alpha·A'·B' + beta·C` (A' = A or Aᵀ, B' likewise):
/// `dA' = alpha·dY·B'ᵀ`, `dB' = alpha·A'ᵀ·dY`, `dC = beta·dY` summed over broadcast axes.
pub(super) fn gemm(
    g: &Gemm,
    inputs: &[&Tensor],
    grad: &Tensor,
) -> Result<Vec<Option<Tensor>>, RuntimeError> {
    const OP: &str = "gemm";
    let (a, b) = (inputs[0], inputs[1]);
    let (av, bv, gv) = (
        f32s(OP, a, 0)?,
        f32s(OP, b, 1)?,
        f32s(OP, grad, usize::MAX)?,
    );
    let ((a0, a1), (b0, b1)) = (rank2(OP, a, 0)?, rank2(OP, b, 1)?);
    let (m, k) = if g.trans_a { (a1, a0) } else { (a0, a1) };
    let (kb, n) = if g.trans_b { (b1, b0) } else { (b0, b1) };
    if kb != k || grad.shape() != [m, n] {
        return Err(RuntimeError::Shape {
            op: OP,
            reason: format!(
                "A {:?}, B {:?} and output gradient {:?} do not fit",
                a.shape(),
                b.shape(),
                grad.shape()
            ),
        });
    }
    let gm = view(gv, n, false);
    let mut da = vec![0f32; a0 * a1];
    if g.trans_a {
        // dA [K, M] = alpha·B'·dYᵀ
        gemm_strided(
            OP,
            k,
            n,
            m,
            g.alpha,
            view(bv, b1, g.trans_b),
            view(gv, n, true),
            0.0,
            &mut da,
            m,
        )?;
    } else {
        // dA [M, K] = alpha·dY·B'ᵀ
        gemm_strided(
            OP,
            m,
            n,
            k,
            g.alpha,
            gm,
            view(bv, b1, !g.trans_b),
            0.0,
            &mut da,
            k,
        )?;
    }
    let mut db = vec![0f32; b0 * b1];
    if g.trans_b {
        // dB [N, K] = alpha·dYᵀ·A'
        gemm_strided(
            OP,
            n,
            m,
            k,
            g.alpha,
            view(gv, n, true),
            view(av, a1, g.trans_a),
            0.0,
            &mut db,
            k,
        )?;
    } else {
        // dB [K, N] = alpha·A'ᵀ·dY
        gemm_strided(
            OP,
            k,
            m,
            n,
            g.alpha,
            view(av, a1, !g.trans_a),
            gm,
            0.0,
            &mut db,
            n,
        )?;
    }
    let mut out = vec![
        Some(f32_tensor(OP, a.shape(), da)?),
        Some(f32_tensor(OP, b.shape(), db)?),
    ];
    if g.has_c {
        let c = inputs[2];
        f32s(OP, c, 2)?;
        let scaled: Vec<f32> = gv.iter().map(|v| v * g.beta).collect();
        out.push(Some(reduce_to(OP, &scaled, &[m, n], c.shape())?));
    }
    Ok(out)
}

/// numpy matmul: 1-D operands are promoted (`[k]` → `[1, k]` for A, `[k, 1]` for B), the
/// leading axes broadcast; each product's gradient is two GEMMs accumulated into the
/// (possibly broadcast) operand.
pub(super) fn matmul(
    inputs: &[&Tensor],
    grad: &Tensor,
) -> Result<Vec<Option<Tensor>>, RuntimeError> {
    const OP: &str = "matmul";
    let (a, b) = (inputs[0], inputs[1]);
    let (av, bv, gv) = (
        f32s(OP, a, 0)?,
        f32s(OP, b, 1)?,
        f32s(OP, grad, usize::MAX)?,
    );
    if a.rank() == 0 || b.rank() == 0 {
        return Err(RuntimeError::Shape {
            op: OP,
            reason: "operands must have rank at least 1".into(),
        });
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
    let lead = crate::kernels::elementwise::broadcast_shape(OP, la, lb)?;
    let batch: usize = lead.iter().product();
    if kb != k || gv.len() != batch * m * n {
        return Err(RuntimeError::Shape {
            op: OP,
            reason: format!(
                "A {:?}, B {:?} and output gradient {:?} do not fit",
                a.shape(),
                b.shape(),
                grad.shape()
            ),
        });
    }
    let (ma, mb) = (broadcast_map(OP, la, &lead)?, broadcast_map(OP, lb, &lead)?);
    let mut da = vec![0f32; av.len()];
    let mut db = vec![0f32; bv.len()];
    for i in 0..batch {
        let g = &gv[i * m * n..(i + 1) * m * n];
        let ai = &av[ma[i] * m * k..(ma[i] + 1) * m * k];
        let bi = &bv[mb[i] * k * n..(mb[i] + 1) * k * n];
        // dA_i += dY_i · B_iᵀ ; dB_i += A_iᵀ · dY_i
        gemm_strided(
            OP,
            m,
            n,
            k,
            1.0,
            view(g, n, false),
            view(bi, n, true),
            1.0,
            &mut da[ma[i] * m * k..(ma[i] + 1) * m * k],
            k,
        )?;
        gemm_strided(
            OP,
            k,
            m,
            n,
            1.0,
            view(ai, k, true),
            view(g, n, false),
            1.0,
            &mut db[mb[i] * k * n..(mb[i] + 1) * k * n],
            n,
        )?;
    }
    Ok(vec![
        Some(f32_tensor(OP, a.shape(), da)?),
        Some(f32_tensor(OP, b.shape(), db)?),
    ])
}
