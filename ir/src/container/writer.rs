//! Graph → container bytes. The output is a pure function of the graph and the options
//! (constants in topological order, metadata sorted), so equal models give equal files.

use std::collections::{BTreeMap, BTreeSet};

use prost::Message;

use super::format::{BlockEntry, Header, Payload, PlaneLayout, PlaneSlice, TensorEntry};
use super::{ContainerError, ContainerOptions, MAGIC, PREFIX_LEN, VERSION};
use crate::ops::bitplane::INPUT_PLANES;
use crate::text::{print_with, PrintOptions};
use crate::{DType, Graph, NodeKind, Op, Tensor, TensorData, ValueRef};

/// Writes `graph` as a container. The plane tensors are the constants feeding input 1 of the
/// bit-plane ops; they must all have the same plane count, and the ops the same `bits`.
pub fn write_container(
    graph: &Graph,
    options: &ContainerOptions,
) -> Result<Vec<u8>, ContainerError> {
    let mut planes = BTreeSet::new();
    let mut bits: Option<(u8, String)> = None;
    for id in graph.node_ids() {
        let Ok(node) = graph.node(id) else { continue };
        let NodeKind::Op(Op::Bitplane(b)) = &node.kind else {
            continue;
        };
        match &bits {
            None => bits = Some((b.spec.bits, node.name.clone())),
            Some((expected, first)) if *expected != b.spec.bits => {
                return Err(ContainerError::MixedBits {
                    node: node.name.clone(),
                    bits: b.spec.bits,
                    first: first.clone(),
                    expected: *expected,
                })
            }
            Some(_) => {}
        }
        let input = graph.node_inputs(id).get(INPUT_PLANES).copied();
        let constant = input.filter(|&v| graph.constant_value(v).is_some());
        let Some(v) = constant else {
            return Err(ContainerError::PlanesNotConstant {
                node: node.name.clone(),
            });
        };
        let name = graph
            .value(v)
            .map_err(|e| ContainerError::Internal(e.to_string()))?
            .name
            .clone();
        planes.insert(name);
    }
    write(graph, &planes, bits.map(|(b, _)| b), options)
}

/// Writes `graph` with the named constants stored plane-major as plane tensors
/// (`u8 [P, R, row_bytes]`, the same `P` for all). For graphs whose planes do not (yet) feed
/// bit-plane ops — tests and tools that lay out planes themselves; `bits` is then `P`.
pub fn write_container_with_planes(
    graph: &Graph,
    planes: &BTreeSet<String>,
    options: &ContainerOptions,
) -> Result<Vec<u8>, ContainerError> {
    write(graph, planes, None, options)
}

/// One plane tensor on its way into the blocks.
struct PlaneTensor<'g> {
    tensor: &'g Tensor,
    /// Bytes of one plane (`R · row_bytes`).
    plane_len: usize,
}

