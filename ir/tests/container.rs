//! The `.strata` container and `extern` constants in the text form: round trips, the prefix
//! property at every block boundary, and a typed error for every kind of damage.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use prost::Message;

use strata_ir::container::format::{Header, Payload, PlaneLayout, TensorEntry};
use strata_ir::container::{
    read_container, strip_container, write_container, write_container_with_planes, ContainerError,
    ContainerOptions, Loaded, MAGIC, PREFIX_LEN,
};
use strata_ir::ops::{Bitplane, BitplaneKernel, Conv, PlaneSpec, UnaryOp};
use strata_ir::text::{
    parse, parse_with, print, print_with, ParseError, ParseErrorKind, PrintOptions,
};
use strata_ir::{quant, DType, Graph, NodeKind, Op, Tensor, TensorData, TensorType, ValueRef};
use strata_test_support::rng::XorShift;
use strata_test_support::{f32c, op, ty};

/// `n` seeded random bytes (the top byte of each draw).
fn random_bytes(rng: &mut XorShift, n: usize) -> Vec<u8> {
    (0..n).map(|_| (rng.next_u64() >> 56) as u8).collect()
}

const BITS: usize = 8;
/// `(name, rows, row_bytes)` of the two fake plane tensors.
const FAKE_PLANES: [(&str, usize, usize); 2] = [("fc1.planes", 4, 8), ("fc2.planes", 3, 16)];
/// Bytes of one plane block of the fake graph: one plane of each plane tensor.
const FAKE_BLOCK: usize = 4 * 8 + 3 * 16;

fn full_planes() -> Vec<Vec<u8>> {
    let mut rng = XorShift::seeded(0x5eed);
    FAKE_PLANES
        .iter()
        .map(|&(_, r, rb)| random_bytes(&mut rng, BITS * r * rb))
        .collect()
}

/// A small graph with ordinary constants (a literal-sized and a hex-sized one, a NaN, an i64)
/// and two fake plane tensors cut to their first `k` planes.
fn fake_graph(k: usize) -> Graph {
    let mut g = Graph::new("fake");
    let x = g.add_input("x", ty(DType::F32, &[None, Some(16)]));
    let w = f32c(&mut g, "w", &[16, 4], |i| (i as f32 * 0.37).sin());
    let b = g.add_constant(
        "b",
        Tensor::from_f32(vec![4], vec![0.5, -0.0, f32::NAN, 1e-30]).unwrap(),
    );
    g.add_constant("shape", Tensor::from_i64(vec![2], vec![-1, 4]).unwrap());
    for (&(name, r, rb), bytes) in FAKE_PLANES.iter().zip(full_planes()) {
        let t = Tensor::new(vec![k, r, rb], TensorData::U8(bytes[..k * r * rb].to_vec())).unwrap();
        g.add_constant(name, t);
    }
    let m = op(&mut g, "mm", Op::MatMul, &[x, w]);
    let a = op(
        &mut g,
        "add",
        Op::Binary(strata_ir::ops::BinaryOp::Add),
        &[m, b],
    );
    let y = op(&mut g, "y", Op::Unary(UnaryOp::Relu), &[a]);
    g.set_outputs(vec![y]);
    g
}

fn plane_names() -> BTreeSet<String> {
    FAKE_PLANES.iter().map(|(n, _, _)| n.to_string()).collect()
}

fn metadata() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("accuracy@8".to_string(), "0.981".to_string()),
        ("pipeline".to_string(), "vl-quantize{bits=8}".to_string()),
        ("unicode ✓".to_string(), "line\nbreak".to_string()),
    ])
}

fn fake_container() -> Vec<u8> {
    write_container_with_planes(
        &fake_graph(BITS),
        &plane_names(),
        &ContainerOptions {
            metadata: metadata(),
            ..Default::default()
        },
    )
    .unwrap()
}

/// Where the header ends (= block 0 starts), read from the fixed prefix.
fn header_end(bytes: &[u8]) -> usize {
    PREFIX_LEN + u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize
}

fn decode_header(bytes: &[u8]) -> Header {
    Header::decode(&bytes[PREFIX_LEN..header_end(bytes)]).unwrap()
}

/// Re-encodes a (tampered) header with a correct checksum and block offsets, so the reader
/// gets past the integrity checks and exercises the semantic ones.
fn with_header(bytes: &[u8], mut header: Header) -> Vec<u8> {
    let blocks = bytes[header_end(bytes)..].to_vec();
    for b in &mut header.blocks {
        b.offset = u64::MAX; // non-zero placeholder, same encoded size as the real offset
    }
    let len = header.encoded_len();
    let mut offset = (PREFIX_LEN + len) as u64;
    for b in &mut header.blocks {
        b.offset = offset;
        offset = offset.wrapping_add(b.length);
    }
    let h = header.encode_to_vec();
    let mut out = bytes[..12].to_vec();
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&h).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&blocks);
    out
}

// ---------------------------------------------------------------------------------------
// Extern constants in the text form

fn extern_text(g: &Graph) -> String {
    print_with(
        g,
        &PrintOptions {
            extern_constants: true,
            ..Default::default()
        },
    )
}

