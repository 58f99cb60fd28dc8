//! Which instruction sets the integer kernels may use: what this CPU has, capped by the
//! `STRATA_ISA` environment variable, read once per process.
//!
//! Every path computes the same integers, so the cap never changes a result; it reproduces
//! another machine's kernel choice (an AVX2-only server's, a CPU without AVX2's) for timing,
//! and lets one machine run every dispatch path through the layer tests
//! (`runtime/tests/bitplane.rs` runs itself again under each cap).

use std::sync::OnceLock;

/// The environment variable that caps the instruction sets.
pub const ISA_ENV: &str = "STRATA_ISA";

/// The most the integer kernels may use, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum IsaCap {
    /// Portable Rust only (what a CPU without AVX2 runs).
    Portable,
    /// Up to AVX2 (`vpmaddwd`, `vpmaddubsw`): what an x86-64-v3 CPU without AVX-512 runs.
    Avx2,
    /// Whatever the CPU has (AVX-512 VNNI's `vpdpbusd` and `vpdpwssd` included): the default.
    Native,
}

/// `STRATA_ISA` holds a value that is not a cap.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ISA_ENV}=`{0}` is not one of portable, avx2, native")]
pub struct BadIsaCap(pub String);

impl std::str::FromStr for IsaCap {
    type Err = BadIsaCap;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "portable" => Ok(IsaCap::Portable),
            "avx2" => Ok(IsaCap::Avx2),
            "native" | "" => Ok(IsaCap::Native),
            other => Err(BadIsaCap(other.to_string())),
        }
    }
}

/// The cap `STRATA_ISA` asks for (unset: [`IsaCap::Native`]); an error for any other value,
/// which front ends report before running anything (the kernels then use no cap).
pub fn cap_from_env() -> Result<IsaCap, BadIsaCap> {
    match std::env::var(ISA_ENV) {
        Ok(v) => v.parse(),
        Err(std::env::VarError::NotPresent) => Ok(IsaCap::Native),
        Err(std::env::VarError::NotUnicode(v)) => Err(BadIsaCap(v.to_string_lossy().into())),
    }
}

/// The cap in force for this process (read on first use; an invalid value means none).
pub fn cap() -> IsaCap {
    static CAP: OnceLock<IsaCap> = OnceLock::new();
    *CAP.get_or_init(|| cap_from_env().unwrap_or(IsaCap::Native))
}

/// Whether the kernels may use AVX2 here.
#[cfg(target_arch = "x86_64")]
pub(crate) fn avx2() -> bool {
    cap() >= IsaCap::Avx2 && std::is_x86_feature_detected!("avx2")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_parse_and_order() {
        assert_eq!("portable".parse(), Ok(IsaCap::Portable));
        assert_eq!(" avx2 ".parse(), Ok(IsaCap::Avx2));
        assert_eq!("native".parse(), Ok(IsaCap::Native));
        assert_eq!("".parse(), Ok(IsaCap::Native));
        let e = "avx512".parse::<IsaCap>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "STRATA_ISA=`avx512` is not one of portable, avx2, native"
        );
        assert!(IsaCap::Portable < IsaCap::Avx2 && IsaCap::Avx2 < IsaCap::Native);
    }
}
