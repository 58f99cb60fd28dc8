//! The `.strata` container: one file in which every byte prefix ending at a block boundary is
//! a valid model with fewer planes.
//!
//! # Layout
//!
//! ```text
//! offset 0   magic        8 bytes  b"\x89STRATA\n"
//!        8   version      u32 LE   (= 1)
//!       12   header_len   u64 LE
//!       20   header_crc   u32 LE   CRC-32 (IEEE) of the header bytes
//!       24   header       prost `Header`: format version, bits B, the graph text with every
//!                         constant `extern`, the tensor directory, the block table, metadata
//!            block 0      plane 0 (sign plane) of every plane tensor
//!            block 1      plane 1 of every plane tensor
//!            …            … up to block B-1
//! ```
//!
//! Ordinary constants (side tables, biases, other weights) are stored inline in the header;
//! only the plane tensors (`u8 [B, R, row_bytes]`, the constants feeding input 1 of the
//! bit-plane ops) are spread over the blocks, plane-major, so cutting the file after block
//! `k-1` keeps the first `k` planes of every layer and nothing else. The loader counts the
//! complete blocks and rebuilds each plane tensor as `[k, R, row_bytes]`.
//!
//! Every block has a CRC-32 in the header, and the header has its own in the fixed prefix, so
//! corruption anywhere is reported as a typed error (with byte offsets), never a panic or a
//! silently wrong model. Sizes read from the file are checked against the file length before
//! anything is allocated.

/// The header messages; public so tools can list a container's directory and block table
/// without loading the model.
pub mod format;
mod reader;
mod writer;

use std::collections::BTreeMap;

pub use reader::{read_container, strip_container};
pub use writer::{write_container, write_container_with_planes};

use crate::adaptive::AdaptivePolicy;
use crate::text::ParseError;
use crate::{Graph, TensorType, VerifyError};

/// First bytes of every container. The high byte and the newline catch transfers that strip
/// the 8th bit or translate line endings, as in PNG.
pub const MAGIC: [u8; 8] = *b"\x89STRATA\n";

/// The container format version this crate reads and writes.
pub const VERSION: u32 = 1;

/// Bytes before the header: magic, version, header length, header CRC.
pub const PREFIX_LEN: usize = 8 + 4 + 8 + 4;

/// What to store besides the graph.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerOptions {
    /// Free-form key/value pairs kept in the header (evaluation results, provenance).
    pub metadata: BTreeMap<String, String>,
    /// Mixed precision: default plane count per bit-plane layer (node name → k). Stored as
    /// data, not metadata text, so every consumer (runtime, C backend) reads the same choice.
    /// Each entry must name a bit-plane node and a plane count with a side table.
    pub layer_planes: BTreeMap<String, u8>,
    /// Adaptive precision: the fitted cascade, checked against the graph like
    /// `layer_planes`.
    pub adaptive: Option<AdaptivePolicy>,
}

/// A model read from a container (possibly a prefix of one).
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The graph, verified, with plane tensors holding only the planes present.
    pub graph: Graph,
    /// `B`: the precision the weight codes were quantized to (0 if the graph has no planes).
    pub bits: u8,
    /// How many planes (complete blocks) the bytes hold: plane counts `1..=available_planes`
    /// can run, subject to each layer's side tables.
    pub available_planes: u8,
    /// The metadata given to the writer.
    pub metadata: BTreeMap<String, String>,
    /// The per-layer default plane counts given to the writer (empty: uniform). An entry may
    /// exceed `available_planes` when the file was cut; see [`effective_layer_planes`].
    pub layer_planes: BTreeMap<String, u8>,
    /// The adaptive policy given to the writer, as stored (its counts may exceed
    /// `available_planes` when the file was cut; run [`AdaptivePolicy::effective`]).
    pub adaptive: Option<AdaptivePolicy>,
}

/// The per-layer plane counts a model with `available` planes runs at by default: each
/// stored choice, lowered to the largest plane count of that layer that is present when the
/// file was cut below it (fewer planes only ever shrink the model). Errors name the layer.
pub fn effective_layer_planes(
    graph: &Graph,
    layer_planes: &BTreeMap<String, u8>,
    available: u8,
) -> Result<BTreeMap<String, u8>, ContainerError> {
    let mut out = BTreeMap::new();
    for (node, &k) in layer_planes {
        out.insert(node.clone(), lowered_planes(graph, node, k, available)?);
    }
    Ok(out)
}

