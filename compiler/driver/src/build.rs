//! The library API for build scripts: compile a model (or take an existing `.strata`) and
//! emit C — or, with [`Backend::Mlir`], a native object through MLIR — into `OUT_DIR` from a
//! `build.rs`, without shelling out to the CLI.
//!
//! ```no_run
//! use strata_compiler::build::{Build, Target};
//! # fn main() -> Result<(), strata_compiler::build::BuildError> {
//! let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
//! let built = Build::new("models/mnist_cnn.onnx")
//!     .calibration("tests/fixtures/mnist/calib.npy")
//!     .planes(4)
//!     .target(Target::Generic)
//!     .emit(&out)?;
//! // built.artifact is OUT_DIR/mnist_cnn.c; hand it to the `cc` crate (`.file`).
//! # Ok(()) }
//! ```
//!
//! With `.backend(Backend::Mlir)` (cargo feature `mlir` of `strata-compiler`, LLVM/MLIR 22)
//! the artifact is `OUT_DIR/mnist_cnn.o` with the same header and C API; link it (`cc`'s
//! `.object`, or `cargo:rustc-link-arg`).
//!
//! Output is deterministic: the same inputs give byte-identical `.strata` and C files (the
//! compile pipeline is seeded and order-stable, the writers are pure functions), and files
//! whose content is unchanged are not rewritten, so their timestamps do not trigger rebuilds.
//! Inside a build script (`OUT_DIR` set) it prints `cargo:rerun-if-changed=` for every input.

use std::path::{Path, PathBuf};

use strata_ir::container::{read_container, ContainerError};
use strata_ir::Graph;

use crate::backend::c::{emit, CodeBits, EmitError, EmitOptions, EmitStats, LowerError};
use crate::compile::{
    compile_to_container, compile_with_tables, CompileError, CompileOptions, Provenance,
};
use crate::model::{load_model_with, ContainerInfo, LoadError, LoadOptions};
use crate::npy::{read_npy, NpyError};
use crate::onnx::InputShape;

/// Code-generation target of the C backend (what `strata emit-c --target` takes).
pub use crate::backend::c::Target;

/// Which code generator [`Build::emit`] uses (what `strata build --backend` takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// C99 sources for a [`Target`]: `NAME.c` and `NAME.h`.
    #[default]
    C,
    /// A native object compiled through MLIR/LLVM 22: `NAME.o` and the same `NAME.h`. Needs
    /// the `mlir` cargo feature of `strata-compiler`.
    Mlir,
}

