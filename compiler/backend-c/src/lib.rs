//! The C backend: a quantized graph in, a self-contained C99 library out (batch 1), for one
//! of several [`Target`]s that share the header and API.
//!
//! The emitted code uses no `malloc` and nothing from libc beyond `<stdint.h>`, `<stddef.h>`,
//! `<string.h>` and `<math.h>`: activations live in one static arena laid out by the
//! liveness planner, weights are `const` arrays holding only bit-planes `0..K` plus the side
//! tables of every plane count up to `K`, and the integer path is computed exactly as
//! `strata_runtime` computes it, so outputs agree bit for bit.
//!
//! Every decision (plane counts, Relu fusion, aliasing, the arena, the weight layout) is
//! taken by the backend-neutral lowering ([`strata_lower`]) for the target's
//! [`WeightLayout`]; this crate only prints the [`Lowered`] program: the header
//! ([`header`]), the constant data ([`data`]), the typed prelude sections the steps need
//! ([`prelude`]) and the source around them ([`source`]).

mod adaptive;
mod data;
mod header;
mod prelude;
mod source;
pub mod target;
mod text;

use std::path::{Path, PathBuf};

pub use strata_lower::{layer_names, CodeBits, LowerError, Lowered, WeightLayout};
pub use target::{Target, UnknownTarget};

/// The header (`PREFIX.h`) of a lowering: the C API and size macros, with `generator` named
/// in its first line. Public so a backend that compiles the same lowering to an object file
/// (MLIR) declares exactly the API the C backend's sources define.
pub fn header(lowered: &Lowered, name: &str, generator: &str) -> String {
    header::print_for(lowered, name, generator)
}

pub use adaptive::AdaptiveStages;

/// The adaptive cascade `policy` as the layers of `lowered` run it (counts lowered to what
/// each layer keeps), for a backend that implements `PREFIX_run_adaptive` itself.
pub fn adaptive_stages(
    graph: &strata_ir::Graph,
    lowered: &Lowered,
    policy: &strata_ir::adaptive::AdaptivePolicy,
) -> Result<AdaptiveStages, EmitError> {
    adaptive::stages(graph, lowered, policy)
}

/// [`header`] declaring `PREFIX_run_adaptive` and its stats for `stages` too.
pub fn header_with_adaptive(
    lowered: &Lowered,
    name: &str,
    generator: &str,
    stages: &AdaptiveStages,
) -> String {
    header::print_with(
        lowered,
        name,
        generator,
        &adaptive::declarations(name, stages),
    )
}

/// What to generate. A plain struct: build it with `..Default::default()` so new fields do
/// not break callers.
#[derive(Debug, Clone, PartialEq)]
pub struct EmitOptions {
    /// `K`: planes stored in the weights, and the plane count `PREFIX_run` uses.
    pub planes: u8,
    /// `PREFIX` of every public symbol, macro and file name (a C identifier).
    pub name: String,
    /// The machine the code is written for.
    pub target: Target,
    /// Mixed precision: the plane count of each bit-plane layer (in `planes_per_layer`
    /// order, see [`layer_names`]), each `<= planes`. Layer `i` then keeps only its first
    /// `k_i` planes and `PREFIX_run` (and `PREFIX_run_planes(.., NULL)`) runs at these
    /// counts. `None`: every layer keeps and runs at `planes`.
    pub layer_planes: Option<Vec<u8>>,
    /// Adaptive precision: the policy `PREFIX_run_adaptive` runs (checked against the
    /// counts each layer keeps). `None`: no adaptive entry point.
    pub adaptive: Option<strata_ir::adaptive::AdaptivePolicy>,
    /// Bits a code takes on the code-layout targets (`armv7m` stores planes and ignores it):
    /// [`CodeBits::Fast`] (2, 4 or 8), [`CodeBits::Exact`] (`K`) or [`CodeBits::Stream`]
    /// (fully connected layers at the widths that stream fastest on the target).
    pub code_bits: CodeBits,
}

impl Default for EmitOptions {
    /// 8 planes, prefix `model`, the portable `generic` target, uniform precision.
    fn default() -> Self {
        EmitOptions {
            planes: 8,
            name: "model".into(),
            target: Target::Generic,
            layer_planes: None,
            adaptive: None,
            code_bits: Default::default(),
        }
    }
}

/// Sizes of the generated code, as the header macros state them; for fitting a model to a
/// device (`strata manifest`) and for the mixed-precision byte budget.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EmitStats {
    /// `PREFIX_WEIGHT_BYTES`: constant data (weights in the target's layout, side tables).
    pub weight_bytes: u64,
    /// `PREFIX_ARENA_BYTES`: the static activation arena.
    pub arena_bytes: u64,
    /// `PREFIX_SCRATCH_BYTES`: static integer scratch of the quantized layers; RAM = arena +
    /// scratch.
    pub scratch_bytes: u64,
    /// `PREFIX_MACS`: multiply-accumulates of the bit-plane layers per inference.
    pub macs: u64,
    /// Each bit-plane layer's share of `weight_bytes`, in layer order.
    pub layers: Vec<LayerStats>,
}

