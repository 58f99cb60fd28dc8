//! Shape-inference errors, shared by every op family.

use crate::{DType, Shape};

/// Why an op cannot accept its input types. The graph layer adds the node name and op.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InferError {
    #[error("expected {expected} inputs, got {got}")]
    Arity { expected: String, got: usize },
    #[error("input {input}: element type {got} not allowed (expected {expected})")]
    DType {
        input: usize,
        got: DType,
        expected: String,
    },
    #[error("input {input}: rank {got} not allowed (expected {expected})")]
    Rank {
        input: usize,
        got: usize,
        expected: String,
    },
    #[error("shapes {a} and {b} cannot be broadcast together")]
    Broadcast { a: Shape, b: Shape },
    #[error("input {input}: shape {shape} does not fit: {reason}")]
    ShapeMismatch {
        input: usize,
        shape: Shape,
        reason: String,
    },
    #[error("attribute `{attr}`: {reason}")]
    Attribute { attr: &'static str, reason: String },
    #[error("attribute `{attr}`: axis {axis} out of range for rank {rank}")]
    Axis {
        attr: &'static str,
        axis: usize,
        rank: usize,
    },
    #[error("the batch dimension cannot be used here: {0}")]
    Batch(String),
    #[error("output {output}: {source}")]
    TooLarge {
        output: usize,
        #[source]
        source: crate::limits::LimitError,
    },
    /// A count derived from the shapes (such as [`crate::Op::macs`]) does not fit 64 bits.
    #[error("{0} overflows 64 bits")]
    Overflow(String),
}
