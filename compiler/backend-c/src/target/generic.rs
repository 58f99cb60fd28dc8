//! `generic`: portable scalar C99 over the codes, unpacked as they are read (see `generic.c`).

use super::{TargetSpec, WeightLayout};

pub(super) const SPEC: TargetSpec = TargetSpec {
    name: "generic",
    layout: WeightLayout::Codes,
    includes: &[],
    kernels: include_str!("generic.c"),
    streams_split_widths: false,
};
