//! Enables `strata_avx512` when the compiler has the AVX-512 intrinsics (stable since Rust
//! 1.89), so the crate keeps building on its older minimum supported Rust version; the
//! AVX-512 kernels are then picked at run time only on CPUs that have the features.

use std::process::Command;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(strata_avx512)");
    println!("cargo:rerun-if-env-changed=RUSTC");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let minor = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        // "rustc 1.95.0 (…)"
        .and_then(|v| {
            v.split_whitespace()
                .nth(1)?
                .split('.')
                .nth(1)?
                .parse::<u32>()
                .ok()
        });
    if minor.is_some_and(|m| m >= 89) {
        println!("cargo:rustc-cfg=strata_avx512");
    }
}
