//! The C backend: a quantized graph in, a self-contained C99 library out (batch 1), for one
//! of several [`Target`]s that share the header and API.
//!
//! The emitted code uses no `malloc` and nothing from libc beyond `<stdint.h>`, `<stddef.h>`,
//! `<string.h>` and `<math.h>`: activations live in one static arena laid out by the
//! liveness planner ([`planner`]), weights are `const` arrays holding only bit-planes
//! `0..K` plus the side tables of every plane count up to `K`, and the integer path is
//! computed exactly as `strata_runtime` computes it, so outputs agree bit for bit.

mod emit;
pub mod planner;
pub mod target;

use std::path::{Path, PathBuf};

pub use emit::emit;
pub use target::{Target, UnknownTarget};

/// What to generate. A plain struct: build it with `..Default::default()` so new fields do
/// not break callers.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl Default for EmitOptions {
    /// 8 planes, prefix `model`, the portable `generic` target, uniform precision.
    fn default() -> Self {
        EmitOptions {
            planes: 8,
            name: "model".into(),
            target: Target::Generic,
            layer_planes: None,
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

/// The bit-plane layers in the order `PREFIX_run_planes` indexes them (the graph's
/// topological order), so a per-layer choice by node name can be turned into
/// [`EmitOptions::layer_planes`].
pub fn layer_names(graph: &strata_ir::Graph) -> Result<Vec<String>, EmitError> {
    let mut names = Vec::new();
    for id in graph.topo_order()? {
        let node = graph.node(id)?;
        if let strata_ir::NodeKind::Op(strata_ir::Op::Bitplane(_)) = &node.kind {
            names.push(node.name.clone());
        }
    }
    Ok(names)
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

/// Why a graph cannot be emitted as C; each names the node (and op) at fault.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    #[error("node `{node}`: op `{op}` is not supported by the C backend")]
    UnsupportedOp { node: String, op: &'static str },
    #[error("node `{node}` ({op}): not supported by the C backend: {reason}")]
    Unsupported {
        node: String,
        op: &'static str,
        reason: String,
    },
    #[error("`{name}` is not a valid C identifier prefix")]
    BadName { name: String },
    #[error("--planes {planes} is outside 1..=8")]
    BadPlanes { planes: u8 },
    #[error("layer `{node}` cannot run at {planes} planes: {reason}")]
    Planes {
        node: String,
        planes: u8,
        reason: String,
    },
    #[error("{got} per-layer plane counts given for a graph with {expected} bit-plane layers")]
    LayerPlanes { expected: usize, got: usize },
    #[error("the C backend needs exactly one f32 graph input and one f32 output, {0}")]
    Interface(String),
    #[error("graph: {0}")]
    Graph(#[from] strata_ir::GraphError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
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