fn write(
    graph: &Graph,
    plane_names: &BTreeSet<String>,
    bits: Option<u8>,
    options: &ContainerOptions,
) -> Result<Vec<u8>, ContainerError> {
    crate::verify(graph).map_err(ContainerError::Verify)?;
    super::check_layer_planes(graph, &options.layer_planes)?;
    if let Some(policy) = &options.adaptive {
        policy.check(graph)?;
    }
    let order = graph
        .topo_order()
        .map_err(|e| ContainerError::Internal(e.to_string()))?;

    // Constants in topological order, the same order the graph text lists them.
    let mut constants: Vec<(&str, &Tensor)> = Vec::new();
    for &id in &order {
        let Ok(node) = graph.node(id) else { continue };
        if let NodeKind::Constant(_) = node.kind {
            let name = node.outputs.first().map(|v| v.name.as_str()).unwrap_or("");
            let tensor = graph.constant_value(ValueRef::first(id)).ok_or_else(|| {
                ContainerError::Internal(format!("constant `{name}` has no tensor"))
            })?;
            constants.push((name, tensor));
        }
    }
    for name in plane_names {
        if !constants.iter().any(|(n, _)| n == name) {
            return Err(ContainerError::UnknownPlaneTensor { name: name.clone() });
        }
    }

    // Check the plane tensors and agree on the plane count.
    let mut plane_count: Option<(usize, &str)> = None;
    let mut plane_tensors: BTreeMap<&str, PlaneTensor> = BTreeMap::new();
    for &(name, tensor) in &constants {
        if !plane_names.contains(name) {
            continue;
        }
        let shape = tensor.shape();
        let TensorData::U8(_) = tensor.data() else {
            return Err(not_planes(name, tensor));
        };
        let &[p, rows, row_bytes] = shape else {
            return Err(not_planes(name, tensor));
        };
        if p == 0 || row_bytes % 8 != 0 {
            return Err(not_planes(name, tensor));
        }
        match plane_count {
            None => plane_count = Some((p, name)),
            Some((expected, first)) if expected != p => {
                return Err(ContainerError::PlaneCountMismatch {
                    name: name.to_string(),
                    planes: p,
                    first: first.to_string(),
                    expected,
                })
            }
            Some(_) => {}
        }
        plane_tensors.insert(
            name,
            PlaneTensor {
                tensor,
                plane_len: rows * row_bytes,
            },
        );
    }
    let planes = plane_count.map_or(0, |(p, _)| p);
    let bits = match bits {
        Some(b) => b,
        None => u8::try_from(planes).map_err(|_| ContainerError::TooManyPlanes {
            name: plane_count.map(|(_, n)| n.to_string()).unwrap_or_default(),
            planes,
            bits: u8::MAX,
        })?,
    };
    if let Some((p, name)) = plane_count {
        if p > bits as usize {
            return Err(ContainerError::TooManyPlanes {
                name: name.to_string(),
                planes: p,
                bits,
            });
        }
    }

    // The directory and the block contents, plane-major.
    let mut blocks: Vec<Vec<u8>> = vec![Vec::new(); planes];
    let mut tensors = Vec::with_capacity(constants.len());
    for &(name, tensor) in &constants {
        let payload = match plane_tensors.get(name) {
            Some(pt) => {
                let TensorData::U8(bytes) = pt.tensor.data() else {
                    return Err(not_planes(name, tensor));
                };
                let mut slices = Vec::with_capacity(planes);
                for (i, block) in blocks.iter_mut().enumerate() {
                    let start = i * pt.plane_len;
                    let plane = bytes.get(start..start + pt.plane_len).ok_or_else(|| {
                        ContainerError::Internal(format!("plane {i} of `{name}` out of range"))
                    })?;
                    slices.push(PlaneSlice {
                        offset: block.len() as u64,
                        length: plane.len() as u64,
                    });
                    block.extend_from_slice(plane);
                }
                let shape = tensor.shape();
                Payload::Planes(PlaneLayout {
                    rows: shape[1] as u64,
                    row_bytes: shape[2] as u64,
                    planes: slices,
                })
            }
            None => match tensor.as_f32().and_then(f16_exact) {
                Some(halves) => Payload::InlineF16(halves),
                None => Payload::Inline(tensor.data().to_le_bytes()),
            },
        };
        tensors.push(TensorEntry {
            name: name.to_string(),
            dtype: tensor.dtype().name().to_string(),
            shape: tensor.shape().iter().map(|&d| d as u64).collect(),
            payload: Some(payload),
        });
    }

    let text = print_with(
        graph,
        &PrintOptions {
            extern_constants: true,
            ..PrintOptions::default()
        },
    );
    let mut header = Header {
        format_version: VERSION,
        bits: bits as u32,
        graph: text,
        tensors,
        blocks: blocks
            .iter()
            .map(|b| BlockEntry {
                // A placeholder: any non-zero value (proto3 omits zeros) encodes to the same
                // 8 bytes as the real offset, which is at least `PREFIX_LEN`.
                offset: u64::MAX,
                length: b.len() as u64,
                crc32: crc32fast::hash(b),
            })
            .collect(),
        metadata: options.metadata.clone(),
        layer_planes: options
            .layer_planes
            .iter()
            .map(|(n, &k)| (n.clone(), u32::from(k)))
            .collect(),
        adaptive: options.adaptive.as_ref().map(super::adaptive_to_message),
    };
    // Offsets are non-zero fixed64, so filling them in does not change the header's size.
    let header_len = header.encoded_len();
    let mut offset = (PREFIX_LEN + header_len) as u64;
    for block in &mut header.blocks {
        block.offset = offset;
        offset += block.length;
    }
    let header_bytes = header.encode_to_vec();
    if header_bytes.len() != header_len {
        return Err(ContainerError::Internal(format!(
            "header size changed from {header_len} to {} bytes when the offsets were filled in",
            header_bytes.len()
        )));
    }

    let mut out = Vec::with_capacity(offset as usize);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(header_len as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&header_bytes).to_le_bytes());
    out.extend_from_slice(&header_bytes);
    for block in &blocks {
        out.extend_from_slice(block);
    }
    Ok(out)
}

fn not_planes(name: &str, tensor: &Tensor) -> ContainerError {
    ContainerError::NotPlaneTensor {
        name: name.to_string(),
        ty: tensor.ty(),
    }
}

/// The element type a directory entry names; kept next to the writer's spelling of it.
pub(super) fn parse_dtype(s: &str) -> Option<DType> {
    s.parse().ok()
}

/// Little-endian f16 bits of `values` if every one converts to f16 and back bit for bit.
fn f16_exact(values: &[f32]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(values.len() * 2);
    for &v in values {
        let h = half::f16::from_f32(v);
        if h.to_f32().to_bits() != v.to_bits() {
            return None;
        }
        out.extend_from_slice(&h.to_le_bytes());
    }
    Some(out)
}
