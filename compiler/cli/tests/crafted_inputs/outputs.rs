//! Output paths that are not regular files: refused by default (the crafted cases in
//! `strata.rs`), written into with `--write-in-place`.

use std::process::Command;

use crate::harness::{base, scratch};

fn strata(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .expect("strata runs")
}

#[test]
fn a_refused_symlink_is_left_as_it_was() {
    let dir = scratch("symlink-kept");
    let target = dir.join("target.strata");
    std::fs::write(&target, b"precious").unwrap();
    let link = dir.join("link.strata");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let out = strata(&[
        "strip".as_ref(),
        base().strata.as_os_str(),
        "--planes".as_ref(),
        "2".as_ref(),
        "-o".as_ref(),
        link.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
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
    let target = dir.join("target.strata");
    std::fs::write(&target, b"old").unwrap();
    let link = dir.join("link.strata");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let strip_to = |out: &std::path::Path| {
        strata(&[
            "strip".as_ref(),
            base().strata.as_os_str(),
            "--planes".as_ref(),
            "2".as_ref(),
            "-o".as_ref(),
            out.as_os_str(),
            "--write-in-place".as_ref(),
        ])
    };
    let out = strip_to(&link);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
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
    let out = strip_to(&fifo);
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
