//! `aarch64`: NEON kernels (`aarch64.c`) with widening multiply-accumulates over the codes
//! (2- and 4-bit codes unpacked with NEON shifts and masks).

use super::{TargetSpec, WeightLayout};

pub(super) const SPEC: TargetSpec = TargetSpec {
    name: "aarch64",
    layout: WeightLayout::Codes,
    includes: &["arm_neon.h"],
    kernels: include_str!("aarch64.c"),
    streams_split_widths: false,
};
