//! `aarch64`: NEON kernels (`aarch64.c`) with widening multiply-accumulates over int8 codes.

use super::{TargetSpec, WeightLayout};

pub(super) const SPEC: TargetSpec = TargetSpec {
    name: "aarch64",
    layout: WeightLayout::Codes,
    includes: &["arm_neon.h"],
    kernels: include_str!("aarch64.c"),
};
