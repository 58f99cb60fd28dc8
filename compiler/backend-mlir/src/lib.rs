//! The MLIR backend: a quantized graph in, native code for this CPU out — JIT-compiled in
//! memory ([`Jit`]) or written as an object file with the C backend's header and API
//! ([`write_object`]).
//!
//! It prints the backend-neutral lowering ([`strata_lower::Lowered`]) as MLIR text in the
//! `func`, `linalg`, `arith`, `tensor` and `math` dialects ([`module`], [`layers`], [`ops`]),
//! parses and verifies it with melior, and lowers it to the LLVM dialect with one pass
//! pipeline ([`pipeline::PIPELINE`]). Every decision the lowering takes (plane counts,
//! aliasing, Relu fusion) is read from it, and the integer path is computed as the C
//! backend computes it, so outputs agree bit for bit with `strata run --planes K`.
//!
//! Text, then `Module::parse`, is what most MLIR frontends do; the text is typed where it
//! matters (element types, exact float bits, affine maps) by [`text`] and [`body`].

mod adaptive;
mod body;
mod elementwise;
mod gemm;
mod gru;
mod jit;
mod layers;
mod lstm;
mod matmul;
mod module;
mod movement;
mod object;
mod ops;
pub mod pipeline;
mod resize;
mod text;

use std::path::{Path, PathBuf};

pub use jit::Jit;
pub use object::Target;
pub use strata_lower::{LowerError, Lowered};

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct MlirOptions {
    /// `K`: planes stored in the weights, and the plane count `PREFIX_run` uses.
    pub planes: u8,
    /// Mixed precision: the plane count of each bit-plane layer, each `<= planes` (see
    /// `strata_backend_c::EmitOptions::layer_planes`).
    pub layer_planes: Option<Vec<u8>>,
    /// `PREFIX` of the exported functions, the header's macros and the file names.
    pub name: String,
    /// The instruction the bit-plane layers' integer products are built around.
    pub dot: Dot,
    /// Adaptive precision: the policy `PREFIX_run_adaptive` runs (the C backend's stages and
    /// header, `strata_backend_c::adaptive_stages`). `None`: no adaptive entry point.
    pub adaptive: Option<strata_ir::adaptive::AdaptivePolicy>,
}

/// How the bit-plane layers multiply codes. Both are exact (every product and sum fits
/// `i32`), so the outputs are the same bits; they differ in speed and in where they run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Dot {
    /// Pairs of `i16` products summed in `i32`, in plain vector IR that LLVM selects as
    /// `vpmaddwd` (AVX2), `vpdpwssd` (AVX-512 VNNI) or widening multiply-adds (AArch64):
    /// runs on every CPU.
    #[default]
    Pairs,
    /// Quads of `u8 × s8` products summed in `i32` by AVX-512 VNNI's `vpdpbusd`, 64 per
    /// instruction (twice `vpdpwssd`): only for x86-64 CPUs with `avx512vnni` and
    /// `avx512bw` (LLVM cannot select it for others). Layers whose activation codes span
    /// more than 8 bits keep [`Dot::Pairs`].
    Vnni,
}

impl Dot {
    /// `self` if this machine runs it: LLVM aborts when asked to select `vpdpbusd` for a CPU
    /// without AVX-512 VNNI, so [`Dot::Vnni`] elsewhere is a typed error instead.
    pub fn for_this_machine(self) -> Result<Dot, MlirError> {
        if self == Dot::Vnni && Dot::host() != Dot::Vnni {
            return Err(MlirError::Target(
                "Dot::Vnni needs a CPU with AVX-512 VNNI (avx512vnni, avx512bw); this one \
                 has none: use Dot::Pairs or Dot::host()"
                    .into(),
            ));
        }
        Ok(self)
    }

    /// The faster one this machine runs: [`Dot::Vnni`] where the CPU has AVX-512 VNNI.
    pub fn host() -> Dot {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512bw")
        {
            return Dot::Vnni;
        }
        Dot::Pairs
    }
}

impl Default for MlirOptions {
    fn default() -> Self {
        MlirOptions {
            planes: 8,
            layer_planes: None,
            name: "model".into(),
            dot: Dot::Pairs,
            adaptive: None,
        }
    }
}

/// How far to take the module before printing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The verified `func`/`linalg`/`arith`/`tensor` module.
    High,
    /// After the pass pipeline: the LLVM dialect.
    Llvm,
}

