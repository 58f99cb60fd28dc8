//! `armv7m`: Cortex-M class. The weights stay packed bit-planes, so flash grows with `K`
//! (`K/8` bytes per weight), and the dot products are integer-only loops over the plane bits
//! with 32-bit partial sums (the prelude's `bp_dot`); only the per-channel epilogue uses
//! float, which an FPU-less core runs in soft-float.

use super::{TargetSpec, WeightLayout};

pub(super) const SPEC: TargetSpec = TargetSpec {
    name: "armv7m",
    layout: WeightLayout::Planes,
    includes: &[],
    kernels: "",
    streams_split_widths: false,
};