fn constants_by_name(g: &Graph) -> BTreeMap<String, Arc<Tensor>> {
    g.node_ids()
        .filter_map(|id| {
            let node = g.node(id).ok()?;
            let NodeKind::Constant(_) = node.kind else {
                return None;
            };
            let t = g.constant_value(ValueRef::first(id))?.clone();
            Some((node.outputs[0].name.clone(), t))
        })
        .collect()
}

#[test]
fn extern_constants_print_type_only() {
    let text = extern_text(&fake_graph(BITS));
    assert!(text.contains("%w = const f32[16,4] extern\n"), "{text}");
    assert!(text.contains("%b = const f32[4] extern\n"), "{text}");
    assert!(
        text.contains("%fc2.planes = const u8[8,3,16] extern\n"),
        "{text}"
    );
    assert!(!text.contains("hex"), "{text}");
}

#[test]
fn parse_with_resolves_extern_constants() {
    let g = fake_graph(BITS);
    let consts = constants_by_name(&g);
    let mut asked = Vec::new();
    let parsed = parse_with(&extern_text(&g), &mut |name, ty: &TensorType| {
        asked.push((name.to_string(), ty.to_string()));
        consts.get(name).map(|t| (**t).clone())
    })
    .unwrap();
    assert_eq!(parsed, g);
    assert_eq!(asked.len(), consts.len());
    assert!(asked.contains(&("shape".to_string(), "i64[2]".to_string())));
    // The ordinary text form is unaffected and still parses without a resolver.
    assert_eq!(parse(&print(&g)).unwrap(), g);
}

#[test]
fn plain_parse_rejects_extern() {
    let err = parse(&extern_text(&fake_graph(BITS))).unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::ExternConstant("w".into()));
    assert_eq!((err.line, err.column), (2, 24));
    assert!(err.to_string().contains("%w is extern"), "{err}");
}

/// Parses the fake graph's extern text with its own constants, except that constant `name`
/// is answered with `swap` (`None`: not supplied).
fn parse_fake_swapping(name: &str, swap: Option<Tensor>) -> Result<Graph, ParseError> {
    let g = fake_graph(BITS);
    let consts = constants_by_name(&g);
    parse_with(&extern_text(&g), &mut |n, _| {
        if n == name {
            swap.clone()
        } else {
            Some((*consts[n]).clone())
        }
    })
}

#[test]
fn parse_with_reports_missing_extern() {
    let err = parse_fake_swapping("b", None).unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::MissingExtern("b".into()));
    assert!(err.to_string().contains("%b was not supplied"), "{err}");
}

