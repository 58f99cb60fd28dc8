//! Loading a model from whatever file the user hands the CLI or a build script.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use strata_ir::container::{read_container, ContainerError};
use strata_ir::{Graph, Op, Tensor};
use strata_runtime::RunOptions;

use crate::npy::{read_npy, NpyError};

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
    #[error("{path}: input shapes apply to ONNX models; this model's shapes are already static")]
    InputShapesNotOnnx { path: String },
}

/// How to load a model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Static shapes for an ONNX model's graph inputs, by name (see
    /// [`strata_onnx::ImportOptions::input_shapes`]).
    pub input_shapes: BTreeMap<String, strata_onnx::InputShape>,
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
    /// The stored adaptive-precision policy, as written (see [`ContainerInfo::adaptive_policy`]).
    pub adaptive: Option<strata_ir::adaptive::AdaptivePolicy>,
}

impl ContainerInfo {
    /// The stored adaptive policy as this file can run it (counts lowered to the planes
    /// present); `None` when the file has none.
    pub fn adaptive_policy(
        &self,
        graph: &Graph,
    ) -> Result<Option<strata_ir::adaptive::AdaptivePolicy>, ContainerError> {
        self.adaptive
            .as_ref()
            .map(|p| p.effective(graph, self.available_planes))
            .transpose()
    }

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

    /// Fills in the stored mixed-precision choice for the layers `options` leaves open when
    /// it names no uniform plane count (per-layer entries the caller gave still win).
    /// Returns the stored choice that applies (empty: none).
    pub fn apply_default_planes(
        &self,
        graph: &Graph,
        options: &mut RunOptions,
    ) -> Result<BTreeMap<String, u8>, ContainerError> {
        if options.planes.is_some() {
            return Ok(BTreeMap::new());
        }
        let defaults = self.default_layer_planes(graph)?;
        for (node, k) in &defaults {
            options.per_layer.entry(node.clone()).or_insert(*k);
        }
        Ok(defaults)
    }

    /// A file path recorded in the metadata under `key` (`source`, `calibration`): as
    /// written if it exists, else relative to the container's directory.
    pub fn recorded_path(&self, container: &Path, key: &str) -> Option<PathBuf> {
        let recorded = PathBuf::from(self.metadata.get(key)?);
        if recorded.exists() {
            return Some(recorded);
        }
        let beside = container.parent()?.join(&recorded);
        beside.exists().then_some(beside)
    }

    /// What `strata inspect` reports about the container beside the graph summary.
    pub fn summary(&self, graph: &Graph) -> ContainerSummary {
        ContainerSummary {
            bits: self.bits,
            available_planes: self.available_planes,
            plane_counts: plane_counts(graph),
            act_bits: act_bits(graph),
            file_bytes: self.file_bytes,
            metadata: self.metadata.clone(),
            layer_planes: self.layer_planes.clone(),
            adaptive: self.adaptive.as_ref().map(|p| AdaptiveSummary {
                target: p.target.clone(),
                stages: p
                    .stages
                    .iter()
                    .map(|s| AdaptiveStageSummary {
                        layer_planes: s.layer_planes.clone(),
                        min_margin: s.min_margin,
                    })
                    .collect(),
            }),
        }
    }
}

/// A stored adaptive policy as `strata inspect` shows it (as stored: counts above the planes
/// present are lowered when it runs).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AdaptiveSummary {
    pub target: String,
    pub stages: Vec<AdaptiveStageSummary>,
}

/// One stage of [`AdaptiveSummary`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AdaptiveStageSummary {
    pub layer_planes: BTreeMap<String, u8>,
    /// Accept the stage's output at a margin at least this (unused on the last stage).
    pub min_margin: f32,
}

/// A container's header facts as `strata inspect` prints them (and `--json` serialises them).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ContainerSummary {
    pub bits: u8,
    pub available_planes: u8,
    /// Plane counts with a side table in every layer.
    pub plane_counts: Vec<u8>,
    /// Activation bits at each of those plane counts (the widest over the layers): all the
    /// same for `W k A8`, `max(k, 2)` for a `W k A k` model.
    pub act_bits: BTreeMap<u8, u8>,
    pub file_bytes: u64,
    pub metadata: BTreeMap<String, String>,
    pub layer_planes: BTreeMap<String, u8>,
    /// The adaptive-precision policy, if the file has one (`strata adapt`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<AdaptiveSummary>,
}

