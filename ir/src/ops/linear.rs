//! Matrix products: Gemm and MatMul.

/// `alpha · op(A) · op(B) + beta · C`, A and B rank 2, C unidirectionally broadcast to the result.
/// Inputs: `a`, `b`, optional `c`.
#[derive(Debug, Clone, PartialEq)]
pub struct Gemm {
    pub alpha: f32,
    pub beta: f32,
    pub trans_a: bool,
    pub trans_b: bool,
    pub has_c: bool,
}