#[test]
fn parse_with_rejects_wrongly_typed_extern() {
    // Wrong shape.
    let transposed = Tensor::from_f32(vec![4, 16], vec![0.0; 64]).unwrap();
    let err = parse_fake_swapping("w", Some(transposed)).unwrap_err();
    let ParseErrorKind::ExternType {
        name,
        declared,
        supplied,
    } = &err.kind
    else {
        panic!("{err}");
    };
    assert_eq!(
        (name.as_str(), declared.to_string(), supplied.to_string()),
        ("w", "f32[16,4]".into(), "f32[4,16]".into())
    );
    // Wrong element type; a smaller leading dimension is not accepted either (only the
    // container reader allows that, for plane tensors of a truncated file).
    let as_f32 = Tensor::from_f32(vec![2], vec![-1.0, 4.0]).unwrap();
    let three_planes = Tensor::new(vec![3, 4, 8], TensorData::U8(vec![0; 96])).unwrap();
    for (swapped, t) in [("shape", as_f32), ("fc1.planes", three_planes)] {
        let err = parse_fake_swapping(swapped, Some(t)).unwrap_err();
        assert!(
            matches!(&err.kind, ParseErrorKind::ExternType { name, .. } if name == swapped),
            "{err}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Container: round trips and prefixes

#[test]
fn round_trip_restores_graph_and_metadata() {
    let bytes = fake_container();
    assert_eq!(&bytes[..8], &MAGIC);
    assert_eq!(&bytes[8..12], &1u32.to_le_bytes());
    assert_eq!(bytes.len(), header_end(&bytes) + BITS * FAKE_BLOCK);
    let Loaded {
        graph,
        bits,
        available_planes,
        metadata: meta,
        layer_planes,
        adaptive,
    } = read_container(&bytes).unwrap();
    assert_eq!(graph, fake_graph(BITS));
    assert_eq!((bits, available_planes), (8, 8));
    assert_eq!(meta, metadata());
    assert!(layer_planes.is_empty());
    assert!(adaptive.is_none());
}

#[test]
fn writing_is_deterministic() {
    let a = fake_container();
    let b = fake_container();
    assert_eq!(a, b);
    // The same model read back writes the same bytes.
    let loaded = read_container(&a).unwrap();
    let c = write_container_with_planes(
        &loaded.graph,
        &plane_names(),
        &ContainerOptions {
            metadata: loaded.metadata,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(a, c);
}

#[test]
fn header_lays_out_blocks_plane_major() {
    let bytes = fake_container();
    let h = decode_header(&bytes);
    assert_eq!((h.format_version, h.bits), (1, 8));
    assert_eq!(h.blocks.len(), BITS);
    let planes = full_planes();
    for (i, block) in h.blocks.iter().enumerate() {
        assert_eq!(block.offset as usize, header_end(&bytes) + i * FAKE_BLOCK);
        assert_eq!(block.length as usize, FAKE_BLOCK);
        let data = &bytes[block.offset as usize..(block.offset + block.length) as usize];
        assert_eq!(block.crc32, crc32fast::hash(data));
        // Block i = plane i of fc1, then plane i of fc2.
        let mut expect = Vec::new();
        for (&(_, r, rb), p) in FAKE_PLANES.iter().zip(&planes) {
            expect.extend_from_slice(&p[i * r * rb..(i + 1) * r * rb]);
        }
        assert_eq!(data, &expect[..], "block {i}");
    }
    let inline: Vec<&str> = h
        .tensors
        .iter()
        .filter(|t| matches!(t.payload, Some(Payload::Inline(_))))
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(inline, ["w", "b", "shape"]);
    assert!(h.graph.contains("extern"));
}

#[test]
fn every_block_boundary_prefix_loads_with_that_many_planes() {
    let bytes = fake_container();
    let end = header_end(&bytes);
    for k in 1..=BITS {
        let loaded = read_container(&bytes[..end + k * FAKE_BLOCK]).unwrap();
        assert_eq!((loaded.bits, loaded.available_planes), (8, k as u8));
        assert_eq!(loaded.graph, fake_graph(k), "k = {k}");
        assert_eq!(loaded.metadata, metadata());
    }
    match read_container(&bytes[..end]) {
        Err(ContainerError::NoPlanes { header_end }) => assert_eq!(header_end, end as u64),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_cut_inside_any_block_is_reported_with_offsets() {
    let bytes = fake_container();
    let end = header_end(&bytes);
    for block in 0..BITS {
        let start = end + block * FAKE_BLOCK;
        for cut in start + 1..start + FAKE_BLOCK {
            match read_container(&bytes[..cut]) {
                Err(ContainerError::CutInsideBlock {
                    block: b,
                    offset,
                    block_start,
                    block_end,
                }) => {
                    assert_eq!(
                        (b, offset, block_start, block_end),
                        (block, cut as u64, start as u64, (start + FAKE_BLOCK) as u64)
                    );
                }
                other => panic!("cut at {cut}: {other:?}"),
            }
        }
    }
    let err = read_container(&bytes[..end + 3]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "file ends at byte {}, inside plane block 0 (bytes {end}..{})",
            end + 3,
            end + FAKE_BLOCK
        )
    );
}

#[test]
fn cuts_before_the_blocks_are_typed_errors() {
    let bytes = fake_container();
    let end = header_end(&bytes);
    for cut in 0..end {
        let err = read_container(&bytes[..cut]).unwrap_err();
        match (cut, &err) {
            (0..8, ContainerError::TooShort { what: "magic", .. })
            | (
                8..12,
                ContainerError::TooShort {
                    what: "version", ..
                },
            )
            | (12..24, ContainerError::TooShort { .. })
            | (24.., ContainerError::TruncatedHeader { .. }) => {}
            _ => panic!("cut at {cut}: {err:?}"),
        }
    }
    let err = read_container(&bytes[..100]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("header at bytes 24..{end} extends past the end of the file (100 bytes)")
    );
}

#[test]
fn every_flipped_header_byte_is_a_typed_error() {
    let bytes = fake_container();
    let end = header_end(&bytes);
    for at in 0..end {
        let mut bad = bytes.clone();
        bad[at] ^= 0x10;
        let err = read_container(&bad).unwrap_err();
        let ok = match at {
            0..8 => matches!(err, ContainerError::BadMagic { .. }),
            8..12 => matches!(err, ContainerError::UnsupportedVersion { .. }),
            12..20 => matches!(
                err,
                ContainerError::TruncatedHeader { .. } | ContainerError::HeaderChecksum { .. }
            ),
            _ => matches!(err, ContainerError::HeaderChecksum { .. }),
        };
        assert!(ok, "flip at {at}: {err:?}");
    }
}

#[test]
fn every_flipped_block_byte_is_a_checksum_error() {
    let bytes = fake_container();
    let end = header_end(&bytes);
    for at in end..bytes.len() {
        let mut bad = bytes.clone();
        bad[at] ^= 0x01;
        match read_container(&bad) {
            Err(ContainerError::BlockChecksum {
                block,
                start,
                end: block_end,
                expected,
                found,
            }) => {
                let b = (at - end) / FAKE_BLOCK;
                assert_eq!(block, b);
                assert_eq!(start as usize, end + b * FAKE_BLOCK);
                assert_eq!(block_end as usize, end + (b + 1) * FAKE_BLOCK);
                assert_ne!(expected, found);
            }
            other => panic!("flip at {at}: {other:?}"),
        }
        // A prefix that stops before the damaged block is still a good model.
        let b = (at - end) / FAKE_BLOCK;
        if b > 0 {
            let loaded = read_container(&bad[..end + b * FAKE_BLOCK]).unwrap();
            assert_eq!(loaded.available_planes as usize, b);
        }
    }
}

#[test]
fn trailing_bytes_are_rejected() {
    let mut bytes = fake_container();
    let len = bytes.len() as u64;
    bytes.extend_from_slice(b"junk");
    match read_container(&bytes) {
        Err(ContainerError::TrailingBytes { end, extra }) => assert_eq!((end, extra), (len, 4)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn strip_returns_a_loadable_prefix() {
    let bytes = fake_container();
    let end = header_end(&bytes);
    for k in 1..=BITS as u8 {
        let stripped = strip_container(&bytes, k).unwrap();
        assert_eq!(stripped.len(), end + k as usize * FAKE_BLOCK);
        assert_eq!(stripped, &bytes[..stripped.len()]);
        let loaded = read_container(stripped).unwrap();
        assert_eq!(loaded.available_planes, k);
        assert_eq!(loaded.graph, fake_graph(k as usize));
        // Stripping a stripped file works down to its own plane count.
        assert_eq!(strip_container(stripped, k).unwrap(), stripped);
        assert!(matches!(
            strip_container(stripped, k + 1),
            Err(ContainerError::PlaneCount { requested, available }) if requested == k + 1 && available == k
        ));
    }
    assert!(matches!(
        strip_container(&bytes, 0),
        Err(ContainerError::PlaneCount { .. })
    ));
    let mut bad = bytes.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert!(matches!(
        strip_container(&bad, 2),
        Err(ContainerError::BlockChecksum { block: 7, .. })
    ));
}

#[test]
fn a_graph_without_planes_is_a_header_only_container() {
    let g = fake_graph(BITS);
    let bytes =
        write_container_with_planes(&g, &BTreeSet::new(), &ContainerOptions::default()).unwrap();
    assert_eq!(bytes.len(), header_end(&bytes));
    let loaded = read_container(&bytes).unwrap();
    assert_eq!(loaded.graph, g);
    assert_eq!((loaded.bits, loaded.available_planes), (0, 0));
    assert!(matches!(
        strip_container(&bytes, 1),
        Err(ContainerError::PlaneCount {
            requested: 1,
            available: 0
        })
    ));
}

// ---------------------------------------------------------------------------------------
// Container: crafted headers (valid checksums, inconsistent content)

fn expect_bad(bytes: &[u8], what: &str) -> ContainerError {
    match read_container(bytes) {
        Ok(_) => panic!("{what}: loaded"),
        Err(e) => e,
    }
}

/// The directory entry of tensor `name`.
fn entry<'h>(h: &'h mut Header, name: &str) -> &'h mut TensorEntry {
    h.tensors.iter_mut().find(|t| t.name == name).unwrap()
}

/// The plane layout of plane tensor `name`.
fn planes_of<'h>(h: &'h mut Header, name: &str) -> &'h mut PlaneLayout {
    match entry(h, name).payload.as_mut() {
        Some(Payload::Planes(l)) => l,
        _ => panic!("{name} is not a plane tensor"),
    }
}

/// `assert_edits_fail!(bytes, base, { "what", edit => pattern, … })`: each `edit` of a copy
/// of header `base`, re-encoded with valid checksums, must fail to load with an error matching
/// `pattern` (one row per kind of damage).
macro_rules! assert_edits_fail {
    ($bytes:expr, $base:expr, { $($what:literal, $edit:expr => $err:pat $(if $guard:expr)?),+ $(,)? }) => {$(
        let mut h = $base.clone();
        let edit: &dyn Fn(&mut Header) = &$edit;
        edit(&mut h);
        let e = expect_bad(&with_header($bytes, h), $what);
        assert!(matches!(&e, $err $(if $guard)?), "{}: {e}", $what);
    )+};
}

#[test]
fn inconsistent_directories_are_typed_errors() {
    let bytes = fake_container();
    let base = decode_header(&bytes);
    assert_edits_fail!(&bytes, base, {
        // Inline data of the wrong length.
        "short inline", |h| entry(h, "w").payload = Some(Payload::Inline(vec![0; 7]))
            => ContainerError::BadTensor { name, reason } if name == "w" && reason.contains("7 inline bytes"),
        // An absurd shape is rejected before any allocation.
        "huge shape", |h| entry(h, "w").shape = vec![u64::MAX, u64::MAX]
            => ContainerError::BadTensor { name, .. } if name == "w",
        // Directory type differs from the graph's declaration.
        "retyped", |h| entry(h, "w").shape = vec![4, 16]
            => ContainerError::TensorType { name, .. } if name == "w",
        "dtype", |h| entry(h, "b").dtype = "f16".into()
            => e if e.to_string().contains("unknown element type `f16`"),
        // Missing data, duplicate entry, an entry no constant uses, a constant with no entry.
        "no payload", |h| entry(h, "b").payload = None => e if e.to_string().contains("has no data"),
        "duplicate", |h| {
            let dup = entry(h, "b").clone();
            h.tensors.push(dup);
        } => e if e.to_string().contains("listed twice"),
        "unused", |h| {
            let mut extra = entry(h, "b").clone();
            extra.name = "stray".into();
            h.tensors.push(extra);
        } => ContainerError::UnusedTensor { name } if name == "stray",
        "missing", |h| h.tensors.retain(|t| t.name != "shape")
            => ContainerError::Parse(p) if p.kind == ParseErrorKind::MissingExtern("shape".into()),
        // A graph text that does not parse, or does not verify.
        "parse", |h| h.graph = h.graph.replace("matmul", "frobnicate") => ContainerError::Parse(_),
        "verify", |h| h.graph = h.graph.replace("f32[N,4]", "f32[N,5]") => ContainerError::Verify(_),
        // Header version and bits.
        "version", |h| h.format_version = 2 => ContainerError::BadHeader { .. },
        "bits", |h| h.bits = 300 => e if e.to_string().contains("bits = 300"),
        "bits < blocks", |h| h.bits = 4
            => e if e.to_string().contains("8 plane blocks for bits = 4"),
    });
}

#[test]
fn inconsistent_plane_layouts_are_typed_errors() {
    let bytes = fake_container();
    let base = decode_header(&bytes);
    assert_edits_fail!(&bytes, base, {
        // A plane slice pointing past its block.
        "slice offset", |h| planes_of(h, "fc1.planes").planes[3].offset = 1 << 40
            => ContainerError::BadTensor { name, reason } if name == "fc1.planes" && reason.contains("plane 3"),
        // Overlapping slices (both tensors reading the same bytes) are not accepted.
        "overlap", |h| planes_of(h, "fc2.planes").planes[0].offset = 0
            => e if e.to_string().contains("fc2.planes"),
        // Rows disagreeing with the shape; wrong number of plane slices.
        "rows", |h| planes_of(h, "fc1.planes").rows = 5
            => e if e.to_string().contains("does not match shape"),
        "slices", |h| {
            planes_of(h, "fc1.planes").planes.pop();
        } => e if e.to_string().contains("7 in its layout"),
        // A plane tensor that is not u8.
        "dtype", |h| entry(h, "fc1.planes").dtype = "i8".into() => e if e.to_string().contains("must be u8"),
        // A file cut where a tampered block table says a block ends is still checked.
        "cut", |h| h.blocks[0].length += 1 => ContainerError::CutInsideBlock { block: 7, .. },
        "block overflow", |h| h.blocks[7].length = u64::MAX => e if e.to_string().contains("overflows"),
        // Blocks without any plane tensor.
        "no plane tensor", |h| {
            for t in h.tensors.iter_mut().filter(|t| t.name.ends_with(".planes")) {
                t.payload = Some(Payload::Inline(vec![0; 1]));
            }
        } => ContainerError::BadTensor { .. } | ContainerError::BadHeader { .. },
    });
    // A block longer than its planes (valid checksum over the extra byte).
    let mut h = base.clone();
    let mut longer = bytes.clone();
    longer.push(0xaa);
    let last = &longer[longer.len() - (FAKE_BLOCK + 1)..];
    h.blocks[7].length += 1;
    h.blocks[7].crc32 = crc32fast::hash(last);
    let e = expect_bad(&with_header(&longer, h), "block length");
    assert!(
        e.to_string()
            .contains("plane block 7 is 81 bytes but its planes fill 80"),
        "{e}"
    );
}

/// The container with its header replaced by `header` as given: prefix fields and checksum
/// recomputed, nothing else (so wrong offsets or undecodable bytes stay wrong).
fn with_raw_header(bytes: &[u8], header: &[u8]) -> Vec<u8> {
    let mut out = bytes[..12].to_vec();
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(header).to_le_bytes());
    out.extend_from_slice(header);
    out
}

#[test]
fn block_offsets_must_follow_the_header() {
    let bytes = fake_container();
    let mut h = decode_header(&bytes);
    // Re-encode by hand so the offsets stay wrong.
    h.blocks[2].offset += 1;
    let mut out = with_raw_header(&bytes, &h.encode_to_vec());
    out.extend_from_slice(&bytes[header_end(&bytes)..]);
    let e = read_container(&out).unwrap_err();
    assert!(
        e.to_string().contains("plane block 2 starts at byte"),
        "{e}"
    );
}

#[test]
fn garbage_header_is_a_decode_error() {
    let bytes = fake_container();
    let out = with_raw_header(&bytes, &[0xffu8; 40]);
    let e = read_container(&out).unwrap_err();
    assert!(
        matches!(
            e,
            ContainerError::HeaderDecode {
                start: 24,
                end: 64,
                ..
            }
        ),
        "{e:?}"
    );
    // A header length that overflows the offset arithmetic.
    let mut out = bytes.clone();
    out[12..20].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        read_container(&out),
        Err(ContainerError::TruncatedHeader { .. })
    ));
    // Not a container at all.
    assert!(matches!(
        read_container(b"\x7fELF\x02\x01\x01\x00rest"),
        Err(ContainerError::BadMagic { .. })
    ));
}

// ---------------------------------------------------------------------------------------
// Writer errors

#[test]
fn writer_rejects_bad_plane_tensors() {
    let g = fake_graph(BITS);
    let opts = ContainerOptions::default();
    let one = |n: &str| BTreeSet::from([n.to_string()]);
    assert!(matches!(
        write_container_with_planes(&g, &one("w"), &opts),
        Err(ContainerError::NotPlaneTensor { name, .. }) if name == "w"
    ));
    assert!(matches!(
        write_container_with_planes(&g, &one("nope"), &opts),
        Err(ContainerError::UnknownPlaneTensor { name }) if name == "nope"
    ));
    // Two plane tensors with different plane counts.
    let mut g2 = fake_graph(BITS);
    g2.add_constant(
        "short.planes",
        Tensor::new(vec![4, 1, 8], TensorData::U8(vec![0; 32])).unwrap(),
    );
    let mut names = plane_names();
    names.insert("short.planes".into());
    let e = write_container_with_planes(&g2, &names, &opts).unwrap_err();
    assert!(
        matches!(&e, ContainerError::PlaneCountMismatch { name, planes: 4, expected: 8, .. } if name == "short.planes"),
        "{e}"
    );
    // A graph that does not verify is not written.
    let mut g3 = Graph::new("bad");
    let x = g3.add_input("x", ty(DType::F32, &[Some(2)]));
    let id = g3
        .add_op(
            "r",
            Op::Unary(UnaryOp::Relu),
            &[x],
            vec![strata_ir::Value {
                name: "r".into(),
                ty: ty(DType::F32, &[Some(3)]),
            }],
        )
        .unwrap();
    g3.set_outputs(vec![ValueRef::first(id)]);
    assert!(matches!(
        write_container_with_planes(&g3, &BTreeSet::new(), &opts),
        Err(ContainerError::Verify(_))
    ));
}

// ---------------------------------------------------------------------------------------
// Real bit-plane ops

const LAYERS: [(usize, usize); 2] = [(12, 70), (5, 12)]; // (rows, cols)
const PLANE_COUNTS: [u8; 7] = [2, 3, 4, 5, 6, 7, 8];

/// Weight codes and planes of the two layers (fixed seed).
fn layer_planes() -> Vec<(Vec<i32>, Vec<f32>, Vec<u8>)> {
    let mut rng = XorShift::seeded(42);
    LAYERS
        .iter()
        .map(|&(r, c)| {
            let w: Vec<f32> = (0..r * c).map(|_| rng.unit()).collect();
            let (codes, scales) = quant::quantize_rows(&w, r, c, 8).unwrap();
            let planes = quant::pack_planes(&codes, r, c, 8).unwrap();
            (codes, scales, planes)
        })
        .collect()
}

/// A bit-plane op over 8-bit codes (8-bit activations) with side tables for `plane_counts`.
fn bitplane_op(kernel: BitplaneKernel, plane_counts: &[u8], rows: usize, cols: usize) -> Op {
    let spec = PlaneSpec {
        bits: 8,
        plane_counts: plane_counts.to_vec(),
        act_bits: 8,
        rows,
        cols,
        act_bits_k: vec![],
    };
    Op::Bitplane(Bitplane { kernel, spec })
}

/// Two bit-plane Linear layers with ReLU between, planes cut to `k`.
fn bitplane_graph(k: usize) -> Graph {
    let mut g = Graph::new("vl_mlp");
    let mut x = g.add_input("x", ty(DType::F32, &[None, Some(LAYERS[0].1)]));
    let s = PLANE_COUNTS.len();
    for (l, (&(rows, cols), (_, scales, planes))) in LAYERS.iter().zip(layer_planes()).enumerate() {
        let rb = quant::row_bytes(cols);
        let planes = Tensor::new(
            vec![k, rows, rb],
            TensorData::U8(planes[..k * rows * rb].to_vec()),
        )
        .unwrap();
        let p = g.add_constant(format!("l{l}.planes"), planes);
        let (mut alpha, mut beta, mut bias, mut act) = (vec![], vec![], vec![], vec![]);
        for &kk in &PLANE_COUNTS {
            for (c, &sc) in scales.iter().enumerate() {
                let (a, b) = quant::midpoint_side(sc, 8, kk).unwrap();
                alpha.push(a);
                beta.push(b);
                bias.push(0.01 * c as f32 - 0.02 * kk as f32);
            }
            act.extend([0.02 + 0.001 * kk as f32, (kk as f32) - 4.0]);
        }
        let a = g.add_constant(
            format!("l{l}.alpha"),
            Tensor::from_f32(vec![s, rows], alpha).unwrap(),
        );
        let b = g.add_constant(
            format!("l{l}.beta"),
            Tensor::from_f32(vec![s, rows], beta).unwrap(),
        );
        let bi = g.add_constant(
            format!("l{l}.bias"),
            Tensor::from_f32(vec![s, rows], bias).unwrap(),
        );
        let ac = g.add_constant(
            format!("l{l}.act"),
            Tensor::from_f32(vec![s, 2], act).unwrap(),
        );
        let layer = bitplane_op(BitplaneKernel::Linear, &PLANE_COUNTS, rows, cols);
        let y = op(&mut g, &format!("l{l}"), layer, &[x, p, a, b, bi, ac]);
        x = if l + 1 < LAYERS.len() {
            op(&mut g, &format!("relu{l}"), Op::Unary(UnaryOp::Relu), &[y])
        } else {
            y
        };
    }
    g.set_outputs(vec![x]);
    g
}

#[test]
fn bitplane_ops_round_trip_and_every_prefix_keeps_the_prefix_codes() {
    let g = bitplane_graph(8);
    strata_ir::verify(&g).unwrap();
    let bytes = write_container(&g, &ContainerOptions::default()).unwrap();
    let loaded = read_container(&bytes).unwrap();
    assert_eq!(loaded.graph, g);
    assert_eq!((loaded.bits, loaded.available_planes), (8, 8));
    let h = decode_header(&bytes);
    let block: usize = LAYERS.iter().map(|&(r, c)| r * quant::row_bytes(c)).sum();
    assert_eq!(h.blocks.len(), 8);
    assert!(h.blocks.iter().all(|b| b.length as usize == block));

    let layers = layer_planes();
    for k in 1..=8u8 {
        let stripped = strip_container(&bytes, k).unwrap();
        let loaded = read_container(stripped).unwrap();
        assert_eq!(loaded.available_planes, k);
        assert_eq!(loaded.graph, bitplane_graph(k as usize), "k = {k}");
        // The codes a k-plane model computes with, from the loaded (truncated) planes only,
        // are q_8 >> (8 - k).
        for (l, (&(rows, cols), (codes, _, _))) in LAYERS.iter().zip(&layers).enumerate() {
            let name = format!("l{l}.planes");
            let consts = constants_by_name(&loaded.graph);
            let TensorData::U8(planes) = consts[&name].data() else {
                panic!("{name} not u8")
            };
            assert_eq!(planes.len(), k as usize * rows * quant::row_bytes(cols));
            let q = quant::prefix_codes(planes, rows, cols, k).unwrap();
            let want: Vec<i32> = codes.iter().map(|&c| c >> (8 - k)).collect();
            assert_eq!(q, want, "layer {l}, k = {k}");
        }
    }
}

#[test]
fn bitplane_op_with_non_constant_planes_is_not_written() {
    let (rows, cols) = (3, 8);
    let mut g = Graph::new("dyn");
    let x = g.add_input("x", ty(DType::F32, &[None, Some(cols)]));
    let p = g.add_input("planes", ty(DType::U8, &[Some(8), Some(rows), Some(8)]));
    let side = |g: &mut Graph, n: &str, shape: Vec<usize>| {
        let len = shape.iter().product();
        g.add_constant(n, Tensor::from_f32(shape, vec![1.0; len]).unwrap())
    };
    let a = side(&mut g, "a", vec![1, rows]);
    let b = side(&mut g, "b", vec![1, rows]);
    let bi = side(&mut g, "bi", vec![1, rows]);
    let ac = side(&mut g, "ac", vec![1, 2]);
    let lin = bitplane_op(BitplaneKernel::Linear, &[8], rows, cols);
    let y = op(&mut g, "lin", lin, &[x, p, a, b, bi, ac]);
    g.set_outputs(vec![y]);
    let e = write_container(&g, &ContainerOptions::default()).unwrap_err();
    assert!(
        matches!(&e, ContainerError::PlanesNotConstant { node } if node == "lin"),
        "{e}"
    );
}

#[test]
fn bitplane_ops_with_mixed_bits_are_not_written() {
    let mut g = bitplane_graph(4);
    // The second layer claims another precision.
    let id = g
        .node_ids()
        .find(|&id| g.node(id).unwrap().name == "l1")
        .unwrap();
    if let NodeKind::Op(Op::Bitplane(b)) = &mut g.node_mut(id).unwrap().kind {
        b.spec.bits = 6;
    }
    let e = write_container(&g, &ContainerOptions::default()).unwrap_err();
    assert!(
        matches!(&e, ContainerError::MixedBits { node, bits: 6, first, expected: 8 } if node == "l1" && first == "l0"),
        "{e}"
    );
}

#[test]
fn conv_bitplane_graph_round_trips() {
    let (rows, cin, kh) = (4usize, 2usize, 3usize);
    let cols = cin * kh * kh;
    let mut rng = XorShift::seeded(7);
    let w: Vec<f32> = (0..rows * cols).map(|_| rng.unit()).collect();
    let (codes, scales) = quant::quantize_rows(&w, rows, cols, 8).unwrap();
    let planes = quant::pack_planes(&codes, rows, cols, 8).unwrap();
    let mut g = Graph::new("vl_conv");
    let x = g.add_input("x", ty(DType::F32, &[None, Some(cin), Some(6), Some(6)]));
    let p = g.add_constant(
        "planes",
        Tensor::new(
            vec![8, rows, quant::row_bytes(cols)],
            TensorData::U8(planes),
        )
        .unwrap(),
    );
    let (a, b): (Vec<f32>, Vec<f32>) = scales
        .iter()
        .map(|&s| quant::midpoint_side(s, 8, 8).unwrap())
        .unzip();
    let a = g.add_constant("alpha", Tensor::from_f32(vec![1, rows], a).unwrap());
    let b = g.add_constant("beta", Tensor::from_f32(vec![1, rows], b).unwrap());
    let bi = g.add_constant(
        "bias",
        Tensor::from_f32(vec![1, rows], vec![0.1; rows]).unwrap(),
    );
    let ac = g.add_constant(
        "act",
        Tensor::from_f32(vec![1, 2], vec![0.05, 0.0]).unwrap(),
    );
    let window = Conv {
        kernel: vec![kh, kh],
        strides: vec![1, 1],
        pads: vec![1, 1, 1, 1],
        dilations: vec![1, 1],
        group: 1,
        has_bias: false,
    };
    let conv = bitplane_op(BitplaneKernel::Conv(window), &[8], rows, cols);
    let y = op(&mut g, "conv", conv, &[x, p, a, b, bi, ac]);
    g.set_outputs(vec![y]);
    let bytes = write_container(&g, &ContainerOptions::default()).unwrap();
    let loaded = read_container(&bytes).unwrap();
    assert_eq!(loaded.graph, g);
    // Fewer planes than any side table still loads (the runtime reports the missing k).
    let three = read_container(strip_container(&bytes, 3).unwrap()).unwrap();
    assert_eq!(three.available_planes, 3);
}

#[test]
fn every_flipped_header_byte_behind_a_valid_checksum_never_panics() {
    // The checksum catches accidental damage; this covers deliberate edits: each header byte
    // changed (three ways) with the checksum recomputed must load or fail with an error.
    let bytes = fake_container();
    let end = header_end(&bytes);
    let (mut loaded, mut failed) = (0, 0);
    for at in PREFIX_LEN..end {
        for mask in [0x01u8, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[at] ^= mask;
            let crc = crc32fast::hash(&bad[PREFIX_LEN..end]);
            bad[20..24].copy_from_slice(&crc.to_le_bytes());
            match read_container(&bad) {
                Ok(l) => {
                    // Whatever loads is a consistent model.
                    strata_ir::verify(&l.graph).unwrap();
                    loaded += 1;
                }
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    failed += 1;
                }
            }
        }
    }
    assert!(failed > loaded, "{failed} failed, {loaded} loaded");
}

// ---------------------------------------------------------------------------------------
// Half-precision storage of f32 constants
// ---------------------------------------------------------------------------------------

#[test]
fn half_exact_f32_constants_are_stored_as_f16_and_restored_bit_for_bit() {
    let mut g = fake_graph(BITS);
    // Exactly representable in f16 (including -0.0, a subnormal and ±inf) → f16 payload.
    let exact = vec![
        0.5,
        -0.0,
        6.1035156e-5,
        5.9604645e-8,
        -65504.0,
        f32::INFINITY,
        0.099975586,
        1.0,
    ];
    g.add_constant("side", Tensor::from_f32(vec![2, 4], exact.clone()).unwrap());
    let bytes =
        write_container_with_planes(&g, &plane_names(), &ContainerOptions::default()).unwrap();
    let header = decode_header(&bytes);
    let payload = |name: &str| {
        header
            .tensors
            .iter()
            .find(|t| t.name == name)
            .and_then(|t| t.payload.clone())
            .unwrap()
    };
    match payload("side") {
        Payload::InlineF16(data) => assert_eq!(data.len(), 16),
        other => panic!("expected f16 storage, got {other:?}"),
    }
    // `w` holds sin() values and `b` holds 1e-30: neither is f16-exact, both stay f32.
    assert!(matches!(payload("w"), Payload::Inline(_)));
    assert!(matches!(payload("b"), Payload::Inline(_)));
    let loaded = read_container(&bytes).unwrap();
    let side = constants_by_name(&loaded.graph)["side"].clone();
    let got: Vec<u32> = side.as_f32().unwrap().iter().map(|v| v.to_bits()).collect();
    let want: Vec<u32> = exact.iter().map(|v| v.to_bits()).collect();
    assert_eq!(got, want);
    assert!(loaded.graph == g);
}

#[test]
fn a_malformed_f16_payload_is_a_typed_error() {
    let mut g = fake_graph(BITS);
    g.add_constant(
        "side",
        Tensor::from_f32(vec![4], vec![0.5, 1.0, 2.0, 4.0]).unwrap(),
    );
    let bytes =
        write_container_with_planes(&g, &plane_names(), &ContainerOptions::default()).unwrap();
    let mut header = decode_header(&bytes);
    let entry = header
        .tensors
        .iter_mut()
        .find(|t| t.name == "side")
        .unwrap();
    entry.payload = Some(Payload::InlineF16(vec![0; 6]));
    let err = read_container(&with_header(&bytes, header.clone())).unwrap_err();
    assert!(err.to_string().contains("side"), "{err}");
    let entry = header
        .tensors
        .iter_mut()
        .find(|t| t.name == "side")
        .unwrap();
    entry.dtype = "i32".into();
    entry.payload = Some(Payload::InlineF16(vec![0; 8]));
    assert!(read_container(&with_header(&bytes, header)).is_err());
}
