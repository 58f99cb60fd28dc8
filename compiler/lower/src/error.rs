//! Why a graph cannot be lowered; each error names the node (and op) at fault.

/// Why a graph cannot be lowered.
#[derive(Debug, thiserror::Error)]
pub enum LowerError {
    #[error("node `{node}` ({op}): not supported by the code generators: {reason}")]
    Unsupported {
        node: String,
        op: &'static str,
        reason: String,
    },
    #[error("plane count {planes} is outside 1..=8")]
    BadPlanes { planes: u8 },
    #[error("layer `{node}` cannot run at {planes} planes: {reason}")]
    Planes {
        node: String,
        planes: u8,
        reason: String,
    },
    #[error("{got} per-layer plane counts given for a graph with {expected} bit-plane layers")]
    LayerPlanes { expected: usize, got: usize },
    #[error("code generation needs exactly one f32 graph input and one f32 output, {0}")]
    Interface(String),
    #[error("graph: {0}")]
    Graph(#[from] strata_ir::GraphError),
}

/// An [`LowerError::Unsupported`] for `node` running `op`.
pub(crate) fn unsupported(node: &str, op: &strata_ir::Op, reason: impl Into<String>) -> LowerError {
    LowerError::Unsupported {
        node: node.to_string(),
        op: op.mnemonic(),
        reason: reason.into(),
    }
}
