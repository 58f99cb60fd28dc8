//! How many activation bits each plane count uses: one width for every count (`W k A8`, the
//! default) or the plane count itself (`W k A k`, activations as narrow as the weights, what
//! bit-serial AND + popcount kernels want). The one rule every pass, the CLI and the
//! container's provenance read, so "A at plane count k" has a single definition.

use std::fmt;
use std::str::FromStr;

use super::{MAX_BITS, MIN_BITS};

/// The activation bit-width rule of a quantized model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ActBits {
    /// `A` bits at every plane count.
    Fixed(u8),
    /// `W k A k`: plane count `k` quantizes its activations to `max(k, MIN_BITS)` bits
    /// (at most [`MAX_BITS`]); 1-bit activations are not supported.
    Planes,
}

impl Default for ActBits {
    fn default() -> Self {
        ActBits::Fixed(8)
    }
}

impl ActBits {
    /// The activation bits of plane count `k`.
    pub fn of(self, k: u8) -> u8 {
        match self {
            ActBits::Fixed(a) => a,
            ActBits::Planes => k.clamp(MIN_BITS, MAX_BITS),
        }
    }

    /// The activation bits of each plane count in `counts`, in order.
    pub fn per_count(self, counts: &[u8]) -> Vec<u8> {
        counts.iter().map(|&k| self.of(k)).collect()
    }
}

/// The text form is what `--act-bits` and `vl-quantize{act-bits=…}` accept: a width, or
/// `planes` (alias `k`).
impl fmt::Display for ActBits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ActBits::Fixed(a) => write!(f, "{a}"),
            ActBits::Planes => f.write_str("planes"),
        }
    }
}

impl FromStr for ActBits {
    type Err = String;

    /// `planes`/`k`, or a width in `MIN_BITS..=MAX_BITS`; the error says what is accepted.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("planes") || s.eq_ignore_ascii_case("k") {
            return Ok(ActBits::Planes);
        }
        let accepted = format!("a width in {MIN_BITS}..={MAX_BITS}, or `planes` (W k A k)");
        match s.parse::<u8>() {
            Ok(a) if (MIN_BITS..=MAX_BITS).contains(&a) => Ok(ActBits::Fixed(a)),
            Ok(a) => Err(format!("{a} is not {accepted}")),
            Err(_) => Err(format!("`{s}` is not {accepted}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_per_plane_count() {
        assert_eq!(ActBits::Fixed(8).per_count(&[2, 4, 8]), [8, 8, 8]);
        assert_eq!(ActBits::Planes.per_count(&[1, 2, 3, 6, 8]), [2, 2, 3, 6, 8]);
        assert_eq!(ActBits::default(), ActBits::Fixed(8));
    }

    #[test]
    fn text_round_trips_and_rejects() {
        for a in [ActBits::Fixed(2), ActBits::Fixed(8), ActBits::Planes] {
            assert_eq!(a.to_string().parse::<ActBits>().unwrap(), a);
        }
        assert_eq!("K".parse::<ActBits>().unwrap(), ActBits::Planes);
        assert_eq!(" 6 ".parse::<ActBits>().unwrap(), ActBits::Fixed(6));
        for bad in ["1", "9", "0", "-3", "", "eight", "300"] {
            let e = bad.parse::<ActBits>().unwrap_err();
            assert!(e.contains("planes"), "{bad}: {e}");
        }
    }
}
