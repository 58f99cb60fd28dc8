//! Output paths that are not regular files: refused by default (the crafted cases in
//! `strata.rs`), written into with `--write-in-place`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{base, scratch};

/// `strata strip <base> --planes 2 -o <out> [extra…]`.
fn strip_to(out: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("strip")
        .arg(&base().strata)
        .args(["--planes", "2", "-o"])
        .arg(out)
        .args(extra)
        .output()
        .expect("strata runs")
}

/// `dir/target.strata` holding `content`, and `dir/link.strata` pointing at it.
fn linked_target(dir: &Path, content: &[u8]) -> (PathBuf, PathBuf) {
    let target = dir.join("target.strata");
    std::fs::write(&target, content).unwrap();
    let link = dir.join("link.strata");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    (target, link)
}

fn is_symlink(p: &Path) -> bool {
    std::fs::symlink_metadata(p)
        .unwrap()
        .file_type()
        .is_symlink()
}

#[test]
fn a_refused_symlink_is_left_as_it_was() {
    let dir = scratch("symlink-kept");
    let (target, link) = linked_target(&dir, b"precious");
    let out = strip_to(&link, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(is_symlink(&link));
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "no temporary file is left: {names:?}");
}

#[test]
fn write_in_place_follows_a_symlink_and_feeds_a_fifo() {
    let dir = scratch("in-place");
    let (target, link) = linked_target(&dir, b"old");
    let in_place = |out: &Path| strip_to(out, &["--write-in-place"]);
    let out = in_place(&link);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(is_symlink(&link));
    let full = std::fs::read(&base().strata).unwrap();
    let written = std::fs::read(&target).unwrap();
    assert!(
        written.len() < full.len() && full.starts_with(&written),
        "a 2-plane prefix"
    );
    // A FIFO is fed, and stays a FIFO (a device the same way; /dev is not touched here).
    let fifo = dir.join("fifo.strata");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let out = in_place(&fifo);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(reader.join().unwrap(), written);
    assert!(!std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_file());
}
