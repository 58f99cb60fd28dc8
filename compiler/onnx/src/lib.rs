//! The ONNX frontend: a `.onnx` model (opsets 7–22 of the default domain) → Strata IR.
//!
//! Strata compiles ahead of time, so the importer makes everything static that an exporter
//! left dynamic: `auto_pad` becomes explicit pads, shape-computing sub-graphs are evaluated
//! (symbolically where they mention the batch size) and shape parameters become attributes.
//! Malformed files produce an [`OnnxError`] that names the node or tensor, never a panic.

mod attrs;
mod error;
mod import;
mod input_shape;
mod ops;
mod sym;
mod tensor;

use std::collections::BTreeMap;
use std::path::Path;

use onnx_protobuf::{Message, ModelProto, TensorProto};
use strata_ir::{Graph, Tensor};

pub use error::OnnxError;
pub use input_shape::{parse_named_input_shape, InputDim, InputShape, InputShapeError};
pub use ops::{supported_ops, SupportedOp, MAX_OPSET, MIN_OPSET, NEWEST_REVIEWED_OPSET};
pub use tensor::MAX_ELEMENTS;

/// How to import a model.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Graph inputs to turn into constants, by name. Used when an input must be static in
    /// Strata (e.g. a Reshape target that a test feeds as an input).
    pub bind: BTreeMap<String, Tensor>,
    /// Static shapes for graph inputs, by name, replacing dynamic (symbolic or `-1`)
    /// dimensions; declared static dimensions must match. Strata needs every input dimension
    /// but the batch static.
    pub input_shapes: BTreeMap<String, InputShape>,
}

fn decode<M: Message>(bytes: &[u8]) -> Result<M, OnnxError> {
    if bytes.is_empty() {
        return Err(OnnxError::Decode {
            reason: "the input is empty".to_string(),
        });
    }
    M::parse_from_bytes(bytes).map_err(|e| OnnxError::Decode {
        reason: e.to_string(),
    })
}

/// Imports a model file; external data is looked up next to it. A file over protobuf's 2 GiB
/// limit ([`strata_ir::limits::MAX_PROTOBUF_BYTES`]) is refused before it is read.
pub fn import_file(path: &Path, opts: &ImportOptions) -> Result<Graph, OnnxError> {
    let bytes = strata_ir::files::read_limited(path, strata_ir::limits::MAX_PROTOBUF_BYTES)
        .map_err(|source| OnnxError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => Path::new(".").to_path_buf(),
    };
    import_bytes(&bytes, Some(&dir), opts)
}

/// Imports a serialized `ModelProto`; `dir` is where external data files live (`None`: the
/// model may not use external data).
pub fn import_bytes(
    bytes: &[u8],
    dir: Option<&Path>,
    opts: &ImportOptions,
) -> Result<Graph, OnnxError> {
    let model: ModelProto = decode(bytes)?;
    import::import_model(&model, dir, opts)
}

/// For a model file whose import stopped at a shape computed from the batch size: the
/// `NAME=1x…` input shapes that compile it for batch 1 (empty when no input has a dynamic
/// batch with otherwise declared dims, or the file does not decode).
pub fn batch_one_shapes(path: &Path) -> Vec<String> {
    let Ok(bytes) = strata_ir::files::read_limited(path, strata_ir::limits::MAX_PROTOBUF_BYTES)
    else {
        return Vec::new();
    };
    decode::<ModelProto>(&bytes)
        .map(|m| import::batch_one_shapes(&m))
        .unwrap_or_default()
}

/// Decodes a serialized `TensorProto` (the ONNX test-data format) into its name and tensor.
pub fn tensor_from_proto_bytes(bytes: &[u8]) -> Result<(String, Tensor), OnnxError> {
    let t: TensorProto = decode(bytes)?;
    let tensor = tensor::tensor_from_proto(&t, None)?;
    Ok((t.name, tensor))
}
