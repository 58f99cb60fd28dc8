//! The QAT tables sidecar (`*.tables.npz`, docs/qat-tables.md): reading it into
//! [`QatTables`] and checking everything the file alone can say (entries present, dtypes,
//! shapes, global values, complete groups). What only the graph can say (a table per layer,
//! `R`, finite values, valid activation parameters) is checked when the tables are applied
//! ([`strata_passes::qat_tables::from_tables`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use strata_ir::limits::{self, excerpt, MAX_NPY_HEADER_BYTES};
use strata_ir::{DType, Graph, Tensor};
use strata_passes::qat_tables::{LayerTables, QatTables, QatTablesError};
use strata_passes::{quantizable_layers, PassError, SideTable};

use crate::npy::npz::{decode_npz, ArchiveError, NpzLimits, NpzMember};

/// The format version this reader implements (`strata/format`).
pub const FORMAT: i64 = 1;

/// Why a sidecar's contents are refused (the file and graph are named by [`TablesError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SidecarError {
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error("missing entry `{entry}`")]
    Missing { entry: String },
    #[error("entry `{entry}` is {found}, expected {expected}")]
    Type {
        entry: String,
        expected: &'static str,
        found: String,
    },
    #[error("entry `{entry}`: {reason}")]
    Value { entry: String, reason: String },
    #[error("entry `{entry}` is not part of the format (a layer has `W/scale` and `W/k{{k}}/alpha`, `beta`, `bias`, `act`)")]
    Unknown { entry: String },
    #[error(
        "weight `{weight}` has tables for k = {k}, which `strata/planes` {planes:?} does not list"
    )]
    ExtraPlane {
        weight: String,
        k: u8,
        planes: Vec<u8>,
    },
}

/// Why `--qat-tables FILE` could not be used; each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TablesError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Sidecar {
        path: PathBuf,
        #[source]
        source: SidecarError,
    },
    /// The tables do not fit the model (boxed: the mismatch names layer, weight and sizes).
    #[error("{path}: {source}")]
    Match {
        path: PathBuf,
        #[source]
        source: Box<QatTablesError>,
    },
    #[error(transparent)]
    Pass(#[from] PassError),
}

impl TablesError {
    /// The contents error, when the file was read but refused.
    pub fn sidecar_error(&self) -> Option<&SidecarError> {
        match self {
            TablesError::Sidecar { source, .. } => Some(source),
            _ => None,
        }
    }

