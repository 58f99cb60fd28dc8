//! Crafted `.npy` inputs, read by `strata run`: headers that once hung the parser or were
//! allocated before being checked, sizes that overflow, and files that are not files.

use std::path::{Path, PathBuf};

use crate::harness::{base, scratch, Case, Format};

/// A `.npy` file: magic, version `major.0`, the header length field and the header text.
pub fn npy(major: u8, header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[major, 0]);
    if major == 1 {
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

fn dict(descr: &str, fortran: &str, shape: &str) -> Vec<u8> {
    format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}\n").into_bytes()
}

/// A version-1 file with a well-formed header dict: its case name, `descr`, `fortran_order`
/// and `shape`, the bytes of data after the header, and what the message says.
type DictCase<'a> = (
    &'static str,
    &'a str,
    &'a str,
    &'a str,
    usize,
    &'a [&'static str],
);

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

pub fn cases() -> Vec<Case> {
    let dir = scratch("npy");
    let b = base();
    let out = dir.join("out");
    let run = |name: &'static str, input: &Path| {
        Case::new(
            Format::Npy,
            name,
            &[&"run", &b.sir, &"--input", &input, &"--out", &out],
        )
    };
    let file = |name: &'static str, bytes: Vec<u8>| run(name, &write(&dir, name, &bytes));

    let braces = |n: usize| format!("{}{}", "{".repeat(n), "}".repeat(n)).into_bytes();
    // A sparse file past the file-size limit: measured, never read.
    let huge = dir.join("huge_sparse.npy");
    let f = std::fs::File::create(&huge).unwrap();
    f.set_len(strata_ir::limits::MAX_FILE_BYTES + 1).unwrap();
    drop(f);

    let rank_65 = format!("({})", "1,".repeat(65));
    #[rustfmt::skip]
    let dicts: [DictCase; 10] = [
        ("shape_product_overflows", "<f4", "False", "(4294967296, 4294967296, 16)", 0,
            &["more elements than fit in 64 bits"]),
        ("shape_beyond_element_cap", "|u1", "False", "(8589934592,)", 0, &["more than the limit of 4294967296"]),
        ("empty_axis_with_huge_dim", "<f4", "False", "(0, 18446744073709551615)", 0,
            &["spans 18446744073709551615 elements"]),
        // 1 GiB of data claimed, none present: checked against the file, not allocated.
        ("claims_1gib_holds_nothing", "<f4", "False", "(16777216, 1, 4, 4)", 0,
            &["header declares shape", "1073741824 bytes of data", "0 bytes after the header"]),
        ("one_byte_short", "<f4", "False", "(1, 1, 4, 4)", 63, &["64 bytes of data", "63 bytes after the header"]),
        ("dimension_past_64_bits", "<f4", "False", "(99999999999999999999999,)", 0, &["does not fit in 64 bits"]),
        ("rank_65", "<f4", "False", &rank_65, 0, &["more than 64 dimensions"]),
        ("negative_dimension", "<f4", "False", "(-1, 1, 4, 4)", 0, &["non-negative integer"]),
        ("complex_dtype", "<c8", "False", "(1,)", 8, &["element type `<c8` is not supported"]),
        ("fortran_order", "<f4", "True", "(1, 1, 4, 4)", 64, &["Fortran-ordered"]),
    ];
    let mut cases: Vec<Case> = dicts
        .iter()
        .map(|&(name, descr, fortran, shape, len, says)| {
            file(name, npy(1, &dict(descr, fortran, shape), &vec![0; len])).says(says)
        })
        .collect();
    cases.extend([
        // The header parser once backtracked exponentially: 24 braces never finished.
        file("nested_braces_24", npy(1, &braces(24), &[])).says(&["expected a quoted string"]),
        file("nested_braces_5000", npy(1, &braces(5000), &[])).says(&["header byte 1"]),
        // A header length near 4 GiB was allocated before anything was read.
        file(
            "header_length_4gib",
            b"\x93NUMPY\x02\x00\xff\xff\xff\xff{}".to_vec(),
        )
        .says(&["header length field says 4294967295 bytes"]),
        file("header_past_limit", npy(2, &vec![b' '; 1 << 20], &[]))
            .says(&["more than the limit of 10000"]),
        // A long unparseable header is quoted, not echoed whole.
        file("junk_header_quoted_short", npy(1, &vec![b'x'; 9000], &[]))
            .says(&["expected `{`", "more bytes"]),
        file(
            "structured_dtype",
            npy(
                1,
                b"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}",
                &[0; 4],
            ),
        )
        .says(&["structured arrays"]),
        file(
            "duplicate_key",
            npy(1, b"{'descr': '<f4', 'descr': '<f4'}", &[]),
        )
        .says(&["key `descr` given twice"]),
        file(
            "missing_shape",
            npy(1, b"{'descr': '<f4', 'fortran_order': False}", &[]),
        )
        .says(&["no `shape` key"]),
        file("bad_magic", b"\x93NUMPZ\x01\x00\x02\x00{}".to_vec()).says(&["magic"]),
        file("version_9", npy(9, b"{}", &[])).says(&["format version 9.0"]),
        file("ends_in_length_field", b"\x93NUMPY\x01\x00\x05".to_vec())
            .says(&["ends inside the header length"]),
        run("a_directory", &dir).says(&["is a directory, not a regular file"]),
        // An endless device is refused, not read until memory runs out.
        run("dev_zero", Path::new("/dev/zero"))
            .says(&["is a character device, not a regular file"]),
        run("sparse_past_file_limit", &huge).says(&["more than the limit of 4296015872 bytes"]),
    ]);
    cases
}
