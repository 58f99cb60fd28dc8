//! One module per command: its `#[derive(Args)]` and the function that runs it. Library
//! logic lives in `strata-compiler`; these modules parse, call and print.

pub mod bench;
pub mod compile;
pub mod emit_c;
pub mod eval;
pub mod inspect;
pub mod manifest;
pub mod opt;
pub mod run;
pub mod strip;

use std::path::Path;

use anyhow::{Context, Result};

/// Writes `bytes` to `path` atomically, naming the file on failure.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    strata_compiler::npy::write_atomic(path, bytes)
        .with_context(|| format!("writing {}", path.display()))
}

/// clap parser for sizes such as `200K` (K = 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    strata_compiler::manifest::parse_size(text).map_err(|e| e.to_string())
}
