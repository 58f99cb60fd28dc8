//! Loading a model from whatever file the user hands the CLI or a build script.

use std::collections::BTreeMap;
use std::path::Path;

use strata_ir::container::{read_container, ContainerError};
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
        source: Box<strata_ir::text::ParseError>,
    },
    #[error("{path}: the IR text parses but is not a valid graph: {source}")]
    Invalid {
        path: String,
        #[source]
        source: Box<strata_ir::VerifyError>,
    },
    #[error("{path}: {source}")]
    Container {
        path: String,
        #[source]
        source: Box<ContainerError>,
    },
    #[error("{path}: unknown model format (expected `.onnx`, `.strata` or Strata IR text `.sir`)")]
    UnknownFormat { path: String },
}

/// What a `.strata` file says about itself besides the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerInfo {
    /// `B`: planes in the complete model.
    pub bits: u8,
    /// Planes present in this (possibly stripped) file.
    pub available_planes: u8,
    pub metadata: BTreeMap<String, String>,
    pub file_bytes: u64,
    /// Mixed precision: the stored per-layer plane choice (empty: uniform).
    pub layer_planes: BTreeMap<String, u8>,
}

impl ContainerInfo {
    /// The per-layer plane counts to run at when the user names none: the stored choice,
    /// lowered where the file was cut below it.
    pub fn default_layer_planes(
        &self,
        graph: &Graph,
    ) -> Result<BTreeMap<String, u8>, ContainerError> {
        strata_ir::container::effective_layer_planes(
            graph,
            &self.layer_planes,
            self.available_planes,
        )
    }
}

/// A loaded model: its graph, and container details when it came from a `.strata` file.
#[derive(Debug, Clone)]
pub struct Model {
    pub graph: Graph,
    pub container: Option<ContainerInfo>,
}

/// Loads an ONNX model (`.onnx`), a vertically layered container (`.strata`) or Strata IR
/// text (`.sir`, as printed by `strata opt`).
pub fn load_model(path: &Path) -> Result<Model, LoadError> {
    let shown = path.display().to_string();
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| LoadError::Io {
            path: shown.clone(),
            source,
        })
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("onnx") => Ok(Model {
            graph: crate::onnx::import_file(path, &Default::default())?,
            container: None,
        }),
        Some("strata") => {
            let bytes = read(path)?;
            let loaded = read_container(&bytes).map_err(|source| LoadError::Container {
                path: shown.clone(),
                source: Box::new(source),
            })?;
            Ok(Model {
                graph: loaded.graph,
                container: Some(ContainerInfo {
                    bits: loaded.bits,
                    available_planes: loaded.available_planes,
                    metadata: loaded.metadata,
                    file_bytes: bytes.len() as u64,
                    layer_planes: loaded.layer_planes,
                }),
            })
        }
        Some("sir") => {
            let text = String::from_utf8(read(path)?).map_err(|e| LoadError::Io {
                path: shown.clone(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            })?;
            let graph = strata_ir::text::parse(&text).map_err(|source| LoadError::Text {
                path: shown.clone(),
                source: Box::new(source),
            })?;
            strata_ir::verify(&graph).map_err(|source| LoadError::Invalid {
                path: shown,
                source: Box::new(source),
            })?;
            Ok(Model {
                graph,
                container: None,
            })
        }
        _ => Err(LoadError::UnknownFormat { path: shown }),
    }
}
