//! Container bytes → graph. Every length and offset from the file is checked (against the
//! file size, with overflow-checked arithmetic) before it is used to slice or allocate.

use std::collections::{BTreeMap, HashSet};

use prost::Message;

use super::format::{Header, Payload, PlaneLayout};
use super::writer::parse_dtype;
use super::{ContainerError, Loaded, MAGIC, PREFIX_LEN, VERSION};
use crate::text::parse_with_prefix;
use crate::{DType, Shape, Tensor, TensorData, TensorType};

/// Reads a container or a prefix of one that ends at a block boundary. The plane tensors of
/// the returned graph hold the planes present (`available_planes` of them); the graph is
/// verified.
pub fn read_container(bytes: &[u8]) -> Result<Loaded, ContainerError> {
    let layout = scan(bytes)?;
    let Layout {
        header,
        available,
        bits,
        ..
    } = layout;

    let mut tensors = directory(&header, bytes, available)?;
    let mut failure: Option<ContainerError> = None;
    let mut resolve = |name: &str, declared: &TensorType| -> Option<Tensor> {
        let entry = tensors.remove(name)?;
        if entry.full != *declared {
            failure = Some(ContainerError::TensorType {
                name: name.to_string(),
                declared: declared.clone(),
                stored: entry.full,
            });
            return None;
        }
        Some(entry.tensor)
    };
    let parsed = parse_with_prefix(&header.graph, &mut resolve);
    if let Some(e) = failure {
        return Err(e);
    }
    let graph = parsed.map_err(ContainerError::Parse)?;
    if let Some(name) = tensors.into_keys().next() {
        return Err(ContainerError::UnusedTensor { name });
    }
    crate::verify(&graph).map_err(ContainerError::Verify)?;
    let mut layer_planes = BTreeMap::new();
    for (node, k) in header.layer_planes {
        let planes = u8::try_from(k).map_err(|_| ContainerError::BadLayerPlanes {
            node: node.clone(),
            planes: u8::MAX,
            reason: format!("{k} is not a plane count"),
        })?;
        layer_planes.insert(node, planes);
    }
    super::check_layer_planes(&graph, &layer_planes)?;
    let adaptive = header
        .adaptive
        .map(super::adaptive_from_message)
        .transpose()?;
    if let Some(policy) = &adaptive {
        policy.check(&graph)?;
    }
    Ok(Loaded {
        graph,
        bits,
        available_planes: available as u8,
        metadata: header.metadata,
        layer_planes,
        adaptive,
    })
}

/// The prefix of a container that holds only its first `planes` planes: a smaller, valid
/// container for a device that cannot use (or download) more. The input is fully validated
/// first; `planes` must be in `1..=available`.
pub fn strip_container(bytes: &[u8], planes: u8) -> Result<&[u8], ContainerError> {
    let loaded = read_container(bytes)?;
    if planes == 0 || planes > loaded.available_planes {
        return Err(ContainerError::PlaneCount {
            requested: planes,
            available: loaded.available_planes,
        });
    }
    let layout = scan(bytes)?;
    let end = layout
        .header
        .blocks
        .get(planes as usize - 1)
        .map(|b| b.offset + b.length)
        .ok_or(ContainerError::PlaneCount {
            requested: planes,
            available: loaded.available_planes,
        })?;
    // `scan` checked every present block lies inside the file.
    usize::try_from(end)
        .ok()
        .and_then(|end| bytes.get(..end))
        .ok_or(ContainerError::PlaneCount {
            requested: planes,
            available: loaded.available_planes,
        })
}

