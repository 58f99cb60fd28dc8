//! The frontend's one error type. Each variant names where the problem is (node, op type,
//! tensor, attribute, file offset) so a user can find it in their model without a debugger,
//! and tests can match on the exact failure.

use std::path::PathBuf;

use strata_ir::{GraphError, InferError};

/// Why an ONNX model could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The model file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a valid protobuf message (truncated, garbage, empty graph).
    #[error("cannot decode ONNX protobuf: {reason}")]
    Decode { reason: String },
    /// The model has no graph.
    #[error("the model has no graph")]
    MissingGraph,
    /// The model does not import the default ONNX domain although it uses it.
    #[error("node `{node}` ({op_type}): the model imports no opset for the default ONNX domain")]
    MissingOpset { node: String, op_type: String },
    /// The op exists, but not in the way the model's opset defines it.
    #[error(
        "node `{node}` ({op_type}, domain `{domain}`, opset {opset}): unsupported opset: {reason}"
    )]
    UnsupportedOpset {
        node: String,
        op_type: String,
        domain: String,
        opset: i64,
        reason: String,
    },
    /// An op type the frontend does not know.
    #[error("node `{node}`: unsupported op `{op_type}` (domain `{domain}`, opset {opset})")]
    UnsupportedOp {
        node: String,
        op_type: String,
        domain: String,
        opset: i64,
    },
    /// An op from a domain other than the default ONNX one.
    #[error("node `{node}`: op `{op_type}` is in unsupported domain `{domain}` (opset {opset:?})")]
    UnsupportedDomain {
        node: String,
        op_type: String,
        domain: String,
        opset: Option<i64>,
    },
    /// An element type Strata does not represent.
    #[error("`{name}`: unsupported element type {dtype}")]
    UnsupportedDType { name: String, dtype: String },
    /// A value whose type is not a tensor, or has no shape.
    #[error("value `{name}`: unsupported type: {reason}")]
    UnsupportedType { name: String, reason: String },
    /// A graph input dimension that is symbolic (or `-1`) but not the leading batch
    /// dimension, and no input shape pins it.
    #[error("input `{input}`, axis {axis}: dimension `{symbol}` is dynamic; only axis 0 (the batch) may be. Pin the input's shape, e.g. `{input}={suggestion}`")]
    SymbolicDim {
        input: String,
        axis: usize,
        symbol: String,
        /// The declared shape with every dynamic dimension but the batch shown as `?`.
        suggestion: String,
    },
    /// A pinned input shape that does not fit the input's declared shape.
    #[error("input `{input}`: pinned shape {pinned} does not fit the declared shape {declared}: {reason}")]
    InputShape {
        input: String,
        pinned: String,
        declared: String,
        reason: String,
    },
    /// A pinned input shape for a name that is not a graph input.
    #[error("input shape for `{name}`: the model has no graph input of this name (its inputs: {inputs})")]
    UnknownInputShape { name: String, inputs: String },
    /// A declared dimension that is negative or too large.
    #[error("value `{name}`, axis {axis}: invalid dimension {dim}")]
    InvalidDim { name: String, axis: usize, dim: i64 },
    /// A tensor whose element count overflows or exceeds what Strata will allocate.
    #[error("tensor `{name}`: dimensions {dims:?} are too large ({reason})")]
    TensorTooLarge {
        name: String,
        dims: Vec<i64>,
        reason: String,
    },
    /// Tensor data that does not match its declared dimensions.
    #[error("tensor `{name}`: {field} holds {got} {unit} but dimensions {dims:?} need {expected}")]
    TensorDataLength {
        name: String,
        dims: Vec<i64>,
        field: &'static str,
        unit: &'static str,
        expected: usize,
        got: usize,
    },
    /// Tensor data that is present but cannot be represented (e.g. an int8 value out of range).
    #[error("tensor `{name}`: invalid data: {reason}")]
    InvalidTensor { name: String, reason: String },
    /// External data with a bad location, missing keys, or no model directory.
    #[error("tensor `{name}`: invalid external data: {reason}")]
    ExternalData { name: String, reason: String },
    /// External data that points outside the referenced file.
    #[error("tensor `{name}`: external data range offset {offset} + length {length} exceeds file `{path}` of {file_len} bytes")]
    ExternalDataRange {
        name: String,
        path: PathBuf,
        offset: u64,
        length: u64,
        file_len: u64,
    },
    /// The external data file could not be read.
    #[error("tensor `{name}`: cannot read external data `{path}`: {source}")]
    ExternalDataIo {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A required attribute is absent.
    #[error("node `{node}` ({op_type}): missing required attribute `{attr}`")]
    MissingAttribute {
        node: String,
        op_type: String,
        attr: String,
    },
    /// An attribute of the wrong protobuf type (e.g. `ints` where an `int` is expected).
    #[error("node `{node}` ({op_type}): attribute `{attr}` has type {got}, expected {expected}")]
    AttributeType {
        node: String,
        op_type: String,
        attr: String,
        expected: &'static str,
        got: String,
    },
    /// An attribute whose value is outside its valid range.
    #[error("node `{node}` ({op_type}): attribute `{attr}` out of range: {reason}")]
    AttributeOutOfRange {
        node: String,
        op_type: String,
        attr: String,
        reason: String,
    },
    /// A valid attribute value Strata does not implement (e.g. Pad `mode=reflect`).
    #[error("node `{node}` ({op_type}): unsupported value {value} for attribute `{attr}`")]
    UnsupportedAttributeValue {
        node: String,
        op_type: String,
        attr: String,
        value: String,
    },
    /// A node feature Strata does not implement (training mode, MaxPool indices, …).
    #[error("node `{node}` ({op_type}): unsupported: {reason}")]
    Unsupported {
        node: String,
        op_type: String,
        reason: String,
    },
    /// A required input is absent or the node has too many inputs.
    #[error("node `{node}` ({op_type}): {reason}")]
    InputCount {
        node: String,
        op_type: String,
        reason: String,
    },
    /// An input name no initializer, graph input or node produces.
    #[error("node `{node}` ({op_type}): input `{input}` is not defined by any initializer, graph input or node")]
    UndefinedInput {
        node: String,
        op_type: String,
        input: String,
    },
    /// A value name defined twice.
    #[error("value `{name}` is defined twice (by {first} and by {second})")]
    DuplicateValue {
        name: String,
        first: String,
        second: String,
    },
    /// Nodes that depend on each other in a cycle.
    #[error("node `{node}` ({op_type}) is part of a cycle")]
    Cycle { node: String, op_type: String },
    /// A shape-determining input that is not a compile-time constant.
    #[error(
        "node `{node}` ({op_type}): input `{input}` must be a constant (it determines a shape)"
    )]
    NonConstantInput {
        node: String,
        op_type: String,
        input: String,
    },
    /// A shape-determining value that depends on the batch size where Strata cannot keep it symbolic.
    #[error("node `{node}` ({op_type}): input `{input}` depends on the batch size: {reason}")]
    BatchDependent {
        node: String,
        op_type: String,
        input: String,
        reason: String,
    },
    /// The op's inputs do not fit together (shape inference failed).
    #[error("node `{node}` ({op_type}): {source}")]
    Shape {
        node: String,
        op_type: String,
        #[source]
        source: InferError,
    },
    /// A graph output whose declared type disagrees with the inferred one.
    #[error("value `{name}`: declared type {declared} disagrees with inferred type {inferred}")]
    TypeMismatch {
        name: String,
        declared: String,
        inferred: String,
    },
    /// A graph output no node produces.
    #[error("graph output `{name}` is not produced by any node, initializer or input")]
    UndefinedOutput { name: String },
    /// A binding for a graph input that does not exist.
    #[error("binding `{name}` does not name a graph input")]
    UnknownBinding { name: String },
    /// A binding whose tensor does not fit the declared input type.
    #[error("binding `{name}`: tensor of type {got} does not fit declared input type {declared}")]
    BindingMismatch {
        name: String,
        declared: String,
        got: String,
    },
    /// A graph-building error not covered above (an internal invariant broke).
    #[error("graph construction failed: {0}")]
    Graph(#[from] GraphError),
}