/// Layer `node`'s count `k` where it can keep only `cap` planes: `k` itself if it fits,
/// else the largest count with a side table within `cap` (fewer planes only ever shrink the
/// model). The one rule behind [`effective_layer_planes`] and
/// [`AdaptivePolicy::effective_within`].
pub(crate) fn lowered_planes(
    graph: &Graph,
    node: &str,
    k: u8,
    cap: u8,
) -> Result<u8, ContainerError> {
    let spec = bitplane_spec(graph, node, k)?;
    if k <= cap {
        return Ok(k);
    }
    spec.default_planes(cap as usize)
        .ok_or_else(|| ContainerError::BadLayerPlanes {
            node: node.to_string(),
            planes: k,
            reason: format!(
                "only {cap} planes are present and no smaller plane count has a side table"
            ),
        })
}

/// The bit-plane spec of layer `node`, or why `node = k` is not a valid per-layer choice.
pub(crate) fn bitplane_spec<'g>(
    graph: &'g Graph,
    node: &str,
    k: u8,
) -> Result<&'g crate::ops::bitplane::PlaneSpec, ContainerError> {
    let bad = |reason: String| ContainerError::BadLayerPlanes {
        node: node.to_string(),
        planes: k,
        reason,
    };
    let spec = graph
        .node_ids()
        .filter_map(|id| graph.node(id).ok())
        .find(|n| n.name == node)
        .ok_or_else(|| bad("no node has this name".into()))
        .and_then(|n| match &n.kind {
            crate::NodeKind::Op(crate::Op::Bitplane(b)) => Ok(&b.spec),
            _ => Err(bad("the node is not a bit-plane layer".into())),
        })?;
    if spec.side_index(k).is_none() {
        return Err(bad(format!(
            "no side table (plane counts {:?})",
            spec.plane_counts
        )));
    }
    Ok(spec)
}

/// The stored form of an adaptive policy.
fn adaptive_to_message(policy: &AdaptivePolicy) -> format::AdaptivePolicyMsg {
    format::AdaptivePolicyMsg {
        stages: policy
            .stages
            .iter()
            .map(|s| format::AdaptiveStageMsg {
                layer_planes: s
                    .layer_planes
                    .iter()
                    .map(|(n, &k)| (n.clone(), u32::from(k)))
                    .collect(),
                min_margin: s.min_margin,
            })
            .collect(),
        target: policy.target.clone(),
    }
}

/// An adaptive policy read back; counts that are not `u8` are refused by layer (the rest is
/// checked against the graph by [`AdaptivePolicy::check`]).
fn adaptive_from_message(msg: format::AdaptivePolicyMsg) -> Result<AdaptivePolicy, ContainerError> {
    if msg.stages.len() > crate::adaptive::MAX_STAGES {
        return Err(ContainerError::BadAdaptive {
            reason: format!(
                "{} stages (at most {} allowed)",
                msg.stages.len(),
                crate::adaptive::MAX_STAGES
            ),
        });
    }
    let mut stages = Vec::with_capacity(msg.stages.len());
    for (i, s) in msg.stages.into_iter().enumerate() {
        let mut layer_planes = BTreeMap::new();
        for (node, k) in s.layer_planes {
            let k = u8::try_from(k).map_err(|_| ContainerError::BadAdaptive {
                reason: format!("stage {i}: layer `{node}`: {k} is not a plane count"),
            })?;
            layer_planes.insert(node, k);
        }
        stages.push(crate::adaptive::AdaptiveStage {
            layer_planes,
            min_margin: s.min_margin,
        });
    }
    Ok(AdaptivePolicy {
        stages,
        target: msg.target,
    })
}

/// Checks that every per-layer choice names a bit-plane layer and a plane count it has a
/// side table for.
pub(crate) fn check_layer_planes(
    graph: &Graph,
    layer_planes: &BTreeMap<String, u8>,
) -> Result<(), ContainerError> {
    for (node, &k) in layer_planes {
        bitplane_spec(graph, node, k)?;
    }
    Ok(())
}

