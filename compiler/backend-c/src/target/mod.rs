//! Code-generation targets of the C backend. Every target emits the same header and API; they
//! differ in how the weights are laid out and in the inner kernels (one file per target).

mod aarch64;
mod armv7m;
mod generic;
mod x86_64_v3;

use std::fmt;
use std::str::FromStr;

pub use strata_lower::WeightLayout;

/// The machine the emitted C is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Target {
    /// Portable scalar C99 over the codes (K bits a code): runs anywhere.
    #[default]
    Generic,
    /// x86-64 with AVX2 (`-march=x86-64-v3`): vpmaddubsw byte products up to 6 planes,
    /// vpmaddwd int16 dot products above; vpdpbusd at every count when compiled with VNNI
    /// (AVX512-VNNI and AVX512-VL, or AVX-VNNI).
    X86_64V3,
    /// AArch64 with NEON: widening multiply-accumulate (vmlal).
    Aarch64,
    /// Cortex-M class: weights stay packed bit-planes (flash scales with K), integer-only
    /// inner loops, no SIMD or FPU assumed in them.
    Armv7m,
}

/// What the emitter needs from a target.
pub(crate) struct TargetSpec {
    /// The name `--target` takes.
    pub name: &'static str,
    pub layout: WeightLayout,
    /// Extra headers the kernels need (intrinsics).
    pub includes: &'static [&'static str],
    /// C text defining `BQ_PT` (output positions per tile), `bq_quant`, `bq_tile`, `bq_tile1`
    /// (for [`WeightLayout::Codes`]), in sections `kcommon`, `ktile`, `ktile1`.
    pub kernels: &'static str,
    /// Whether its fully connected kernel streams split code widths (4-, 2- and 1-bit parts)
    /// at close to memory speed, so [`CodeBits::Stream`](strata_lower::CodeBits::Stream)
    /// may store them; without one, streaming lowers as the fast widths.
    pub streams_split_widths: bool,
}

impl Target {
    /// Every target, in `--target` help order.
    pub const ALL: [Target; 4] = [
        Target::Generic,
        Target::X86_64V3,
        Target::Aarch64,
        Target::Armv7m,
    ];

    pub(crate) fn spec(self) -> &'static TargetSpec {
        match self {
            Target::Generic => &generic::SPEC,
            Target::X86_64V3 => &x86_64_v3::SPEC,
            Target::Aarch64 => &aarch64::SPEC,
            Target::Armv7m => &armv7m::SPEC,
        }
    }

    /// How the target stores bit-plane weights: what the lowering lays them out as.
    pub fn layout(self) -> WeightLayout {
        self.spec().layout
    }

    /// The code widths `code_bits` asks for, as this target lowers them.
    pub fn code_bits(self, code_bits: strata_lower::CodeBits) -> strata_lower::CodeBits {
        match code_bits {
            strata_lower::CodeBits::Stream if !self.spec().streams_split_widths => {
                strata_lower::CodeBits::Fast
            }
            c => c,
        }
    }

    /// The name used on the command line and in the generated files.
    pub fn name(self) -> &'static str {
        self.spec().name
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown `--target` name; the message lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown C target `{0}` (valid: generic, x86-64-v3, aarch64, armv7m)")]
pub struct UnknownTarget(pub String);

impl FromStr for Target {
    type Err = UnknownTarget;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Target::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| UnknownTarget(s.to_string()))
    }
}

#[cfg(feature = "clap")]
impl clap::ValueEnum for Target {
    fn value_variants<'a>() -> &'a [Self] {
        &Self::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_lists_all() {
        for t in Target::ALL {
            assert_eq!(t.name().parse::<Target>().unwrap(), t);
            assert_eq!(t.to_string(), t.name());
        }
        let e = "cortex".parse::<Target>().unwrap_err().to_string();
        assert!(e.contains("`cortex`") && e.contains("x86-64-v3") && e.contains("armv7m"));
    }
}
