//! `generic`: portable scalar C99 over unpacked int8 codes (see `generic.c`).

use super::{TargetSpec, WeightLayout};

pub(super) const SPEC: TargetSpec = TargetSpec {
    name: "generic",
    layout: WeightLayout::Codes,
    includes: &[],
    kernels: include_str!("generic.c"),
};