/// Why a container could not be written or read. Read errors carry the byte offsets involved.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("file is {len} bytes, too short for the {what} (needs {needed} bytes)")]
    TooShort {
        what: &'static str,
        needed: u64,
        len: u64,
    },
    #[error("adaptive policy: {reason}")]
    BadAdaptive { reason: String },
    #[error("bytes 0..8 are {found:02x?}, not the .strata magic \\x89STRATA\\n")]
    BadMagic { found: [u8; 8] },
    #[error("byte 8: container version {version}, this reader supports {VERSION}")]
    UnsupportedVersion { version: u32 },
    #[error("header at bytes {start}..{end} extends past the end of the file ({len} bytes)")]
    TruncatedHeader { start: u64, end: u64, len: u64 },
    #[error("header at bytes {start}..{end}: checksum {found:08x}, expected {expected:08x}")]
    HeaderChecksum {
        start: u64,
        end: u64,
        expected: u32,
        found: u32,
    },
    #[error("header at bytes {start}..{end} does not decode: {source}")]
    HeaderDecode {
        start: u64,
        end: u64,
        #[source]
        source: prost::DecodeError,
    },
    #[error("header: {reason}")]
    BadHeader { reason: String },
    #[error(
        "file ends at byte {offset}, inside plane block {block} (bytes {block_start}..{block_end})"
    )]
    CutInsideBlock {
        block: usize,
        offset: u64,
        block_start: u64,
        block_end: u64,
    },
    #[error("{extra} unexpected bytes after the last plane block (which ends at byte {end})")]
    TrailingBytes { end: u64, extra: u64 },
    #[error(
        "plane block {block} (bytes {start}..{end}): checksum {found:08x}, expected {expected:08x}"
    )]
    BlockChecksum {
        block: usize,
        start: u64,
        end: u64,
        expected: u32,
        found: u32,
    },
    #[error("file ends at byte {header_end}, right after the header: no plane block is present, so no plane count can run")]
    NoPlanes { header_end: u64 },
    #[error("tensor `{name}`: {reason}")]
    BadTensor { name: String, reason: String },
    #[error("tensor `{name}` is stored as {stored} but the graph declares {declared}")]
    TensorType {
        name: String,
        declared: TensorType,
        stored: TensorType,
    },
    #[error("tensor `{name}` is in the directory but no constant of the graph uses it")]
    UnusedTensor { name: String },
    #[error("graph text in the header: {0}")]
    Parse(#[source] ParseError),
    #[error("graph: {0}")]
    Verify(#[source] VerifyError),
    #[error(
        "node `{node}`: input 1 (the planes) is not a constant; only constant planes can be stored"
    )]
    PlanesNotConstant { node: String },
    #[error("plane tensor `{name}` is {ty}, expected u8 [planes, rows, row_bytes]")]
    NotPlaneTensor { name: String, ty: TensorType },
    #[error("no constant named `{name}` to store as a plane tensor")]
    UnknownPlaneTensor { name: String },
    #[error("plane tensor `{name}` has {planes} planes, but `{first}` has {expected}: every layer must have the same number")]
    PlaneCountMismatch {
        name: String,
        planes: usize,
        first: String,
        expected: usize,
    },
    #[error("node `{node}` has bits = {bits}, but `{first}` has {expected}: one container holds one precision")]
    MixedBits {
        node: String,
        bits: u8,
        first: String,
        expected: u8,
    },
    #[error("plane tensor `{name}` has {planes} planes, more than bits = {bits}")]
    TooManyPlanes {
        name: String,
        planes: usize,
        bits: u8,
    },
    #[error("cannot keep {requested} planes: the container holds {available} (1..={available} can be kept)")]
    PlaneCount { requested: u8, available: u8 },
    #[error("per-layer plane count {node}={planes}: {reason}")]
    BadLayerPlanes {
        node: String,
        planes: u8,
        reason: String,
    },
    #[error("internal error while writing: {0}")]
    Internal(String),
}
