//! `generic`: portable scalar C99 over unpacked int8 codes (see `generic.c`).

use super::{Layout, TargetSpec};

pub(super) const SPEC: TargetSpec = TargetSpec {
    name: "generic",
    layout: Layout::Codes,
    includes: &[],
    kernels: include_str!("generic.c"),
};
