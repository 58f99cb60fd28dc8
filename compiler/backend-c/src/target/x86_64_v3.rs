//! `x86-64-v3`: AVX2 kernels (`x86_64_v3.c`): at up to 6 planes (run or stored), activation
//! bytes times s8 codes with `vpmaddubsw`, summed in int16 as long as that is exact, so fewer
//! planes take fewer instructions; above, int8 codes sign-extended to int16 and multiplied
//! with `vpmaddwd`. Vectorised activation quantization. Compiled for a CPU with VNNI
//! (AVX512-VNNI and AVX512-VL, or AVX-VNNI; `-march=native` there), the byte kernels use
//! `vpdpbusd` at every count instead (same integer sums); no 512-bit kernels.

use super::{TargetSpec, WeightLayout};

pub(super) const SPEC: TargetSpec = TargetSpec {
    name: "x86-64-v3",
    layout: WeightLayout::Codes,
    includes: &["immintrin.h"],
    kernels: include_str!("x86_64_v3.c"),
    // bq_tile1_parts: each part at the cost of a packed width (README: C backend).
    streams_split_widths: true,
};
