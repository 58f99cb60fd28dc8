//! Running the `strata` binary from the CLI's integration tests.
//!
//! Cargo tells only the CLI package's own tests where its binary is
//! (`CARGO_BIN_EXE_strata`), so each test file expands [`strata_cli!`] to get `strata`,
//! `ok` and `fails` bound to it.

use std::path::Path;
use std::process::{Command, Output};

/// Runs the binary at `bin` with `args`.
pub fn run(bin: &Path, args: &[&str]) -> Output {
    Command::new(bin)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{} does not run: {e}", bin.display()))
}

/// Runs `bin` and returns its stdout; fails the test if it fails.
#[track_caller]
pub fn ok(bin: &Path, args: &[&str]) -> String {
    let out = run(bin, args);
    assert!(
        out.status.success(),
        "strata {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("stdout is UTF-8")
}

/// Runs `bin` expecting failure and returns its stderr.
#[track_caller]
pub fn fails(bin: &Path, args: &[&str]) -> String {
    let out = run(bin, args);
    assert!(
        !out.status.success(),
        "strata {args:?} unexpectedly succeeded"
    );
    String::from_utf8(out.stderr).expect("stderr is UTF-8")
}

/// Defines `strata(args) -> Output`, `ok(args) -> String` (stdout, must succeed) and
/// `fails(args) -> String` (stderr, must fail) for the `strata` binary of the calling
/// test crate.
#[macro_export]
macro_rules! strata_cli {
    () => {
        #[allow(dead_code)]
        fn strata(args: &[&str]) -> std::process::Output {
            $crate::cli::run(std::path::Path::new(env!("CARGO_BIN_EXE_strata")), args)
        }
        #[allow(dead_code)]
        #[track_caller]
        fn ok(args: &[&str]) -> String {
            $crate::cli::ok(std::path::Path::new(env!("CARGO_BIN_EXE_strata")), args)
        }
        #[allow(dead_code)]
        #[track_caller]
        fn fails(args: &[&str]) -> String {
            $crate::cli::fails(std::path::Path::new(env!("CARGO_BIN_EXE_strata")), args)
        }
    };
}
