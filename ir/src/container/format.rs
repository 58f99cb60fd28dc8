//! The container's header messages (protobuf, by `prost` derive, no `protoc` needed).
//!
//! Protobuf gives the header forward compatibility (unknown fields are skipped) and a decoder
//! that rejects malformed input with an error instead of trusting lengths. Offsets and lengths
//! that point into the file are `fixed64`, so the header's encoded size does not depend on
//! their values: the writer can size the header first and fill the offsets in afterwards.

use std::collections::BTreeMap;

/// Everything but the plane bytes: the graph, where each tensor's data is, the blocks.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Header {
    /// Repeats the fixed-prefix version, so a header moved between files stays self-describing.
    #[prost(uint32, tag = "1")]
    pub format_version: u32,
    /// `B`: the precision the weight codes were quantized to (`bits` of the bit-plane ops);
    /// 0 when the graph has no plane tensors.
    #[prost(uint32, tag = "2")]
    pub bits: u32,
    /// The graph in IR text form with every constant printed `extern` (type only).
    #[prost(string, tag = "3")]
    pub graph: String,
    /// One entry per constant of the graph, in the graph's topological order.
    #[prost(message, repeated, tag = "4")]
    pub tensors: Vec<TensorEntry>,
    /// Plane block `i` holds plane `i` of every plane tensor; contiguous from the header end.
    #[prost(message, repeated, tag = "5")]
    pub blocks: Vec<BlockEntry>,
    /// Free-form key/value pairs (evaluation results, provenance, the pipeline that made it).
    #[prost(btree_map = "string, string", tag = "6")]
    pub metadata: BTreeMap<String, String>,
    /// Mixed precision: the default plane count of each bit-plane layer (node name → k), as
    /// chosen under a weight-byte budget. Empty: every layer runs at the same count.
    #[prost(btree_map = "string, uint32", tag = "7")]
    pub layer_planes: BTreeMap<String, u32>,
    /// Adaptive precision: the fitted cascade (`crate::adaptive`); absent: none.
    #[prost(message, optional, tag = "8")]
    pub adaptive: Option<AdaptivePolicyMsg>,
}

/// `crate::adaptive::AdaptivePolicy` on disk.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AdaptivePolicyMsg {
    #[prost(message, repeated, tag = "1")]
    pub stages: Vec<AdaptiveStageMsg>,
    #[prost(string, tag = "2")]
    pub target: String,
}

/// `crate::adaptive::AdaptiveStage` on disk.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AdaptiveStageMsg {
    #[prost(btree_map = "string, uint32", tag = "1")]
    pub layer_planes: BTreeMap<String, u32>,
    #[prost(float, tag = "2")]
    pub min_margin: f32,
}

/// Where one constant's data lives.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorEntry {
    /// The constant's value name in the graph text.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Element type mnemonic (`f32`, `u8`, …), as in the text form.
    #[prost(string, tag = "2")]
    pub dtype: String,
    /// The full shape (for plane tensors: `[B, R, row_bytes]`, all planes).
    #[prost(uint64, repeated, tag = "3")]
    pub shape: Vec<u64>,
    #[prost(oneof = "Payload", tags = "4, 5, 6")]
    pub payload: Option<Payload>,
}

/// A constant's data: in the header, or spread plane by plane over the blocks.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Payload {
    /// Little-endian element bytes (bool as 0/1): side tables, biases, ordinary constants.
    #[prost(bytes = "vec", tag = "4")]
    Inline(Vec<u8>),
    /// A plane tensor: plane `i` is a slice of block `i`.
    #[prost(message, tag = "5")]
    Planes(PlaneLayout),
    /// An f32 tensor every element of which is exactly representable in IEEE half precision,
    /// stored as little-endian f16 bits: lossless, and half the bytes. Side tables are
    /// rounded to half precision by the quantizer, so this is how they are stored.
    #[prost(bytes = "vec", tag = "6")]
    InlineF16(Vec<u8>),
}

/// How a plane tensor `u8 [B, rows, row_bytes]` is laid out over the blocks.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PlaneLayout {
    #[prost(uint64, tag = "1")]
    pub rows: u64,
    #[prost(uint64, tag = "2")]
    pub row_bytes: u64,
    /// Entry `i`: where plane `i` is inside block `i`.
    #[prost(message, repeated, tag = "3")]
    pub planes: Vec<PlaneSlice>,
}

/// A byte range inside one block (offset relative to the block start).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PlaneSlice {
    #[prost(fixed64, tag = "1")]
    pub offset: u64,
    #[prost(fixed64, tag = "2")]
    pub length: u64,
}

/// One plane block: its place in the file and its checksum.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BlockEntry {
    /// Offset of the block's first byte from the start of the file.
    #[prost(fixed64, tag = "1")]
    pub offset: u64,
    #[prost(fixed64, tag = "2")]
    pub length: u64,
    /// CRC-32 (IEEE) of the block's bytes.
    #[prost(fixed32, tag = "3")]
    pub crc32: u32,
}
