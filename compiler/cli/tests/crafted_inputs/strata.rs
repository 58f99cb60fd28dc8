//! Crafted `.strata` containers, read by `strata inspect` (and written by `strata strip`):
//! every prefix, header, block-table, directory and graph-text case, with the checksums
//! re-signed where the case is about what lies behind them.

use std::path::Path;

use prost::Message;
use strata_ir::container::format::{Header, Payload};
use strata_ir::container::PREFIX_LEN;

use crate::harness::{base, scratch, Case, Format};

/// The container with its header decoded, changed by `edit`, re-encoded and re-signed; the
/// blocks move with the header's new length and keep their checksums.
pub fn edit_header(file: &[u8], edit: impl FnOnce(&mut Header)) -> Vec<u8> {
    let len = u64::from_le_bytes(file[12..20].try_into().unwrap()) as usize;
    let mut header = Header::decode(&file[PREFIX_LEN..PREFIX_LEN + len]).expect("base header");
    edit(&mut header);
    let shift = header.encoded_len() as i64 - len as i64;
    for block in &mut header.blocks {
        block.offset = block.offset.wrapping_add(shift as u64);
    }
    with_header(file, len, &header.encode_to_vec())
}

/// The container with its header bytes replaced by `bytes` (length and CRC re-signed).
pub fn with_header(file: &[u8], old_len: usize, bytes: &[u8]) -> Vec<u8> {
    let mut out = file[..12].to_vec();
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(bytes).to_le_bytes());
    out.extend_from_slice(bytes);
    out.extend_from_slice(&file[PREFIX_LEN + old_len..]);
    out
}