/// Why a graph cannot go through the MLIR backend; each names the node, kernel or path.
#[derive(Debug, thiserror::Error)]
pub enum MlirError {
    #[error("`{name}` is not a valid C identifier prefix")]
    BadName { name: String },
    #[error(transparent)]
    Lower(#[from] LowerError),
    #[error("layer `{node}`: weights are not in the planes layout")]
    Layout { node: String },
    #[error("layer `{node}`: {reason}")]
    Planes { node: String, reason: String },
    #[error("generated MLIR does not parse: {0}")]
    Parse(String),
    #[error("generated MLIR does not verify: {0}")]
    Verify(String),
    #[error("MLIR pass pipeline failed: {0}")]
    Pass(String),
    #[error("the compiled module has no symbol `{0}`")]
    Symbol(String),
    #[error("{got} inputs given for a graph with {expected}")]
    Inputs { expected: usize, got: usize },
    #[error("input {input} of {got} floats is not a whole number of samples of {sample}")]
    InputSize {
        input: usize,
        got: usize,
        sample: usize,
    },
    #[error("the inputs hold different numbers of samples: {batches:?}")]
    InputBatches { batches: Vec<usize> },
    #[error("{got} per-layer plane counts given for a graph with {expected} bit-plane layers")]
    LayerPlanes { expected: usize, got: usize },
    #[error("plane counts {counts:?}: a layer has no side table for its count")]
    PlaneCounts { counts: Vec<u8> },
    #[error("target: {0}")]
    Target(String),
    #[error("{tool}: {message}")]
    Tool { tool: String, message: String },
    #[error("internal error in the MLIR backend: {0}")]
    Internal(String),
    /// The adaptive policy cannot run on this lowering (names the stage or layer).
    #[error("adaptive precision: {0}")]
    Adaptive(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Whether `name` can prefix C identifiers and name files.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The C backend's stages of `options.adaptive` for `lowered` (`None` without a policy).
pub(crate) fn adaptive_stages(
    graph: &strata_ir::Graph,
    lowered: &Lowered,
    options: &MlirOptions,
) -> Result<Option<strata_backend_c::AdaptiveStages>, MlirError> {
    options
        .adaptive
        .as_ref()
        .map(|policy| {
            strata_backend_c::adaptive_stages(graph, lowered, policy)
                .map_err(|e| MlirError::Adaptive(e.to_string()))
        })
        .transpose()
}

/// Lowers `graph` for the MLIR kernels: the packed-plane layout (the codes are rebuilt from
/// the planes with `strata_ir::quant::prefix_codes`), `K` and the per-layer counts.
pub fn lower(graph: &strata_ir::Graph, options: &MlirOptions) -> Result<Lowered, MlirError> {
    if !valid_name(&options.name) {
        return Err(MlirError::BadName {
            name: options.name.clone(),
        });
    }
    Ok(strata_lower::lower(
        graph,
        &strata_lower::LowerOptions {
            planes: options.planes,
            layer_planes: options.layer_planes.clone(),
            layout: strata_lower::WeightLayout::Planes,
            code_bits: strata_lower::CodeBits::Fast,
        },
    )?)
}

/// The module of `graph` at `stage`, verified (and lowered for [`Stage::Llvm`]), as MLIR
/// prints it.
pub fn emit(
    graph: &strata_ir::Graph,
    options: &MlirOptions,
    stage: Stage,
) -> Result<String, MlirError> {
    let lowered = lower(graph, options)?;
    let stages = adaptive_stages(graph, &lowered, options)?;
    let text = module::print(&lowered, &options.name, options.dot, stages.as_ref())?;
    let context = pipeline::context();
    let mut module = pipeline::parse(&context, &text)?;
    if stage == Stage::Llvm {
        pipeline::lower(&context, &mut module)?;
    }
    Ok(module.as_operation().to_string())
}

/// An object file compiled from a graph, with the header that declares its API.
#[derive(Debug, Clone)]
pub struct CompiledObject {
    /// The relocatable object (`PREFIX.o`): `PREFIX_run`, `PREFIX_run_planes`.
    pub object: Vec<u8>,
    /// `PREFIX.h`: the C backend's header for the same lowering.
    pub header: String,
    /// The numbers behind the header's size macros.
    pub stats: strata_backend_c::EmitStats,
}

/// Compiles `graph` for `target` (default: this machine) in memory: the object and its
/// header. [`write_object`] writes them; a build script compares them with what it wrote
/// before.
pub fn compile_object(
    graph: &strata_ir::Graph,
    options: &MlirOptions,
    target: &Target,
) -> Result<CompiledObject, MlirError> {
    let lowered = lower(graph, options)?;
    // `Dot::Vnni` is for this machine only: another target gets the portable kernels.
    let dot = if target.triple.is_some() {
        Dot::Pairs
    } else {
        options.dot.for_this_machine()?
    };
    let stages = adaptive_stages(graph, &lowered, options)?;
    let text = module::print(&lowered, &options.name, dot, stages.as_ref())?;
    // The engine writes to a path: a file in a private temporary directory, read back (the
    // directory goes when `scratch` drops). `object::write` checks the file appeared.
    let scratch = tempfile::Builder::new()
        .prefix("strata-mlir-")
        .tempdir()
        .map_err(|source| MlirError::Io {
            path: std::env::temp_dir().display().to_string(),
            source,
        })?;
    let path = scratch.path().join(format!("{}.o", options.name));
    object::write(&text, &path, target)?;
    let object = std::fs::read(&path).map_err(|source| MlirError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let generator = format!("`strata build --backend mlir` ({} planes)", lowered.planes);
    let header = match &stages {
        Some(s) => strata_backend_c::header_with_adaptive(&lowered, &options.name, &generator, s),
        None => strata_backend_c::header(&lowered, &options.name, &generator),
    };
    Ok(CompiledObject {
        object,
        header,
        stats: strata_backend_c::EmitStats::of(&lowered),
    })
}

/// Compiles `graph` for `target` (default: this machine) and writes `DIR/PREFIX.o` (the C
/// API: `PREFIX_run`, `PREFIX_run_planes`) and `DIR/PREFIX.h` (the C backend's header for
/// the same lowering); returns the paths written.
pub fn write_object(
    graph: &strata_ir::Graph,
    options: &MlirOptions,
    target: &Target,
    dir: &Path,
) -> Result<Vec<PathBuf>, MlirError> {
    let compiled = compile_object(graph, options, target)?;
    let io = |path: &Path| {
        let p = path.display().to_string();
        move |source| MlirError::Io { path: p, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let o = dir.join(format!("{}.o", options.name));
    let h = dir.join(format!("{}.h", options.name));
    let write = |path: &Path, data: &[u8]| {
        strata_ir::files::write_atomic(path, data, strata_ir::files::Existing::Refuse)
    };
    write(&o, &compiled.object).map_err(io(&o))?;
    write(&h, compiled.header.as_bytes()).map_err(io(&h))?;
    Ok(vec![o, h])
}