/// One bit-plane layer's contribution to the weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerStats {
    /// The layer's node name.
    pub node: String,
    /// Planes it keeps (and runs at by default).
    pub planes: u8,
    /// Its weights (in the target's layout) and side tables, in bytes.
    pub weight_bytes: u64,
}

/// The generated sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmittedC {
    /// `PREFIX.h`: the API and the size macros.
    pub header: String,
    /// `PREFIX.c`: weights, arena and kernels.
    pub source: String,
    /// The numbers behind the header's size macros.
    pub stats: EmitStats,
}

/// Why a graph cannot be emitted as C; each names the node (and op) or path at fault.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error("`{name}` is not a valid C identifier prefix")]
    BadName { name: String },
    /// The graph cannot be lowered (an unsupported op, a plane count without tables, …).
    #[error(transparent)]
    Lower(#[from] LowerError),
    /// The adaptive policy cannot run on this build (`PREFIX_run_adaptive`).
    #[error("adaptive policy: {reason}")]
    Adaptive { reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl EmitStats {
    /// The sizes the header states, read from the lowering.
    pub fn of(lowered: &Lowered) -> EmitStats {
        EmitStats {
            weight_bytes: lowered.weight_bytes(),
            arena_bytes: lowered.arena_bytes(),
            scratch_bytes: lowered.scratch_bytes(),
            macs: lowered.macs,
            layers: lowered
                .layers
                .iter()
                .map(|l| LayerStats {
                    node: l.node.clone(),
                    planes: l.k,
                    weight_bytes: l.weight_bytes(),
                })
                .collect(),
        }
    }
}

/// Lowers `graph` for `options` (the target's weight layout, `K` and the per-layer counts)
/// without printing: what [`emit`] prints, and where [`stats`] reads its sizes.
pub fn lower(graph: &strata_ir::Graph, options: &EmitOptions) -> Result<Lowered, LowerError> {
    strata_lower::lower(
        graph,
        &strata_lower::LowerOptions {
            planes: options.planes,
            layer_planes: options.layer_planes.clone(),
            layout: options.target.layout(),
            code_bits: options.target.code_bits(options.code_bits),
        },
    )
}

/// The sizes [`emit`] would state in the header, from the lowering alone.
pub fn stats(graph: &strata_ir::Graph, options: &EmitOptions) -> Result<EmitStats, LowerError> {
    Ok(EmitStats::of(&lower(graph, options)?))
}

/// Whether `name` can prefix C identifiers and name files.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Generates the header and source for `graph` at `options.planes` planes (batch 1).
pub fn emit(graph: &strata_ir::Graph, options: &EmitOptions) -> Result<EmittedC, EmitError> {
    if !valid_name(&options.name) {
        return Err(EmitError::BadName {
            name: options.name.clone(),
        });
    }
    let lowered = lower(graph, options)?;
    let stages = options
        .adaptive
        .as_ref()
        .map(|policy| adaptive::stages(graph, &lowered, policy))
        .transpose()?;
    let (declarations, definitions) = match &stages {
        Some(s) => (
            adaptive::declarations(&options.name, s),
            adaptive::definitions(&lowered, &options.name, s),
        ),
        None => (String::new(), String::new()),
    };
    let mut source = source::print(&lowered, &options.name, options.target);
    source.push_str(&definitions);
    Ok(EmittedC {
        header: header::print(&lowered, &options.name, options.target, &declarations),
        source,
        stats: EmitStats::of(&lowered),
    })
}

/// Emits `graph` and writes `DIR/PREFIX.h` and `DIR/PREFIX.c`; returns the paths written.
pub fn write_c(
    graph: &strata_ir::Graph,
    options: &EmitOptions,
    dir: &Path,
) -> Result<Vec<PathBuf>, EmitError> {
    let out = emit(graph, options)?;
    let io = |path: &Path| {
        let p = path.display().to_string();
        move |source| EmitError::Io { path: p, source }
    };
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let h = dir.join(format!("{}.h", options.name));
    let c = dir.join(format!("{}.c", options.name));
    // Atomically, and never through a symlink or into a device planted at the path.
    let write = |path: &Path, text: &str| {
        strata_ir::files::write_atomic(path, text.as_bytes(), strata_ir::files::Existing::Refuse)
    };
    write(&h, &out.header).map_err(io(&h))?;
    write(&c, &out.source).map_err(io(&c))?;
    Ok(vec![h, c])
}
