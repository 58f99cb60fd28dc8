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
}

impl Default for EmitOptions {
    /// 8 planes, prefix `model`, the portable `generic` target.
    fn default() -> Self {
        EmitOptions {
            planes: 8,
            name: "model".into(),
            target: Target::Generic,
        }
    }
}

/// The sizes the header's macros state, for build scripts and manifests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EmitStats {
    /// `PREFIX_WEIGHT_BYTES`: constant data (weights in the target's layout, side tables).
    pub weight_bytes: usize,
    /// `PREFIX_ARENA_BYTES`: the static activation arena.
    pub arena_bytes: usize,
    /// `PREFIX_SCRATCH_BYTES`: static integer scratch of the quantized layers.
    pub scratch_bytes: usize,
    /// `PREFIX_MACS`: multiply-accumulates of the bit-plane layers per inference.
    pub macs: u64,
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
    std::fs::write(&h, out.header).map_err(io(&h))?;
    std::fs::write(&c, out.source).map_err(io(&c))?;
    Ok(vec![h, c])
}