    /// The mismatch, when the tables were read but do not fit the graph.
    pub fn match_error(&self) -> Option<&QatTablesError> {
        match self {
            TablesError::Match { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// A sidecar as read: its tables and the SHA-256 of its bytes (hex), which the container
/// records.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedTables {
    pub tables: QatTables,
    pub sha256: String,
}

/// What a sidecar for `graph` could need, at most: one `[R]` f32 array (plus its `.npy`
/// header) per member for the widest layer, and `4 + layers·(1 + 4·8)` members. Anything
/// larger is refused before it is inflated.
pub fn limits_for(graph: &Graph) -> Result<NpzLimits, PassError> {
    let layers = quantizable_layers(graph)?;
    let rows = layers.iter().map(|l| l.rows as u64).max().unwrap_or(0);
    // Preamble (magic, version, header length) + header + data; `strata/planes` is ≤ 64 bytes.
    let member = 12 + MAX_NPY_HEADER_BYTES as u64 + rows.max(16).saturating_mul(4);
    let members = 4 + layers.len().saturating_mul(1 + 4 * quantize_max_planes());
    Ok(NpzLimits {
        max_members: members,
        max_member_bytes: member.min(limits::MAX_FILE_BYTES),
        max_total_bytes: member
            .saturating_mul(members as u64)
            .min(limits::MAX_FILE_BYTES),
    })
}

/// Most plane counts a layer can have tables for (`1..=MAX_BITS`).
fn quantize_max_planes() -> usize {
    strata_ir::quant::MAX_BITS as usize
}

/// Reads the sidecar at `path` for `graph` (already simplified by `fold-constants`,
/// `fold-batchnorm`, `eliminate-dead-code`), with the caps of [`limits_for`].
pub fn read_tables(path: &Path, graph: &Graph) -> Result<LoadedTables, TablesError> {
    use sha2::{Digest, Sha256};
    let caps = limits_for(graph)?;
    let bytes = strata_ir::files::read_limited(path, limits::MAX_FILE_BYTES).map_err(|source| {
        TablesError::Io {
            path: path.to_path_buf(),
            source,
        }
    })?;
    let tables = parse(&bytes, &caps).map_err(|source| TablesError::Sidecar {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(LoadedTables {
        tables,
        sha256: format!("{:x}", Sha256::digest(&bytes)),
    })
}

/// Parses a sidecar's bytes.
pub fn parse(bytes: &[u8], caps: &NpzLimits) -> Result<QatTables, SidecarError> {
    from_members(decode_npz(bytes, caps)?)
}

/// The sidecar's tables from its arrays (archive member names without `.npy`).
pub fn from_members(members: Vec<NpzMember>) -> Result<QatTables, SidecarError> {
    let mut entries: BTreeMap<String, Tensor> =
        members.into_iter().map(|m| (m.name, m.tensor)).collect();
    let format = int_scalar(&mut entries, "strata/format")?;
    if format != FORMAT {
        return Err(SidecarError::Value {
            entry: "strata/format".into(),
            reason: format!("format {format} is not supported (this Strata reads format {FORMAT})"),
        });
    }
    let bits = small_int("strata/bits", int_scalar(&mut entries, "strata/bits")?)?;
    let act_bits = small_int(
        "strata/act_bits",
        int_scalar(&mut entries, "strata/act_bits")?,
    )?;
    let planes_t = take(&mut entries, "strata/planes")?;
    let planes_v = match planes_t.as_i64() {
        Some(v) if planes_t.rank() == 1 => v,
        _ => return Err(type_err("strata/planes", "int64 [P]", &planes_t)),
    };
    let planes = planes_v
        .iter()
        .map(|&k| small_int("strata/planes", k))
        .collect::<Result<Vec<u8>, _>>()?;
    let mut tables = QatTables {
        bits,
        act_bits,
        planes,
        layers: BTreeMap::new(),
    };
    tables.check_globals().map_err(|e| match e {
        QatTablesError::Global { entry, reason, .. } => SidecarError::Value {
            entry: entry.into(),
            reason,
        },
        other => SidecarError::Value {
            entry: "strata".into(),
            reason: other.to_string(),
        },
    })?;
    // Every remaining entry belongs to a layer group: `W/scale` or `W/k{k}/{field}`.
    let mut groups: BTreeMap<String, ()> = BTreeMap::new();
    for name in entries.keys() {
        let weight = match split_entry(name) {
            Some((w, Field::Scale)) => w,
            Some((w, Field::Table(k))) => {
                if !tables.planes.contains(&k) {
                    return Err(SidecarError::ExtraPlane {
                        weight: excerpt(w),
                        k,
                        planes: tables.planes.clone(),
                    });
                }
                w
            }
            None => {
                return Err(SidecarError::Unknown {
                    entry: excerpt(name),
                })
            }
        };
        groups.insert(weight.to_string(), ());
    }
    for weight in groups.into_keys() {
        let scales = vector(&mut entries, &format!("{weight}/scale"))?;
        let mut sides = Vec::with_capacity(tables.planes.len());
        for &k in &tables.planes {
            let key = |f: &str| format!("{weight}/k{k}/{f}");
            let act_key = key("act");
            let act_t = take(&mut entries, &act_key)?;
            let act = match act_t.as_f32() {
                Some(&[scale, zero]) if act_t.rank() == 1 => (scale, zero),
                _ => return Err(type_err(&act_key, "float32 [2]", &act_t)),
            };
            sides.push(SideTable {
                k,
                alpha: vector(&mut entries, &key("alpha"))?,
                beta: vector(&mut entries, &key("beta"))?,
                bias: vector(&mut entries, &key("bias"))?,
                act_scale: act.0,
                act_zero: act.1,
            });
        }
        tables.layers.insert(
            weight,
            LayerTables {
                scales,
                tables: sides,
            },
        );
    }
    Ok(tables)
}

/// Which entry of a layer group a name is.
enum Field {
    Scale,
    /// One of `alpha`, `beta`, `bias`, `act` of plane count `k`.
    Table(u8),
}

/// `W/scale` → `(W, Scale)`, `W/k4/alpha` → `(W, Table(4))`; split from the right,
/// so a weight name may itself contain `/`.
fn split_entry(name: &str) -> Option<(&str, Field)> {
    if let Some(w) = name.strip_suffix("/scale") {
        return (!w.is_empty()).then_some((w, Field::Scale));
    }
    let (rest, field) = name.rsplit_once('/')?;
    if !["alpha", "beta", "bias", "act"].contains(&field) {
        return None;
    }
    let (weight, k) = rest.rsplit_once('/')?;
    let digits = k.strip_prefix('k')?;
    if weight.is_empty() || digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((weight, Field::Table(digits.parse().ok()?)))
}

fn take(entries: &mut BTreeMap<String, Tensor>, entry: &str) -> Result<Tensor, SidecarError> {
    entries.remove(entry).ok_or_else(|| SidecarError::Missing {
        entry: excerpt(entry),
    })
}

fn type_err(entry: &str, expected: &'static str, t: &Tensor) -> SidecarError {
    SidecarError::Type {
        entry: excerpt(entry),
        expected,
        found: describe(t),
    }
}

/// `int64 [3]`, `float32 []`: how a type mismatch quotes what was found.
fn describe(t: &Tensor) -> String {
    let name = match t.dtype() {
        DType::F32 => "float32",
        DType::F64 => "float64",
        DType::I8 => "int8",
        DType::U8 => "uint8",
        DType::I32 => "int32",
        DType::I64 => "int64",
        DType::Bool => "bool",
    };
    format!("{name} {:?}", t.shape())
}

fn int_scalar(entries: &mut BTreeMap<String, Tensor>, entry: &str) -> Result<i64, SidecarError> {
    let t = take(entries, entry)?;
    match t.as_i64() {
        Some(&[v]) if t.rank() == 0 => Ok(v),
        _ => Err(type_err(entry, "int64 []", &t)),
    }
}

fn small_int(entry: &str, v: i64) -> Result<u8, SidecarError> {
    u8::try_from(v).map_err(|_| SidecarError::Value {
        entry: entry.into(),
        reason: format!("{v} is out of range"),
    })
}

/// A float32 `[R]` entry.
fn vector(entries: &mut BTreeMap<String, Tensor>, entry: &str) -> Result<Vec<f32>, SidecarError> {
    let t = take(entries, entry)?;
    match t.as_f32() {
        Some(v) if t.rank() == 1 => Ok(v.to_vec()),
        _ => Err(type_err(entry, "float32 [R]", &t)),
    }
}