/// Why a build step failed; each names the file or option at fault.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Npy(#[from] NpyError),
    #[error("{model}: compiling needs calibration inputs (Build::calibration)")]
    NoCalibration { model: String },
    #[error("{model}: takes {expected} inputs but {given} calibration files were given")]
    CalibrationCount {
        model: String,
        expected: usize,
        given: usize,
    },
    #[error("{model}: {what} does not apply with qat_tables (the tables fix the quantization)")]
    WithQatTables { model: String, what: &'static str },
    #[error("{model} is already a .strata model: {what} only applies when compiling from ONNX or IR text")]
    AlreadyCompiled { model: String, what: &'static str },
    #[error("{model}: {source}")]
    Compile {
        model: String,
        #[source]
        source: Box<CompileError>,
    },
    #[error("{model}: {source}")]
    Container {
        model: String,
        #[source]
        source: Box<ContainerError>,
    },
    #[error("{model}: {source}")]
    Emit {
        model: String,
        #[source]
        source: Box<EmitError>,
    },
    #[error("{model}: {planes} planes requested, but only {available} are present")]
    Planes {
        model: String,
        planes: u8,
        available: u8,
    },
    #[error(
        "{model}: layer `{layer}` has no side table for any of the {available} planes present \
         (its plane counts: {plane_counts:?}); recompile with a plane count of at most \
         {available} (--planes), or strip fewer planes"
    )]
    NoRunnablePlanes {
        model: String,
        layer: String,
        available: u8,
        plane_counts: Vec<u8>,
    },
    #[error(transparent)]
    UnknownTarget(#[from] crate::backend::c::UnknownTarget),
    #[error("{model}: {what}")]
    BackendOption { model: String, what: &'static str },
    #[error("{model}: {}", crate::backend::MLIR_DISABLED)]
    MlirDisabled { model: String },
    #[cfg(feature = "mlir")]
    #[error("{model}: {source}")]
    Mlir {
        model: String,
        #[source]
        source: Box<crate::backend::mlir::MlirError>,
    },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The files [`Build::emit`] wrote and what they contain.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildOutput {
    /// The backend that wrote them.
    pub backend: Backend,
    /// `DIR/NAME.h`.
    pub header: PathBuf,
    /// The one file to build with: `DIR/NAME.c` to compile ([`Backend::C`]) or `DIR/NAME.o`
    /// to link ([`Backend::Mlir`]).
    pub artifact: PathBuf,
    /// `DIR`, the include directory.
    pub include_dir: PathBuf,
    /// `K`: planes stored in the weights.
    pub planes: u8,
    /// Mixed precision: the per-layer default plane counts (`None`: `K` everywhere).
    pub layer_planes: Option<Vec<u8>>,
    /// Weight, arena and scratch bytes and MACs, as the header states them.
    pub stats: EmitStats,
}

/// A model to compile and emit, configured step by step (see the module docs).
#[derive(Debug, Clone)]
pub struct Build {
    model: PathBuf,
    calibration: Vec<PathBuf>,
    calibration_samples: Option<usize>,
    qat_tables: Option<PathBuf>,
    options: Option<CompileOptions>,
    budget_bytes: Option<u64>,
    planes: Option<u8>,
    target: Target,
    code_bits: CodeBits,
    backend: Backend,
    target_triple: Option<String>,
    target_cpu: Option<String>,
    name: Option<String>,
    cargo_metadata: Option<bool>,
    load: LoadOptions,
}

impl Build {
    /// Starts from a trained model (`.onnx`, `.sir`) or an already compiled `.strata`.
    pub fn new(model: impl Into<PathBuf>) -> Self {
        Build {
            model: model.into(),
            calibration: Vec::new(),
            calibration_samples: None,
            qat_tables: None,
            options: None,
            budget_bytes: None,
            planes: None,
            target: Target::Generic,
            code_bits: CodeBits::Fast,
            backend: Backend::C,
            target_triple: None,
            target_cpu: None,
            name: None,
            cargo_metadata: None,
            load: LoadOptions::default(),
        }
    }

    /// Pins the shape of an ONNX graph input whose dimensions are dynamic (symbolic or `-1`),
    /// e.g. `.input_shape("input", "Nx3x224x224".parse()?)`; `N` keeps the batch free.
    pub fn input_shape(mut self, input: impl Into<String>, shape: InputShape) -> Self {
        self.load.input_shapes.insert(input.into(), shape);
        self
    }

    /// Adds a calibration `.npy` (float32 `[N, …]`, preprocessed); one per graph input.
    pub fn calibration(mut self, path: impl Into<PathBuf>) -> Self {
        self.calibration.push(path.into());
        self
    }

    /// Uses only the first `n` calibration samples: faster builds, slightly rougher ranges.
    pub fn calibration_samples(mut self, n: usize) -> Self {
        self.calibration_samples = Some(n);
        self
    }

    /// Packages the model with code scales and side tables trained elsewhere (the sidecar
    /// `strata_torch` writes, docs/qat-tables.md) instead of calibrating: no calibration
    /// inputs are needed, and [`Build::compile_options`], [`Build::calibration_samples`] and
    /// [`Build::budget_bytes`] do not apply (the file fixes bits and plane counts).
    pub fn qat_tables(mut self, path: impl Into<PathBuf>) -> Self {
        self.qat_tables = Some(path.into());
        self
    }

    /// Full compile options. Without them the defaults are used, with side tables only for
    /// plane counts `2..=K` when [`Build::planes`] is set (higher counts would never be
    /// emitted, so calibrating them only costs build time).
    pub fn compile_options(mut self, options: CompileOptions) -> Self {
        self.options = Some(options);
        self
    }

    /// Mixed precision: per-layer plane counts within this many C weight bytes.
    pub fn budget_bytes(mut self, bytes: u64) -> Self {
        self.budget_bytes = Some(bytes);
        self
    }

    /// `K`: planes to emit. Default: the stored mixed-precision choice, else each layer's
    /// largest count with a side table among the planes present (what `strata run` runs).
    pub fn planes(mut self, k: u8) -> Self {
        self.planes = Some(k);
        self
    }

    /// The C backend's code-generation target.
    pub fn target(mut self, target: Target) -> Self {
        self.target = target;
        self
    }

    /// Bits a code takes on the C backend's code-layout targets (default
    /// [`CodeBits::Fast`]; [`CodeBits::Exact`]: `K` bits a weight; [`CodeBits::Stream`]:
    /// fully connected layers at the widths that stream fastest from memory).
    pub fn code_bits(mut self, code_bits: CodeBits) -> Self {
        self.code_bits = code_bits;
        self
    }

    /// The code generator (default [`Backend::C`]).
    pub fn backend(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// [`Backend::Mlir`]: the LLVM target triple of the object (`aarch64-linux-gnu`; default:
    /// this machine). Compiling for another triple runs LLVM 22's `mlir-translate` and `llc`.
    pub fn target_triple(mut self, triple: impl Into<String>) -> Self {
        self.target_triple = Some(triple.into());
        self
    }

    /// [`Backend::Mlir`] with a [`Build::target_triple`]: the LLVM CPU (`-mcpu`, e.g.
    /// `neoverse-n1`).
    pub fn target_cpu(mut self, cpu: impl Into<String>) -> Self {
        self.target_cpu = Some(cpu.into());
        self
    }

    /// Prefix of the files, functions and macros (default: the model's file stem).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Whether to print `cargo:rerun-if-changed` lines (default: when `OUT_DIR` is set, i.e.
    /// inside a build script).
    pub fn cargo_metadata(mut self, on: bool) -> Self {
        self.cargo_metadata = Some(on);
        self
    }

    fn shown(&self) -> String {
        self.model.display().to_string()
    }

    fn is_strata(&self) -> bool {
        self.model.extension().and_then(|e| e.to_str()) == Some("strata")
    }

    fn announce_inputs(&self) {
        let on = self
            .cargo_metadata
            .unwrap_or_else(|| std::env::var_os("OUT_DIR").is_some());
        if on {
            let inputs = std::iter::once(&self.model)
                .chain(&self.calibration)
                .chain(&self.qat_tables);
            for path in inputs {
                println!("cargo:rerun-if-changed={}", path.display());
            }
        }
    }

    /// The `.strata` bytes: the file itself, or the result of compiling the model.
    pub fn strata_bytes(&self) -> Result<Vec<u8>, BuildError> {
        self.announce_inputs();
        let model = self.shown();
        if self.is_strata() {
            for (given, what) in [
                (!self.calibration.is_empty(), "calibration"),
                (self.options.is_some(), "compile_options"),
                (self.budget_bytes.is_some(), "budget_bytes"),
                (!self.load.input_shapes.is_empty(), "input_shape"),
                (self.qat_tables.is_some(), "qat_tables"),
            ] {
                if given {
                    return Err(BuildError::AlreadyCompiled { model, what });
                }
            }
            return strata_ir::files::read_limited(&self.model, strata_ir::limits::MAX_FILE_BYTES)
                .map_err(|source| BuildError::Io {
                    path: model,
                    source,
                });
        }
        if let Some(tables) = &self.qat_tables {
            return self.package_with_tables(tables);
        }
        if self.calibration.is_empty() {
            return Err(BuildError::NoCalibration { model });
        }
        let graph = load_model_with(&self.model, &self.load)?.graph;
        let samples = self.read_calibration(&graph)?;
        let mut options = self.options.clone().unwrap_or_else(|| {
            let top = self.planes.unwrap_or(8).clamp(2, 8);
            CompileOptions {
                planes: (2..=top).collect(),
                ..CompileOptions::default()
            }
        });
        if self.budget_bytes.is_some() {
            options.budget_bytes = self.budget_bytes;
        }
        let bytes = strata_ir::files::read_limited(&self.model, strata_ir::limits::MAX_FILE_BYTES)
            .map_err(|source| BuildError::Io {
                path: model.clone(),
                source,
            })?;
        let metadata = Provenance::new(&model, &bytes, &self.calibration, &options, &samples)
            .with_input_shapes(&self.load.input_shapes)
            .to_metadata();
        compile_to_container(graph, samples, &options, metadata, |_| {}).map_err(|source| {
            BuildError::Compile {
                model,
                source: Box::new(source),
            }
        })
    }

    /// The calibration files, one per graph input, cut to [`Build::calibration_samples`].
    fn read_calibration(&self, graph: &Graph) -> Result<Vec<strata_ir::Tensor>, BuildError> {
        if graph.inputs().len() != self.calibration.len() {
            return Err(BuildError::CalibrationCount {
                model: self.shown(),
                expected: graph.inputs().len(),
                given: self.calibration.len(),
            });
        }
        let mut samples = Vec::new();
        for path in &self.calibration {
            let t = read_npy(path)?;
            samples.push(match self.calibration_samples {
                Some(n) => first_rows(t, n).map_err(|source| BuildError::Io {
                    path: path.display().to_string(),
                    source,
                })?,
                None => t,
            });
        }
        Ok(samples)
    }

    /// The `.strata` bytes of the model packaged with the QAT tables at `tables`.
    fn package_with_tables(&self, tables: &Path) -> Result<Vec<u8>, BuildError> {
        let model = self.shown();
        for (given, what) in [
            (self.options.is_some(), "compile_options"),
            (self.budget_bytes.is_some(), "budget_bytes"),
            (self.calibration_samples.is_some(), "calibration_samples"),
        ] {
            if given {
                return Err(BuildError::WithQatTables { model, what });
            }
        }
        let graph = load_model_with(&self.model, &self.load)?.graph;
        let bytes = strata_ir::files::read_limited(&self.model, strata_ir::limits::MAX_FILE_BYTES)
            .map_err(|source| BuildError::Io {
                path: model.clone(),
                source,
            })?;
        // Calibration files given beside the tables are only recorded, as the CLI does.
        let samples = if self.calibration.is_empty() {
            Vec::new()
        } else {
            self.read_calibration(&graph)?
        };
        let options = CompileOptions::default();
        let metadata = Provenance::new(&model, &bytes, &self.calibration, &options, &samples)
            .with_input_shapes(&self.load.input_shapes)
            .with_qat_tables(tables)
            .to_metadata();
        compile_with_tables(graph, tables, metadata, |_| {})
            .map(|(bytes, _)| bytes)
            .map_err(|source| BuildError::Compile {
                model,
                source: Box::new(source),
            })
    }

    /// Compiles if needed and writes the `.strata` file (only if its bytes changed).
    pub fn write_strata(&self, path: &Path) -> Result<(), BuildError> {
        write_if_changed(path, &self.strata_bytes()?)
    }

    /// Compiles if needed and writes `DIR/NAME.h` and the backend's artifact: `DIR/NAME.c`
    /// ([`Backend::C`]) or `DIR/NAME.o` ([`Backend::Mlir`]). Files whose bytes are unchanged
    /// are not rewritten.
    pub fn emit(&self, dir: &Path) -> Result<BuildOutput, BuildError> {
        let model = self.shown();
        let c_only = |what| BuildError::BackendOption {
            model: model.clone(),
            what,
        };
        match self.backend {
            Backend::C if self.target_triple.is_some() || self.target_cpu.is_some() => {
                return Err(c_only("target_triple and target_cpu are for Backend::Mlir (the C backend takes Build::target)"));
            }
            Backend::Mlir if self.target != Target::Generic => {
                return Err(c_only("Build::target is for the C backend (Backend::Mlir takes target_triple and target_cpu)"));
            }
            Backend::Mlir if self.target_cpu.is_some() && self.target_triple.is_none() => {
                return Err(c_only("target_cpu needs target_triple"));
            }
            #[cfg(not(feature = "mlir"))]
            Backend::Mlir => return Err(BuildError::MlirDisabled { model }),
            _ => {}
        }
        let bytes = self.strata_bytes()?;
        let loaded = read_container(&bytes).map_err(|source| BuildError::Container {
            model: model.clone(),
            source: Box::new(source),
        })?;
        let info = ContainerInfo {
            bits: loaded.bits,
            available_planes: loaded.available_planes,
            metadata: loaded.metadata,
            file_bytes: bytes.len() as u64,
            layer_planes: loaded.layer_planes,
            adaptive: loaded.adaptive,
        };
        let name = match &self.name {
            Some(n) => n.clone(),
            None => c_name(&self.model),
        };
        let mut options =
            emit_options(&loaded.graph, &info, self.planes, self.target, name, &model)?;
        options.code_bits = self.code_bits;
        let (artifact, header, stats) = match self.backend {
            Backend::C => {
                let out = emit(&loaded.graph, &options).map_err(|source| BuildError::Emit {
                    model: model.clone(),
                    source: Box::new(source),
                })?;
                (out.source.into_bytes(), out.header, out.stats)
            }
            Backend::Mlir => self.compile_object(&loaded.graph, &options)?,
        };
        let extension = match self.backend {
            Backend::C => "c",
            Backend::Mlir => "o",
        };
        let header_path = dir.join(format!("{}.h", options.name));
        let artifact_path = dir.join(format!("{}.{extension}", options.name));
        std::fs::create_dir_all(dir).map_err(|source| BuildError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        write_if_changed(&header_path, header.as_bytes())?;
        write_if_changed(&artifact_path, &artifact)?;
        Ok(BuildOutput {
            backend: self.backend,
            header: header_path,
            artifact: artifact_path,
            include_dir: dir.to_path_buf(),
            planes: options.planes,
            layer_planes: options.layer_planes,
            stats,
        })
    }

    /// [`Build::emit`] with the C backend: refuses a build set to [`Backend::Mlir`].
    pub fn emit_c(&self, dir: &Path) -> Result<BuildOutput, BuildError> {
        if self.backend != Backend::C {
            return Err(BuildError::BackendOption {
                model: self.shown(),
                what: "emit_c writes C; call Build::emit for Backend::Mlir",
            });
        }
        self.emit(dir)
    }

    /// The MLIR backend's object, header and sizes for the options `emit-c` would use.
    #[cfg(feature = "mlir")]
    fn compile_object(
        &self,
        graph: &Graph,
        options: &EmitOptions,
    ) -> Result<(Vec<u8>, String, EmitStats), BuildError> {
        use crate::backend::mlir;
        let mlir_options = mlir::MlirOptions {
            planes: options.planes,
            layer_planes: options.layer_planes.clone(),
            name: options.name.clone(),
            // For this machine its fastest kernels; `compile_object` keeps the portable
            // ones for a target triple.
            dot: mlir::Dot::host(),
            adaptive: options.adaptive.clone(),
        };
        let target = mlir::Target {
            triple: self.target_triple.clone(),
            cpu: self.target_cpu.clone(),
        };
        let out = mlir::compile_object(graph, &mlir_options, &target).map_err(|source| {
            BuildError::Mlir {
                model: self.shown(),
                source: Box::new(source),
            }
        })?;
        Ok((out.object, out.header, out.stats))
    }

    #[cfg(not(feature = "mlir"))]
    fn compile_object(
        &self,
        _graph: &Graph,
        _options: &EmitOptions,
    ) -> Result<(Vec<u8>, String, EmitStats), BuildError> {
        Err(BuildError::MlirDisabled {
            model: self.shown(),
        })
    }
}

/// The emit options for a loaded container: `planes` given → that uniform `K`; otherwise the
/// stored mixed-precision choice (`K` = its largest count) when there is one, else what the
/// runtime runs by default: each layer's largest plane count with a side table among the
/// planes present (a file compiled with `--planes 6` emits at 6, not at the 8 planes it
/// holds, which have no side table). Shared by `strata emit-c` and [`Build::emit_c`].
pub fn emit_options(
    graph: &Graph,
    info: &ContainerInfo,
    planes: Option<u8>,
    target: Target,
    name: String,
    model: &str,
) -> Result<EmitOptions, BuildError> {
    if let Some(k) = planes {
        if k > info.available_planes {
            return Err(BuildError::Planes {
                model: model.to_string(),
                planes: k,
                available: info.available_planes,
            });
        }
        return Ok(EmitOptions {
            planes: k,
            name,
            target,
            layer_planes: None,
            adaptive: info.adaptive.clone(),
            code_bits: Default::default(),
        });
    }
    if !info.layer_planes.is_empty() {
        let chosen = info
            .default_layer_planes(graph)
            .map_err(|source| BuildError::Container {
                model: model.to_string(),
                source: Box::new(source),
            })?;
        // Layers without a stored choice run at their default count, as in the runtime.
        let per_layer: Vec<u8> = runtime_default_planes(graph, info, model)?
            .into_iter()
            .map(|(n, k)| chosen.get(&n).copied().unwrap_or(k))
            .collect();
        let k = per_layer
            .iter()
            .copied()
            .max()
            .unwrap_or(info.available_planes);
        return Ok(EmitOptions {
            planes: k,
            name,
            target,
            layer_planes: Some(per_layer),
            adaptive: info.adaptive.clone(),
            code_bits: Default::default(),
        });
    }
    let per_layer: Vec<u8> = runtime_default_planes(graph, info, model)?
        .into_iter()
        .map(|(_, k)| k)
        .collect();
    // A model without bit-plane layers (everything stayed float): the count selects nothing,
    // and the C is the float model's.
    let k = per_layer
        .iter()
        .copied()
        .max()
        .unwrap_or(info.available_planes.max(1));
    let uniform = per_layer.iter().all(|&l| l == k);
    Ok(EmitOptions {
        planes: k,
        name,
        target,
        layer_planes: (!uniform).then_some(per_layer),
        adaptive: info.adaptive.clone(),
        code_bits: Default::default(),
    })
}

/// Every bit-plane layer (in the emitter's layer order) with the plane count the runtime
/// runs it at when none is asked for ([`strata_ir::ops::PlaneSpec::default_planes`]).
fn runtime_default_planes(
    graph: &Graph,
    info: &ContainerInfo,
    model: &str,
) -> Result<Vec<(String, u8)>, BuildError> {
    let graph_err = |e: strata_ir::GraphError| BuildError::Emit {
        model: model.to_string(),
        source: Box::new(EmitError::from(LowerError::from(e))),
    };
    let mut out = Vec::new();
    for id in graph.topo_order().map_err(graph_err)? {
        let node = graph.node(id).map_err(graph_err)?;
        if let strata_ir::NodeKind::Op(strata_ir::Op::Bitplane(b)) = &node.kind {
            let k = b
                .spec
                .default_planes(info.available_planes as usize)
                .ok_or_else(|| BuildError::NoRunnablePlanes {
                    model: model.to_string(),
                    layer: node.name.clone(),
                    available: info.available_planes,
                    plane_counts: b.spec.plane_counts.clone(),
                })?;
            out.push((node.name.clone(), k));
        }
    }
    Ok(out)
}

/// A C identifier from a file stem (`mnist-cnn.v2.strata` → `mnist_cnn`).
fn c_name(path: &Path) -> String {
    let stem = path
        .file_name()
        .and_then(|s| s.to_str())
        .and_then(|s| s.split('.').next())
        .unwrap_or("model");
    let mut name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        name.insert(0, '_');
    }
    name
}

/// The first `n` rows of a `[N, …]` tensor (all of them when `n ≥ N`).
pub fn first_rows(t: strata_ir::Tensor, n: usize) -> std::io::Result<strata_ir::Tensor> {
    let shape = t.shape().to_vec();
    let Some(&rows) = shape.first() else {
        return Ok(t);
    };
    if n >= rows {
        return Ok(t);
    }
    let per: usize = shape[1..].iter().product();
    let Some(values) = t.as_f32() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("calibration inputs must be float32, got {}", t.dtype()),
        ));
    };
    let mut new_shape = shape;
    new_shape[0] = n;
    strata_ir::Tensor::from_f32(new_shape, values[..n * per].to_vec())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
}

/// Writes `bytes` atomically unless the file already holds exactly them.
fn write_if_changed(path: &Path, bytes: &[u8]) -> Result<(), BuildError> {
    // Compare only with a regular file of the same length: reading a FIFO would block.
    let unchanged = std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.is_file() && m.len() == bytes.len() as u64)
        && std::fs::read(path).is_ok_and(|old| old == bytes);
    if unchanged {
        return Ok(());
    }
    crate::npy::write_atomic(path, bytes).map_err(|source| BuildError::Io {
        path: path.display().to_string(),
        source,
    })
}
