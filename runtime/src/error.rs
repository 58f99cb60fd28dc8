//! Runtime errors. Every failure names what went wrong and where, because the runtime is the
//! reference that other stages are debugged against: a vague error there wastes everyone's time.

use strata_ir::{DType, GraphError, TensorType};

/// Why executing a graph or an op failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuntimeError {
    /// The caller passed the wrong number of input tensors to [`crate::run`].
    #[error("graph has {expected} inputs but {got} tensors were given")]
    InputCount { expected: usize, got: usize },
    /// An input tensor's element type differs from the graph's declaration.
    #[error("input `{input}`: element type {got} does not match the declared type {expected}")]
    InputDType {
        input: String,
        expected: TensorType,
        got: DType,
    },
    /// An input tensor's rank differs from the graph's declaration.
    #[error("input `{input}`: rank {got} does not match the declared type {expected}")]
    InputRank {
        input: String,
        expected: TensorType,
        got: usize,
    },
    /// A known dimension of an input tensor differs from the graph's declaration.
    #[error(
        "input `{input}`: dimension {axis} is {got} but the declared type {expected} needs {want}"
    )]
    InputDim {
        input: String,
        axis: usize,
        got: usize,
        want: usize,
        expected: TensorType,
    },
    /// Two inputs disagree on the size of the free batch dimension.
    #[error("input `{input}`: batch dimension (axis {axis}) is {got} but an earlier input set the batch size to {batch}")]
    BatchMismatch {
        input: String,
        axis: usize,
        got: usize,
        batch: usize,
    },
    /// The graph itself is malformed (a cycle, a dangling reference).
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A node referenced a value that is not available (a malformed graph).
    #[error("node `{node}`: input {slot} refers to output {output} of `{producer}`, which does not exist")]
    MissingValue {
        node: String,
        slot: usize,
        producer: String,
        output: usize,
    },
    /// A node's op produced a different number of outputs than the node declares.
    #[error("node `{node}` ({op}) declares {declared} outputs but the op produced {produced}")]
    OutputCount {
        node: String,
        op: &'static str,
        declared: usize,
        produced: usize,
    },
    /// An op failed inside [`crate::run`]; wraps the op-level error with the node's identity.
    #[error("node `{node}` ({op}): {source}")]
    Node {
        node: String,
        op: &'static str,
        #[source]
        source: Box<RuntimeError>,
    },
    /// The op was given the wrong number of inputs.
    #[error("{op}: expected {expected} inputs, got {got}")]
    Arity {
        op: &'static str,
        expected: String,
        got: usize,
    },
    /// The op has no kernel for this element type.
    #[error("{op}: element type {dtype} of input {input} is not supported")]
    UnsupportedDType {
        op: &'static str,
        input: usize,
        dtype: DType,
    },
    /// Two inputs that must share an element type do not.
    #[error("{op}: input {input} has element type {got} but input 0 has {expected}")]
    DTypeMismatch {
        op: &'static str,
        input: usize,
        expected: DType,
        got: DType,
    },
    /// Input shapes do not fit the op (ranks, broadcasting, channel counts, …).
    #[error("{op}: {reason}")]
    Shape { op: &'static str, reason: String },
    /// An attribute is inconsistent with itself or with the inputs.
    #[error("{op}: attribute `{attr}`: {reason}")]
    Attribute {
        op: &'static str,
        attr: &'static str,
        reason: String,
    },
    /// An index tensor holds a value outside the indexed axis.
    #[error(
        "{op}: index {index} at position {position} is out of range for axis {axis} of size {size}"
    )]
    IndexOutOfRange {
        op: &'static str,
        index: i64,
        position: usize,
        axis: usize,
        size: usize,
    },
    /// Integer division by zero (float division follows IEEE and never errors).
    #[error("{op}: integer division by zero at output element {position}")]
    DivisionByZero { op: &'static str, position: usize },
    /// An output would be too large to allocate (element count overflows or exceeds the limit).
    #[error("{op}: output shape {shape:?} is too large")]
    TooLarge { op: &'static str, shape: Vec<u128> },
    /// A bit-plane layer was asked to run at a plane count it has no side table for.
    #[error("plane count {k} has no side table (this layer has {plane_counts:?})")]
    NoSideTable { k: u8, plane_counts: Vec<u8> },
    /// A bit-plane layer was asked for more planes than the model carries (a truncated model).
    #[error("plane count {k} needs {k} planes but only {available} are present")]
    PlanesUnavailable { k: u8, available: usize },
    /// No plane count with a side table fits in the planes present, so there is no default.
    #[error("no plane count of {plane_counts:?} fits in the {available} planes present")]
    NoRunnablePlanes {
        available: usize,
        plane_counts: Vec<u8>,
    },
    /// A bit-plane layer's side table for plane count `k` holds unusable values.
    #[error("side table for plane count {k}: {reason}")]
    SideTable { k: u8, reason: String },
    /// Reverse mode has no gradient rule for this op (it is not a training-time op).
    #[error("op `{op}` has no gradient rule")]
    NoGradient { op: &'static str },
    /// Run options name a layer that is not a bit-plane op of the graph.
    /// An adaptive-precision run cannot proceed (`Session::run_adaptive`).
    #[error("adaptive precision: {0}")]
    Adaptive(String),
    #[error("run options select planes for `{node}`, which is not a bit-plane layer of the graph")]
    UnknownLayer { node: String },
}

impl RuntimeError {
    /// [`RuntimeError::UnsupportedDType`] for input `input` of `op`.
    pub(crate) fn unsupported(op: &'static str, input: usize, dtype: DType) -> RuntimeError {
        RuntimeError::UnsupportedDType { op, input, dtype }
    }

    /// [`RuntimeError::Shape`], for call sites that build the reason elsewhere.
    pub(crate) fn shape(op: &'static str, reason: impl Into<String>) -> RuntimeError {
        RuntimeError::Shape {
            op,
            reason: reason.into(),
        }
    }

    /// [`RuntimeError::Attribute`], for call sites that build the reason elsewhere.
    pub(crate) fn attribute(
        op: &'static str,
        attr: &'static str,
        reason: impl Into<String>,
    ) -> RuntimeError {
        RuntimeError::Attribute {
            op,
            attr,
            reason: reason.into(),
        }
    }

    /// [`RuntimeError::Shape`] saying that `what` (of shape `got`) does not match `other`
    /// (of shape `want`): the one wording of every "these two shapes must agree" check.
    pub(crate) fn mismatch(
        op: &'static str,
        what: &str,
        got: &[usize],
        other: &str,
        want: &[usize],
    ) -> RuntimeError {
        RuntimeError::shape(op, format!("{what} {got:?} differs from {other} {want:?}"))
    }

    /// Wraps an op-level error with the node it happened in.
    pub fn in_node(self, node: &str, op: &'static str) -> RuntimeError {
        RuntimeError::Node {
            node: node.to_string(),
            op,
            source: Box::new(self),
        }
    }

    /// The innermost error (unwrapping [`RuntimeError::Node`]), handy for matching in tests.
    pub fn root(&self) -> &RuntimeError {
        match self {
            RuntimeError::Node { source, .. } => source.root(),
            other => other,
        }
    }
}