pub fn cases() -> Vec<Case> {
    let dir = scratch("strata");
    let b = base();
    let good = std::fs::read(&b.strata).unwrap();
    let header_len = u64::from_le_bytes(good[12..20].try_into().unwrap()) as usize;
    let inspect =
        |name: &'static str, path: &Path| Case::new(Format::Strata, name, &[&"inspect", &path]);
    let file = |name: &'static str, bytes: Vec<u8>| {
        let p = dir.join(format!("{name}.strata"));
        std::fs::write(&p, bytes).unwrap();
        inspect(name, &p)
    };
    let patched = |at: usize, bytes: &[u8]| {
        let mut f = good.clone();
        f[at..at + bytes.len()].copy_from_slice(bytes);
        f
    };
    let header = |edit: &dyn Fn(&mut Header)| edit_header(&good, edit);
    let first_inline = Header::decode(&good[PREFIX_LEN..PREFIX_LEN + header_len])
        .unwrap()
        .tensors
        .iter()
        .position(|t| {
            matches!(
                t.payload,
                Some(Payload::Inline(_)) | Some(Payload::InlineF16(_))
            )
        })
        .expect("the base has an inline tensor");
    let first_planes = Header::decode(&good[PREFIX_LEN..PREFIX_LEN + header_len])
        .unwrap()
        .tensors
        .iter()
        .position(|t| matches!(t.payload, Some(Payload::Planes(_))))
        .expect("the base has a plane tensor");

    let subdir = |name: &str| {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    };
    let link = dir.join("link.strata");
    std::os::unix::fs::symlink(&b.strata, &link).unwrap();
    let fifo = dir.join("fifo.strata");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let strip_to = |name: &'static str, out: &Path, planes: &str| {
        Case::new(
            Format::Strata,
            name,
            &[&"strip", &b.strata, &"--planes", &planes, &"-o", &out],
        )
    };

    vec![
        file("ten_bytes", good[..10].to_vec())
            .says(&["file is 10 bytes, too short for the version"]),
        file("bad_magic", patched(1, b"X")).says(&["not the .strata magic"]),
        file("version_2", patched(8, &2u32.to_le_bytes())).says(&["container version 2"]),
        file(
            "header_length_u64_max",
            patched(12, &u64::MAX.to_le_bytes()),
        )
        .says(&["extends past the end of the file"]),
        file(
            "header_checksum",
            patched(PREFIX_LEN + 3, &[good[PREFIX_LEN + 3] ^ 0x40]),
        )
        .says(&["checksum", "expected"]),
        file(
            "header_does_not_decode",
            with_header(&good, header_len, &[0xff; 40]),
        )
        .says(&["does not decode"]),
        file("bits_out_of_range", header(&|h| h.bits = 1000))
            .says(&["bits = 1000 is out of range"]),
        file("more_blocks_than_bits", header(&|h| h.bits = 1))
            .says(&["4 plane blocks for bits = 1"]),
        file(
            "block_offset_off_by_one",
            header(&|h| h.blocks[1].offset += 1),
        )
        .says(&["plane block 1 starts at byte"]),
        file(
            "block_length_overflows",
            header(&|h| h.blocks[3].length = u64::MAX),
        )
        .says(&["plane block 3 length 18446744073709551615 overflows"]),
        file("cut_inside_last_block", good[..good.len() - 1].to_vec())
            .says(&["inside plane block 3"]),
        file("trailing_bytes", [&good[..], b"extra"].concat())
            .says(&["5 unexpected bytes after the last plane block"]),
        file(
            "block_checksum",
            patched(good.len() - 1, &[good[good.len() - 1] ^ 1]),
        )
        .says(&["plane block 3", "checksum"]),
        file("no_block_present", good[..PREFIX_LEN + header_len].to_vec())
            .says(&["no plane block is present"]),
        file(
            "tensor_shape_overflows",
            header(&|h| h.tensors[first_inline].shape = vec![u64::MAX, 2]),
        )
        .says(&["is too large"]),
        file(
            "tensor_shape_2pow40_no_data",
            header(&|h| h.tensors[first_inline].shape = vec![1 << 40]),
        )
        .says(&["[1099511627776]"]),
        file(
            "tensor_unknown_dtype",
            header(&|h| h.tensors[first_inline].dtype = "f128".into()),
        )
        .says(&["unknown element type `f128`"]),
        file(
            "tensor_listed_twice",
            header(&|h| {
                let t = h.tensors[first_inline].clone();
                h.tensors.push(t);
            }),
        )
        .says(&["listed twice in the directory"]),
        file(
            "tensor_without_data",
            header(&|h| h.tensors[first_inline].payload = None),
        )
        .says(&["has no data"]),
        file(
            "plane_layout_rows",
            header(&|h| {
                if let Some(Payload::Planes(l)) = &mut h.tensors[first_planes].payload {
                    l.rows += 1;
                }
            }),
        )
        .says(&["does not match shape"]),
        file(
            "graph_text_garbage",
            header(&|h| h.graph = "graph @x(".into()),
        )
        .says(&["graph text in the header: line 1"]),
        file(
            "graph_text_input_dims_overflow",
            header(&|h| {
                h.graph = h
                    .graph
                    .replacen("f32[N,1,4,4]", "f32[N,18446744073709551615,4,4]", 1)
            }),
        )
        .says(&["input `x`", "more elements than fit in 64 bits"]),
        file(
            "layer_planes_not_a_count",
            header(&|h| {
                h.layer_planes.insert("conv1".into(), 300);
            }),
        )
        .says(&["300 is not a plane count"]),
        inspect("a_directory", &subdir("dir.strata")).says(&["is a directory, not a regular file"]),
        // Outputs: a symlink or a FIFO at the output path is refused, not replaced.
        strip_to("output_is_a_symlink", &link, "2").says(&[
            "is a symbolic link, not a regular file: refusing to replace it",
            "--write-in-place",
        ]),
        strip_to("output_is_a_fifo", &fifo, "2").says(&["is a FIFO, not a regular file"]),
        strip_to("strip_more_planes_than_present", &dir.join("x.strata"), "9")
            .says(&["cannot keep 9 planes: the container holds 4"]),
    ]
}
