//! Matrix products: Gemm and MatMul.

use super::check::{self, Inferred};
use crate::text::fields::attr_fields;
use crate::text::{Attrs, ParseError};
use crate::Op;
use crate::{Dim, InferError, Shape, TensorType};

/// `alpha · op(A) · op(B) + beta · C`, A and B rank 2, C unidirectionally broadcast to the result.
/// Inputs: `a`, `b`, optional `c`.
#[derive(Debug, Clone)]
pub struct Gemm {
    pub alpha: f32,
    pub beta: f32,
    pub trans_a: bool,
    pub trans_b: bool,
    pub has_c: bool,
}

/// Checks that two contracted dimensions agree (the batch symbol matches only itself).
fn contract(k_a: Dim, k_b: Dim, b: &TensorType, input_b: usize) -> Result<(), InferError> {
    if k_a == k_b {
        return Ok(());
    }
    Err(InferError::ShapeMismatch {
        input: input_b,
        shape: b.shape.clone(),
        reason: format!("inner dimension {k_b} does not match {k_a}"),
    })
}

impl Gemm {
    /// `[M, K] · [K, N] → [M, N]` after the transposes; C must broadcast to `[M, N]`.
    pub fn infer(&self, inputs: &[&TensorType]) -> Inferred {
        check::arity(
            inputs,
            (2 + self.has_c as usize, Some(2 + self.has_c as usize)),
        )?;
        let (a, b) = (inputs[0], inputs[1]);
        check::numeric(0, a)?;
        check::same_dtype(1, b, a.dtype)?;
        check::rank_eq(0, a, 2)?;
        check::rank_eq(1, b, 2)?;
        let (m, ka) = if self.trans_a {
            (a.shape.0[1], a.shape.0[0])
        } else {
            (a.shape.0[0], a.shape.0[1])
        };
        let (kb, n) = if self.trans_b {
            (b.shape.0[1], b.shape.0[0])
        } else {
            (b.shape.0[0], b.shape.0[1])
        };
        contract(ka, kb, b, 1)?;
        let out = Shape(vec![m, n]);
        if self.has_c {
            let c = inputs[2];
            check::same_dtype(2, c, a.dtype)?;
            check::broadcast_to(2, &c.shape, &out)?;
        }
        Ok(vec![TensorType::new(a.dtype, out)])
    }
}

/// Numpy matmul: 1-D operands are promoted (a to `[1, K]`, b to `[K, 1]`) and the added
/// dimension removed again; leading (batch) dimensions broadcast.
pub fn infer_matmul(inputs: &[&TensorType]) -> Inferred {
    check::arity(inputs, (2, Some(2)))?;
    let (a, b) = (inputs[0], inputs[1]);
    check::numeric(0, a)?;
    check::same_dtype(1, b, a.dtype)?;
    check::rank_at_least(0, a, 1)?;
    check::rank_at_least(1, b, 1)?;
    let mut sa = a.shape.0.clone();
    let mut sb = b.shape.0.clone();
    let a_vec = sa.len() == 1;
    let b_vec = sb.len() == 1;
    if a_vec {
        sa.insert(0, Dim::Known(1));
    }
    if b_vec {
        sb.push(Dim::Known(1));
    }
    let (m, ka) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let (kb, n) = (sb[sb.len() - 2], sb[sb.len() - 1]);
    contract(ka, kb, b, 1)?;
    let batch_a = Shape(sa[..sa.len() - 2].to_vec());
    let batch_b = Shape(sb[..sb.len() - 2].to_vec());
    let mut out = check::broadcast(&batch_a, &batch_b).map_err(|e| match e {
        InferError::Broadcast { .. } => InferError::Broadcast {
            a: a.shape.clone(),
            b: b.shape.clone(),
        },
        other => other,
    })?;
    if !a_vec {
        out.0.push(m);
    }
    if !b_vec {
        out.0.push(n);
    }
    Ok(vec![TensorType::new(a.dtype, out)])
}

// Text form of Gemm: its attributes are its fields, in field order.
attr_fields!(Gemm {
    alpha,
    beta,
    trans_a,
    trans_b,
    has_c
});

/// Rebuilds a matrix product from its mnemonic and attributes; `None` for other mnemonics.
pub(crate) fn from_text(mnemonic: &str, a: &mut Attrs) -> Option<Result<Op, ParseError>> {
    match mnemonic {
        "gemm" => Some(Gemm::from_attrs(a).map(Op::Gemm)),
        "matmul" => Some(Ok(Op::MatMul)),
        _ => None,
    }
}

/// Bitwise on the float fields, so NaN attributes compare equal to themselves and the
/// text round trip is exact.
impl PartialEq for Gemm {
    fn eq(&self, o: &Self) -> bool {
        self.alpha.to_bits() == o.alpha.to_bits()
            && self.beta.to_bits() == o.beta.to_bits()
            && self.trans_a == o.trans_a
            && self.trans_b == o.trans_b
            && self.has_c == o.has_c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::check::{assert_infers, assert_rejects};
    use crate::Op;

    fn gemm(ta: bool, tb: bool, c: bool) -> Op {
        Op::Gemm(Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: ta,
            trans_b: tb,
            has_c: c,
        })
    }

    #[test]
    fn gemm_shapes() {
        let (bt, at) = (gemm(false, true, true), gemm(true, false, true));
        let plain = gemm(false, false, true);
        assert_infers(&[
            (
                &bt,
                &["f32[N,784]", "f32[10,784]", "f32[10]"],
                &["f32[N,10]"],
            ),
            (&at, &["f32[3,5]", "f32[3,4]", "f32[5,1]"], &["f32[5,4]"]),
            (&plain, &["f32[2,3]", "f32[3,4]", "f32[]"], &["f32[2,4]"]),
        ]);
        assert_rejects!(&plain, {
            ["f32[2,3]", "f32[3,4]", "f32[3,4]"] => InferError::ShapeMismatch { input: 2, .. },
        });
        assert_rejects!(&gemm(false, false, false), {
            ["f32[2,3]", "f32[4,4]"] => InferError::ShapeMismatch { input: 1, .. },
            ["f32[2,3,1]", "f32[3,4]"] => InferError::Rank { input: 0, .. },
            ["f32[2,3]", "f64[3,4]"] => InferError::DType { input: 1, .. },
        });
    }

    #[test]
    fn matmul_shapes() {
        let m = Op::MatMul;
        assert_infers(&[
            (&m, &["f32[2,3]", "f32[3,4]"], &["f32[2,4]"]),
            (&m, &["f32[3]", "f32[3,4]"], &["f32[4]"]),
            (&m, &["f32[2,3]", "f32[3]"], &["f32[2]"]),
            (&m, &["f32[3]", "f32[3]"], &["f32[]"]),
            (&m, &["f32[N,1,2,3]", "f32[5,3,4]"], &["f32[N,5,2,4]"]),
            (&m, &["i32[N,7,3]", "i32[3,4]"], &["i32[N,7,4]"]),
        ]);
        assert_rejects!(&m, {
            ["f32[2,3]", "f32[4,4]"] => InferError::ShapeMismatch { .. },
            ["f32[2,2,3]", "f32[5,3,4]"] => InferError::Broadcast { .. },
            ["f32[]", "f32[3]"] => InferError::Rank { .. },
            ["bool[2,2]", "bool[2,2]"] => InferError::DType { .. },
        });
    }
}