impl fmt::Display for ContainerSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let counts: Vec<String> = self.plane_counts.iter().map(|k| k.to_string()).collect();
        writeln!(
            f,
            "container: {} bytes, {} of {} planes present; side tables for k = {}",
            self.file_bytes,
            self.available_planes,
            self.bits,
            counts.join(",")
        )?;
        let widths: Vec<u8> = self.act_bits.values().copied().collect();
        match widths.first() {
            Some(&a) if widths.iter().all(|&w| w == a) => {
                writeln!(f, "activations: {a} bits at every plane count")?
            }
            Some(_) => {
                let per: Vec<String> = self
                    .act_bits
                    .iter()
                    .map(|(k, a)| format!("k={k}: {a}"))
                    .collect();
                writeln!(f, "activation bits per plane count: {}", per.join(", "))?
            }
            None => {}
        }
        if !self.layer_planes.is_empty() {
            writeln!(
                f,
                "mixed precision (per-layer plane counts): {:?}",
                self.layer_planes
            )?;
        }
        if let Some(policy) = &self.adaptive {
            writeln!(
                f,
                "adaptive policy ({}): {} stages",
                policy.target,
                policy.stages.len()
            )?;
            let last = policy.stages.len().saturating_sub(1);
            for (i, stage) in policy.stages.iter().enumerate() {
                let first = stage.layer_planes.values().next();
                let planes: Vec<String> = match first {
                    Some(k) if stage.layer_planes.values().all(|v| v == k) => {
                        vec![format!("every layer at {k} planes")]
                    }
                    _ => stage
                        .layer_planes
                        .iter()
                        .map(|(n, k)| format!("{n}={k}"))
                        .collect(),
                };
                let gate = if i == last {
                    "always answers".to_string()
                } else {
                    format!("answers at margin >= {}", stage.min_margin)
                };
                writeln!(f, "  stage {i}: {}; {gate}", planes.join(","))?;
            }
        }
        for (k, v) in &self.metadata {
            writeln!(f, "  {k}: {v}")?;
        }
        Ok(())
    }
}

/// Plane counts that carry side tables in every bit-plane op of `graph` (the same for every
/// layer of a compiled model).
pub fn plane_counts(graph: &Graph) -> Vec<u8> {
    let mut counts: Option<Vec<u8>> = None;
    for id in graph.node_ids() {
        if let Ok(Some(Op::Bitplane(bp))) = graph.node(id).map(|n| n.op()) {
            counts = Some(match counts {
                None => bp.spec.plane_counts.clone(),
                Some(c) => c
                    .into_iter()
                    .filter(|k| bp.spec.plane_counts.contains(k))
                    .collect(),
            });
        }
    }
    counts.unwrap_or_default()
}

/// Activation bits of each plane count of [`plane_counts`], the widest over the layers (a
/// compiled model uses one rule for every layer).
pub fn act_bits(graph: &Graph) -> BTreeMap<u8, u8> {
    let counts = plane_counts(graph);
    let mut out = BTreeMap::new();
    for id in graph.node_ids() {
        if let Ok(Some(Op::Bitplane(bp))) = graph.node(id).map(|n| n.op()) {
            for &k in &counts {
                if let Some(a) = bp.spec.act_bits_of(k) {
                    let e = out.entry(k).or_insert(a);
                    *e = (*e).max(a);
                }
            }
        }
    }
    out
}

/// Why a model's inputs could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("the model takes {expected} inputs but {got} files were given")]
    Count { expected: usize, got: usize },
    #[error(transparent)]
    Npy(#[from] NpyError),
}

/// Reads one `.npy` per graph input, in graph-input order.
pub fn read_inputs(graph: &Graph, files: &[PathBuf]) -> Result<Vec<Tensor>, InputError> {
    if files.len() != graph.inputs().len() {
        return Err(InputError::Count {
            expected: graph.inputs().len(),
            got: files.len(),
        });
    }
    Ok(files
        .iter()
        .map(|p| read_npy(p))
        .collect::<Result<Vec<Tensor>, _>>()?)
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
    load_model_with(path, &LoadOptions::default())
}

/// [`load_model`] with options (input shapes for ONNX models).
pub fn load_model_with(path: &Path, options: &LoadOptions) -> Result<Model, LoadError> {
    let shown = path.display().to_string();
    let is_onnx = path.extension().and_then(|e| e.to_str()) == Some("onnx");
    if !is_onnx && !options.input_shapes.is_empty() {
        return Err(LoadError::InputShapesNotOnnx { path: shown });
    }
    let read = |path: &Path| {
        strata_ir::files::read_limited(path, strata_ir::limits::MAX_FILE_BYTES).map_err(|source| {
            LoadError::Io {
                path: shown.clone(),
                source,
            }
        })
    };
    match path.extension().and_then(|e| e.to_str()) {
        Some("onnx") => Ok(Model {
            graph: crate::onnx::import_file(
                path,
                &crate::onnx::ImportOptions {
                    input_shapes: options.input_shapes.clone(),
                    ..Default::default()
                },
            )?,
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
                    adaptive: loaded.adaptive,
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