/// What the fixed prefix, the header and the block table say, checked against the bytes.
struct Layout {
    header: Header,
    bits: u8,
    /// Complete (and checksum-verified) blocks.
    available: usize,
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

fn bad_header(reason: String) -> ContainerError {
    ContainerError::BadHeader { reason }
}

fn scan(bytes: &[u8]) -> Result<Layout, ContainerError> {
    let len = bytes.len() as u64;
    let too_short = |what, needed: usize| ContainerError::TooShort {
        what,
        needed: needed as u64,
        len,
    };
    let magic = bytes.get(..8).ok_or_else(|| too_short("magic", 8))?;
    if magic != MAGIC {
        let mut found = [0u8; 8];
        found.copy_from_slice(magic);
        return Err(ContainerError::BadMagic { found });
    }
    let version = bytes
        .get(8..12)
        .map(le_u32)
        .ok_or_else(|| too_short("version", 12))?;
    if version != VERSION {
        return Err(ContainerError::UnsupportedVersion { version });
    }
    let prefix = bytes
        .get(..PREFIX_LEN)
        .ok_or_else(|| too_short("header length and checksum", PREFIX_LEN))?;
    let header_len = le_u64(&prefix[12..20]);
    let header_crc = le_u32(&prefix[20..24]);
    let start = PREFIX_LEN as u64;
    let end = start.checked_add(header_len).filter(|&e| e <= len);
    let Some(end) = end else {
        return Err(ContainerError::TruncatedHeader {
            start,
            end: start.saturating_add(header_len),
            len,
        });
    };
    // `end <= len`, so both fit in usize.
    let header_bytes = &bytes[PREFIX_LEN..end as usize];
    let found = crc32fast::hash(header_bytes);
    if found != header_crc {
        return Err(ContainerError::HeaderChecksum {
            start,
            end,
            expected: header_crc,
            found,
        });
    }
    let header = Header::decode(header_bytes).map_err(|source| ContainerError::HeaderDecode {
        start,
        end,
        source,
    })?;
    if header.format_version != VERSION {
        return Err(bad_header(format!(
            "format version {} does not match the file's version {VERSION}",
            header.format_version
        )));
    }
    let bits = u8::try_from(header.bits)
        .map_err(|_| bad_header(format!("bits = {} is out of range", header.bits)))?;
    if header.blocks.len() > bits as usize {
        return Err(bad_header(format!(
            "{} plane blocks for bits = {bits}",
            header.blocks.len()
        )));
    }

    // Blocks are contiguous from the header end; count the complete ones.
    let mut expected_start = end;
    let mut available = 0usize;
    let mut cut = false;
    for (i, block) in header.blocks.iter().enumerate() {
        if block.offset != expected_start {
            return Err(bad_header(format!(
                "plane block {i} starts at byte {}, expected {expected_start}",
                block.offset
            )));
        }
        let block_end = block.offset.checked_add(block.length).ok_or_else(|| {
            bad_header(format!(
                "plane block {i} length {} overflows the file offset",
                block.length
            ))
        })?;
        if !cut {
            if len >= block_end {
                available += 1;
            } else if len > block.offset {
                return Err(ContainerError::CutInsideBlock {
                    block: i,
                    offset: len,
                    block_start: block.offset,
                    block_end,
                });
            } else {
                cut = true;
            }
        }
        expected_start = block_end;
    }
    let last_present_end = header.blocks[..available]
        .last()
        .map_or(end, |b| b.offset + b.length);
    if len > last_present_end {
        // Only possible when every block is present: otherwise the cut checks above fired.
        return Err(ContainerError::TrailingBytes {
            end: last_present_end,
            extra: len - last_present_end,
        });
    }
    if available == 0 && !header.blocks.is_empty() {
        return Err(ContainerError::NoPlanes { header_end: end });
    }
    for (i, block) in header.blocks[..available].iter().enumerate() {
        // Present blocks end at or before `len`.
        let data = &bytes[block.offset as usize..(block.offset + block.length) as usize];
        let found = crc32fast::hash(data);
        if found != block.crc32 {
            return Err(ContainerError::BlockChecksum {
                block: i,
                start: block.offset,
                end: block.offset + block.length,
                expected: block.crc32,
                found,
            });
        }
    }
    Ok(Layout {
        header,
        bits,
        available,
    })
}

/// A decoded directory entry: the type the full model declares and the tensor as loaded.
struct Entry {
    full: TensorType,
    tensor: Tensor,
}

/// Decodes the tensor directory: inline tensors from the header, plane tensors from the first
/// `available` blocks. Sizes are checked before each allocation.
fn directory(
    header: &Header,
    bytes: &[u8],
    available: usize,
) -> Result<BTreeMap<String, Entry>, ContainerError> {
    let nblocks = header.blocks.len();
    // Plane slices must tile each block in directory order, which bounds what is copied out of
    // the blocks by the file size.
    let mut block_fill = vec![0u64; nblocks];
    let mut any_planes = false;
    let mut seen = HashSet::new();
    let mut out = BTreeMap::new();
    for entry in &header.tensors {
        let name = entry.name.as_str();
        let bad = |reason: String| ContainerError::BadTensor {
            name: name.to_string(),
            reason,
        };
        if !seen.insert(name) {
            return Err(bad("listed twice in the directory".into()));
        }
        let dtype = parse_dtype(&entry.dtype)
            .ok_or_else(|| bad(format!("unknown element type `{}`", entry.dtype)))?;
        let dims = crate::limits::usize_dims(&entry.shape)
            .ok_or_else(|| bad(format!("shape {:?} does not fit in memory", entry.shape)))?;
        let count = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|n| n.checked_mul(dtype.size_bytes()))
            .ok_or_else(|| bad(format!("shape {dims:?} is too large")))?;
        let full = TensorType::new(dtype, Shape::known(&dims));
        let tensor = match &entry.payload {
            None => return Err(bad("has no data".into())),
            Some(Payload::Inline(data)) => {
                if data.len() != count {
                    return Err(bad(format!(
                        "{} inline bytes for {dtype} {dims:?}, expected {count}",
                        data.len()
                    )));
                }
                let data = TensorData::from_le_bytes(dtype, data)
                    .ok_or_else(|| bad("inline data length".into()))?;
                Tensor::new(dims, data).map_err(|e| bad(e.to_string()))?
            }
            Some(Payload::InlineF16(data)) => {
                if dtype != DType::F32 || data.len() != count / 2 {
                    return Err(bad(format!(
                        "{} half-precision bytes for {dtype} {dims:?}, expected f32 with {}",
                        data.len(),
                        count / 2
                    )));
                }
                let values = data
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect();
                Tensor::new(dims, TensorData::F32(values)).map_err(|e| bad(e.to_string()))?
            }
            Some(Payload::Planes(layout)) => {
                any_planes = true;
                plane_tensor(
                    layout,
                    dtype,
                    &dims,
                    header,
                    bytes,
                    available,
                    &mut block_fill,
                )
                .map_err(bad)?
            }
        };
        out.insert(name.to_string(), Entry { full, tensor });
    }
    for (i, (fill, block)) in block_fill.iter().zip(&header.blocks).enumerate() {
        if *fill != block.length {
            return Err(bad_header(format!(
                "plane block {i} is {} bytes but its planes fill {fill}",
                block.length
            )));
        }
    }
    if nblocks > 0 && !any_planes {
        return Err(bad_header(format!(
            "{nblocks} plane blocks but no plane tensor"
        )));
    }
    Ok(out)
}

