//! Loading a model from whatever file the user hands the CLI or a build script.

use std::path::Path;

use strata_ir::Graph;

/// Why a model file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Onnx(#[from] crate::onnx::OnnxError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Text {
        path: String,
        #[source]
        source: strata_ir::text::ParseError,
    },
    #[error("{path}: the IR text parses but is not a valid graph: {source}")]
    Invalid {
        path: String,
        #[source]
        source: strata_ir::VerifyError,
    },
    #[error("{path}: unknown model format (expected a `.onnx` file or Strata IR text `.sir`)")]
    UnknownFormat { path: String },
}

/// Loads an ONNX model (`.onnx`) or Strata IR text (`.sir`, as printed by `strata opt`).
pub fn load_model(path: &Path) -> Result<Graph, LoadError> {
    let shown = path.display().to_string();
    match path.extension().and_then(|e| e.to_str()) {
        Some("onnx") => Ok(crate::onnx::import_file(path, &Default::default())?),
        Some("sir") => {
            let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
                path: shown.clone(),
                source,
            })?;
            let graph = strata_ir::text::parse(&text).map_err(|source| LoadError::Text {
                path: shown.clone(),
                source,
            })?;
            strata_ir::verify(&graph).map_err(|source| LoadError::Invalid {
                path: shown,
                source,
            })?;
            Ok(graph)
        }
        _ => Err(LoadError::UnknownFormat { path: shown }),
    }
}
