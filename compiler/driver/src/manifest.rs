//! `strata manifest`: what each plane count of a `.strata` model costs on a device (weight,
//! arena and scratch bytes and MACs, as the C backend would emit it) and which count fits a
//! given flash and RAM size, so a build system can pick `K` without trial builds.

use std::collections::BTreeMap;

use strata_ir::Graph;

use crate::backend::c::{stats, CodeBits, EmitOptions, LowerError};
use crate::build::Target;
use crate::model::ContainerInfo;

/// The metadata key `strata eval --record` writes: JSON `{"k": top-1, …}` (top-1 as a
/// fraction) of the integer path on the recorded data.
pub const EVAL_TOP1_KEY: &str = "eval_top1";
/// The metadata key naming the data `eval_top1` was measured on (`path (N samples)`).
pub const EVAL_DATA_KEY: &str = "eval_data";

/// One plane count's footprint.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ManifestRow {
    /// `K`.
    pub planes: u8,
    /// Activation bits at `K` (the widest over the layers; `K` itself for `W k A k`).
    pub act_bits: u8,
    /// Flash: `PREFIX_WEIGHT_BYTES`.
    pub weight_bytes: u64,
    /// `PREFIX_ARENA_BYTES`.
    pub arena_bytes: u64,
    /// `PREFIX_SCRATCH_BYTES`.
    pub scratch_bytes: u64,
    /// RAM the model needs: arena + scratch.
    pub ram_bytes: u64,
    /// `PREFIX_MACS` per inference.
    pub macs: u64,
    /// Top-1 recorded by `strata eval --record`, when the file carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top1: Option<f64>,
}

/// The stored mixed-precision choice, when the container has one.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct MixedRow {
    /// Node name → plane count.
    pub layer_planes: BTreeMap<String, u8>,
    #[serde(flatten)]
    pub footprint: ManifestRow,
}

/// Footprints of every available plane count.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Manifest {
    pub target: &'static str,
    /// The code widths the sizes are for (`--code-bits`, as the target lowers them).
    pub code_bits: &'static str,
    pub planes: Vec<ManifestRow>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mixed: Option<MixedRow>,
    /// Where `top1` comes from, when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top1_data: Option<String>,
}