/// Gathers plane `i` of one tensor from block `i`, for the blocks present.
fn plane_tensor(
    layout: &PlaneLayout,
    dtype: DType,
    dims: &[usize],
    header: &Header,
    bytes: &[u8],
    available: usize,
    block_fill: &mut [u64],
) -> Result<Tensor, String> {
    let nblocks = header.blocks.len();
    if dtype != DType::U8 {
        return Err(format!("a plane tensor must be u8, not {dtype}"));
    }
    let &[p, rows, row_bytes] = dims else {
        return Err(format!(
            "a plane tensor must be [planes, rows, row_bytes], not {dims:?}"
        ));
    };
    if p == 0 || p != nblocks || layout.planes.len() != nblocks {
        return Err(format!(
            "{p} planes in its shape and {} in its layout, but the file has {nblocks} blocks",
            layout.planes.len()
        ));
    }
    if layout.rows != rows as u64 || layout.row_bytes != row_bytes as u64 || row_bytes % 8 != 0 {
        return Err(format!(
            "layout {}×{} bytes does not match shape {dims:?} (row_bytes a multiple of 8)",
            layout.rows, layout.row_bytes
        ));
    }
    // `dims` passed the overflow-checked size computation, so this product fits.
    let plane_len = (rows * row_bytes) as u64;
    for (i, slice) in layout.planes.iter().enumerate() {
        if slice.length != plane_len || slice.offset != block_fill[i] {
            return Err(format!(
                "plane {i} is bytes {}+{} of block {i}, expected {}+{plane_len}",
                slice.offset, slice.length, block_fill[i]
            ));
        }
        let end = slice
            .offset
            .checked_add(slice.length)
            .filter(|&e| e <= header.blocks[i].length)
            .ok_or_else(|| {
                format!(
                    "plane {i} (bytes {}+{}) runs past block {i} ({} bytes)",
                    slice.offset, slice.length, header.blocks[i].length
                )
            })?;
        block_fill[i] = end;
    }
    // Every present block lies inside `bytes` (checked by `scan`), and each slice inside its
    // block, so the total copied is at most the file size.
    let mut data = Vec::with_capacity(available * plane_len as usize);
    for (slice, block) in layout.planes.iter().zip(&header.blocks).take(available) {
        let start = (block.offset + slice.offset) as usize;
        data.extend_from_slice(&bytes[start..start + slice.length as usize]);
    }
    Tensor::new(vec![available, rows, row_bytes], TensorData::U8(data)).map_err(|e| e.to_string())
}
