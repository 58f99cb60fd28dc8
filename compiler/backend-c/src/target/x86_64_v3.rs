//! `x86-64-v3`: AVX2 kernels (`x86_64_v3.c`): int8 codes sign-extended to int16 and
//! multiplied with `vpmaddwd`, exact at every plane count; vectorised activation quantization.
//! No AVX-512 path: this project's benchmark machine has no AVX-512, and the int8 codes need
//! no popcount (VPOPCNTDQ would only pay for the bit-serial `W k A k` mode).

use super::{TargetSpec, WeightLayout};

pub(super) const SPEC: TargetSpec = TargetSpec {
    name: "x86-64-v3",
    layout: WeightLayout::Codes,
    includes: &["immintrin.h"],
    kernels: include_str!("x86_64_v3.c"),
};