/// Why a manifest could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Lower(#[from] LowerError),
    #[error(transparent)]
    Build(#[from] crate::build::BuildError),
    #[error("metadata `{EVAL_TOP1_KEY}` is not a JSON map of plane count to top-1: {0}")]
    BadTop1(String),
    #[error("the model has no plane count that every layer can run at")]
    NoPlanes,
    #[error(transparent)]
    Container(#[from] strata_ir::container::ContainerError),
}

/// The container `bytes` rewritten with the top-1 of `report`'s `strata` rows recorded under
/// [`EVAL_TOP1_KEY`] (merged with counts recorded before) and `data` under [`EVAL_DATA_KEY`].
/// The graph, planes and per-layer choice are written back unchanged, so only the metadata
/// differs.
pub fn record_top1(
    bytes: &[u8],
    report: &crate::eval::EvalReport,
    data: &str,
) -> Result<Vec<u8>, ManifestError> {
    let loaded = strata_ir::container::read_container(bytes)?;
    let mut top1: BTreeMap<String, f64> = match loaded.metadata.get(EVAL_TOP1_KEY) {
        Some(text) => {
            serde_json::from_str(text).map_err(|e| ManifestError::BadTop1(e.to_string()))?
        }
        None => BTreeMap::new(),
    };
    for row in report.rows.iter().filter(|r| r.method == "strata") {
        if let Some(k) = row.planes {
            top1.insert(k.to_string(), row.top1);
        }
    }
    let mut metadata = loaded.metadata;
    let json = serde_json::to_string(&top1).map_err(|e| ManifestError::BadTop1(e.to_string()))?;
    metadata.insert(EVAL_TOP1_KEY.into(), json);
    metadata.insert(EVAL_DATA_KEY.into(), data.to_string());
    Ok(strata_ir::container::write_container(
        &loaded.graph,
        &strata_ir::container::ContainerOptions {
            metadata,
            layer_planes: loaded.layer_planes,
            adaptive: loaded.adaptive,
        },
    )?)
}

/// Emits the model at every available plane count (every `k ≤ available_planes` for which
/// all layers have a side table) and collects the sizes the header states.
pub fn manifest(
    graph: &Graph,
    info: &ContainerInfo,
    target: Target,
    code_bits: CodeBits,
) -> Result<Manifest, ManifestError> {
    let top1: BTreeMap<String, f64> = match info.metadata.get(EVAL_TOP1_KEY) {
        Some(text) => {
            serde_json::from_str(text).map_err(|e| ManifestError::BadTop1(e.to_string()))?
        }
        None => BTreeMap::new(),
    };
    let widths = crate::model::act_bits(graph);
    // A row at K reports the width of the largest plane count ≤ K.
    let act_bits_at = |k: u8| widths.range(..=k).next_back().map(|(_, &a)| a).unwrap_or(0);
    let row = |options: &EmitOptions| -> Result<ManifestRow, ManifestError> {
        let s = stats(graph, options)?;
        Ok(ManifestRow {
            planes: options.planes,
            act_bits: act_bits_at(options.planes),
            weight_bytes: s.weight_bytes,
            arena_bytes: s.arena_bytes,
            scratch_bytes: s.scratch_bytes,
            ram_bytes: s.arena_bytes + s.scratch_bytes,
            macs: s.macs,
            top1: None,
        })
    };
    let mut planes = Vec::new();
    for k in 1..=info.available_planes {
        let options = EmitOptions {
            planes: k,
            name: "model".into(),
            target,
            layer_planes: None,
            adaptive: None,
            code_bits,
        };
        match row(&options) {
            Ok(mut r) => {
                r.top1 = top1.get(&k.to_string()).copied();
                planes.push(r);
            }
            // A count without side tables is simply not available.
            Err(ManifestError::Lower(LowerError::Planes { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    if planes.is_empty() {
        return Err(ManifestError::NoPlanes);
    }
    let mixed = if info.layer_planes.is_empty() {
        None
    } else {
        let mut options =
            crate::build::emit_options(graph, info, None, target, "model".into(), "model")?;
        options.code_bits = code_bits;
        Some(MixedRow {
            layer_planes: info
                .default_layer_planes(graph)
                .map_err(|e| ManifestError::BadTop1(e.to_string()))?,
            footprint: row(&options)?,
        })
    };
    Ok(Manifest {
        target: target.name(),
        code_bits: target.code_bits(code_bits).name(),
        planes,
        mixed,
        top1_data: (!top1.is_empty())
            .then(|| info.metadata.get(EVAL_DATA_KEY).cloned())
            .flatten(),
    })
}

/// A size that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("`{text}` is not a size: expected bytes with an optional K, M or G suffix (K = 1024), e.g. 200K, 1.5M, 512")]
pub struct SizeError {
    pub text: String,
}

/// Parses `512`, `200K`, `1.5M`, `2G` (binary units: K = 1024; a trailing `B`/`iB` is
/// allowed). Fractions round down to whole bytes.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let err = || SizeError {
        text: text.to_string(),
    };
    let t = text.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&t[..t.len() - 1], 1 << 20),
        Some('g' | 'G') => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(err());
    }
    let value: f64 = num.parse().map_err(|_| err())?;
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(err());
    }
    Ok(bytes.floor() as u64)
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The plane count chosen for a device, and the reason for every count considered.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Fit {
    /// The largest plane count whose weights fit the flash and whose arena + scratch fit
    /// the RAM; `None` when none does.
    pub chosen: Option<u8>,
    /// One line per plane count, largest first.
    pub reasons: Vec<String>,
}

/// Picks the largest plane count with `weight_bytes ≤ flash` and `ram_bytes ≤ ram`.
pub fn fit(manifest: &Manifest, flash: Option<u64>, ram: Option<u64>) -> Fit {
    let mut chosen = None;
    let mut reasons = Vec::new();
    for r in manifest.planes.iter().rev() {
        let mut fails = Vec::new();
        let mut fine = Vec::new();
        // Each given limit: the row's figure against it, as a reason line.
        let limits = [
            ("weights", r.weight_bytes, "flash ", flash),
            ("RAM (arena + scratch)", r.ram_bytes, "", ram),
        ];
        for (what, have, of, limit) in limits {
            let Some(limit) = limit else { continue };
            let fits = have <= limit;
            let cmp = if fits { "<=" } else { ">" };
            let line = format!(
                "{what} {} B {cmp} {of}{} B",
                thousands(have),
                thousands(limit)
            );
            if fits { &mut fine } else { &mut fails }.push(line);
        }
        if !fails.is_empty() {
            reasons.push(format!("k={}: too big: {}", r.planes, fails.join("; ")));
        } else if chosen.is_none() {
            chosen = Some(r.planes);
            reasons.push(format!(
                "k={}: fits ({}) -> chosen, the largest plane count that fits",
                r.planes,
                fine.join("; ")
            ));
        } else {
            reasons.push(format!(
                "k={}: fits, but k={} is larger",
                r.planes,
                chosen.unwrap_or(0)
            ));
        }
    }
    Fit { chosen, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_binary_units() {
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("200K").unwrap(), 204_800);
        assert_eq!(parse_size("200k").unwrap(), 204_800);
        assert_eq!(parse_size("1M").unwrap(), 1_048_576);
        assert_eq!(parse_size("1.5M").unwrap(), 1_572_864);
        assert_eq!(parse_size("64KiB").unwrap(), 65_536);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        for bad in ["", "K", "-5", "1.2.3K", "12Q", "1e3", "abc"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(thousands(221_140), "221,140");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    fn row(planes: u8, weight_bytes: u64, ram_bytes: u64) -> ManifestRow {
        ManifestRow {
            planes,
            act_bits: 8,
            weight_bytes,
            arena_bytes: ram_bytes,
            scratch_bytes: 0,
            ram_bytes,
            macs: 0,
            top1: None,
        }
    }

    #[test]
    fn fit_picks_the_largest_count_that_fits_and_says_why() {
        let m = Manifest {
            target: "generic",
            code_bits: "fast",
            planes: vec![row(2, 100, 50), row(4, 200, 50), row(8, 400, 50)],
            mixed: None,
            top1_data: None,
        };
        let f = fit(&m, Some(250), Some(64));
        assert_eq!(f.chosen, Some(4));
        assert_eq!(f.reasons[0], "k=8: too big: weights 400 B > flash 250 B");
        assert!(f.reasons[1].starts_with("k=4: fits"), "{:?}", f.reasons);
        assert_eq!(f.reasons[2], "k=2: fits, but k=4 is larger");
        assert_eq!(fit(&m, Some(250), Some(10)).chosen, None);
        assert_eq!(fit(&m, Some(50), None).chosen, None);
        assert_eq!(fit(&m, None, None).chosen, Some(8));
    }
}
