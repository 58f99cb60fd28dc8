//! Data-movement ops: reshaping, transposition, concatenation, padding, slicing, indexing.
//!
//! All axes are normalised to non-negative by the frontend; every shape-determining parameter
//! is a static attribute, because Strata's shapes are static apart from the batch dimension.

/// ONNX Reshape with a constant target shape (`0` copies a dimension unless `allow_zero`,
/// `-1` is inferred).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reshape {
    pub shape: Vec<i64>,
    pub allow_zero: bool,
}

/// Constant-mode padding. `pads = [begin_0, …, end_0, …]` over every axis; negative values crop.
#[derive(Debug, Clone, PartialEq)]
pub struct Pad {
    pub pads: Vec<i64>,
    pub value: f64,
}

/// ONNX Slice with constant parameters; `starts`, `ends`, `axes`, `steps` have equal lengths
/// and are stored as given (out-of-range starts/ends are clamped by shape inference, as ONNX does).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slice {
    pub starts: Vec<i64>,
    pub ends: Vec<i64>,
    pub axes: Vec<usize>,
    pub steps: Vec<i64>,
}

/// Split along `axis` into pieces of the given sizes (one output each).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Split {
    pub axis: usize,
    pub sizes: Vec<usize>,
}
