//! MatMul between activations (attention's `Q·Kᵀ` and `P·V`, which vl-quantize leaves float
//! because neither operand is a weight): one [`Kernel::MatMul`] step with numpy's batch
//! broadcasting. The runtime computes every MatMul with the plain loop this kernel names, so
//! the C and MLIR kernels repeat it bit for bit.

use strata_ir::{NodeId, Op, ValueRef};

use crate::error::unsupported;
use crate::float_ops::MAX_RANK;
use crate::walk::Walk;
use crate::{Constant, Kernel, LowerError, Operand};

/// The batch dims of an operand of shape `s` (its dims before the last two), left-padded
/// with 1s to `rank`.
fn padded_batch(s: &[usize], rank: usize) -> Vec<usize> {
    let own = &s[..s.len() - 2];
    let mut out = vec![1; rank - own.len()];
    out.extend_from_slice(own);
    out
}

impl Walk<'_> {
    /// An operand of a MatMul: its activation location, or its values stored as a constant.
    fn matmul_operand(
        &mut self,
        v: ValueRef,
        node: &str,
        op: &Op,
        step: usize,
    ) -> Result<Operand, LowerError> {
        if self.locs.contains_key(&v) {
            return Ok(Operand::Act(self.act(v, step, node, op)?));
        }
        let values = self
            .constant(v, node, op, "an operand that is not an activation")?
            .as_f32()
            .ok_or_else(|| unsupported(node, op, "a constant operand must be f32"))?
            .to_vec();
        self.constants.push(Constant {
            node: node.to_string(),
            values,
        });
        Ok(Operand::Const(self.constants.len() - 1))
    }

    /// numpy MatMul: 1-D operands are promoted to a row (A) or a column (B), which changes
    /// no element's position; leading dims broadcast. At most one operand may be a constant
    /// (a graph whose both operands are constant is folded before lowering).
    pub(crate) fn matmul(
        &mut self,
        id: NodeId,
        node: &str,
        op: &Op,
        ins: &[ValueRef],
        step: usize,
    ) -> Result<(), LowerError> {
        let &[a0, b0] = ins else {
            return Err(unsupported(node, op, "needs two inputs"));
        };
        if !self.locs.contains_key(&a0) && !self.locs.contains_key(&b0) {
            return Err(unsupported(
                node,
                op,
                "both operands are constants (fold it first)",
            ));
        }
        let (mut sa, mut sb) = (self.shape(a0)?, self.shape(b0)?);
        if sa.is_empty() || sb.is_empty() {
            return Err(unsupported(node, op, "an operand is a scalar"));
        }
        if sa.len() == 1 {
            sa.insert(0, 1);
        }
        if sb.len() == 1 {
            sb.push(1);
        }
        let (m, k) = (sa[sa.len() - 2], sa[sa.len() - 1]);
        let (kb, n) = (sb[sb.len() - 2], sb[sb.len() - 1]);
        if k != kb {
            let reason = format!("inner dimensions differ: {sa:?} × {sb:?}");
            return Err(unsupported(node, op, reason));
        }
        let rank = sa.len().max(sb.len()) - 2;
        if rank > MAX_RANK {
            return Err(unsupported(
                node,
                op,
                format!("batch rank above {MAX_RANK}"),
            ));
        }
        let (a_batch, b_batch) = (padded_batch(&sa, rank), padded_batch(&sb, rank));
        let mut batch = Vec::with_capacity(rank);
        for (&x, &y) in a_batch.iter().zip(&b_batch) {
            match (x, y) {
                _ if x == y => batch.push(x),
                (1, _) => batch.push(y),
                (_, 1) => batch.push(x),
                _ => {
                    let reason = format!("batch dims do not broadcast: {sa:?} × {sb:?}");
                    return Err(unsupported(node, op, reason));
                }
            }
        }
        let a = self.matmul_operand(a0, node, op, step)?;
        let b = self.matmul_operand(b0, node, op, step)?;
        let size = batch.iter().product::<usize>() * m * n;
        let kernel = Kernel::MatMul {
            a,
            b,
            batch,
            a_batch,
            b_batch,
            m,
            k,
            n,
        };
        self.emit(id, node, kernel, size, step);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::padded_batch;

    #[test]
    fn batch_dims_are_left_padded() {
        assert_eq!(padded_batch(&[3, 4], 2), [1, 1]);
        assert_eq!(padded_batch(&[2, 3, 4], 2), [1, 2]);
        assert_eq!(padded_batch(&[5, 2, 3, 4], 2), [5, 2]);
    }
}
