//! Strata's graph IR.
//!
//! The one representation every stage shares: the ONNX frontend builds it, passes rewrite
//! it, the runtime executes it and the backends lower it. It has no dependency on any of
//! them, so a device build links only this crate and the runtime.

pub mod adaptive;
pub mod container;
mod dtype;
mod error;
pub mod files;
mod graph;
pub mod limits;
pub mod math;
pub mod ops;
pub mod quant;
mod shape;
mod tensor;
pub mod text;
mod verify;

pub use dtype::{DType, UnknownDType};
pub use error::InferError;
pub use graph::{ConstId, Edge, Graph, GraphError, Node, NodeId, NodeKind, Value, ValueRef};
pub use ops::Op;
pub use shape::{Dim, Shape, TensorType};
pub use tensor::{Tensor, TensorData, TensorSizeMismatch};
pub use verify::{verify, VerifyError};
