//! `.npz` input: a ZIP archive of `.npy` members, as `numpy.savez` (stored) and
//! `numpy.savez_compressed` (deflate) write it.
//!
//! Our own reader rather than the `zip` crate: the version available here (0.6) adds
//! archive-controlled offsets unchecked (a crafted file panics it under overflow checks, as
//! the fuzz build runs) and has no notion of a size cap. This one does what the `.npy` reader
//! does, bounded at every step: the archive is measured before it is read; the central
//! directory's entry count is checked against its byte size and [`NpzLimits::max_members`]
//! before any entry is stored; every member's declared size is checked against
//! [`NpzLimits::max_member_bytes`] and the running total against
//! [`NpzLimits::max_total_bytes`], and its compressed bytes against the archive, before
//! anything is inflated; inflation stops one byte past the declared size (a zip bomb gets
//! that far and no further), and the CRC-32 is checked. Each member is then decoded by
//! [`super::decode`]. Every error names the file and, where there is one, the member.

use std::path::{Path, PathBuf};

use strata_ir::limits::{self, excerpt};
use strata_ir::Tensor;

use super::DecodeError;

/// Caps on what an archive may make the reader allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NpzLimits {
    /// Most members (central-directory entries).
    pub max_members: usize,
    /// Most uncompressed bytes of one member (`.npy` header included).
    pub max_member_bytes: u64,
    /// Most uncompressed bytes of all members together.
    pub max_total_bytes: u64,
}

impl Default for NpzLimits {
    /// The general caps: 65 535 members (a ZIP without its 64-bit extension), and one
    /// tensor's worth of bytes ([`limits::MAX_FILE_BYTES`]) per member and in all.
    fn default() -> Self {
        NpzLimits {
            max_members: u16::MAX as usize,
            max_member_bytes: limits::MAX_FILE_BYTES,
            max_total_bytes: limits::MAX_FILE_BYTES,
        }
    }
}

/// One array of an archive: its name (the member name without `.npy`) and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct NpzMember {
    pub name: String,
    pub tensor: Tensor,
}

/// Why an `.npz` file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum NpzError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Archive {
        path: PathBuf,
        #[source]
        source: ArchiveError,
    },
}

impl NpzError {
    /// The format error, when the file was read but its contents were refused.
    pub fn archive_error(&self) -> Option<&ArchiveError> {
        match self {
            NpzError::Archive { source, .. } => Some(source),
            NpzError::Io { .. } => None,
        }
    }
}

/// Why the bytes of an `.npz` file are not an archive of arrays Strata can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    /// The archive as a whole (its end record or central directory) is unreadable.
    #[error("not a valid .npz (ZIP) archive: {reason}")]
    Format { reason: String },
    #[error("the archive has {count} members, more than the limit of {limit}")]
    TooManyMembers { count: u64, limit: usize },
    /// One member's entry, local header or data is unreadable.
    #[error("member `{member}`: {reason}")]
    Member { member: String, reason: String },
    #[error("member `{member}` declares {size} bytes, more than the limit of {limit}")]
    MemberTooLarge {
        member: String,
        size: u64,
        limit: u64,
    },
    #[error("the members declare {size} bytes in all (at member `{member}`), more than the limit of {limit}")]
    TotalTooLarge {
        member: String,
        size: u64,
        limit: u64,
    },
    #[error("member `{member}`: {source}")]
    Npy {
        member: String,
        #[source]
        source: DecodeError,
    },
}

impl ArchiveError {
    /// The member the error is about, if it is about one.
    pub fn member(&self) -> Option<&str> {
        match self {
            ArchiveError::Member { member, .. }
            | ArchiveError::MemberTooLarge { member, .. }
            | ArchiveError::TotalTooLarge { member, .. }
            | ArchiveError::Npy { member, .. } => Some(member),
            ArchiveError::Format { .. } | ArchiveError::TooManyMembers { .. } => None,
        }
    }
}

/// Reads every array of an `.npz` file, in archive order.
pub fn read_npz(path: &Path, caps: &NpzLimits) -> Result<Vec<NpzMember>, NpzError> {
    let bytes = strata_ir::files::read_limited(path, limits::MAX_FILE_BYTES).map_err(|source| {
        NpzError::Io {
            path: path.to_path_buf(),
            source,
        }
    })?;
    decode_npz(&bytes, caps).map_err(|source| NpzError::Archive {
        path: path.to_path_buf(),
        source,
    })
}

const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD_LEN: usize = 22;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_LOCATOR_LEN: usize = 20;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_EOCD_LEN: usize = 56;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const CENTRAL_LEN: usize = 46;
const LOCAL_SIG: u32 = 0x0403_4b50;
const LOCAL_LEN: usize = 30;
const STORED: u16 = 0;
const DEFLATED: u16 = 8;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn format_err(reason: impl Into<String>) -> ArchiveError {
    ArchiveError::Format {
        reason: reason.into(),
    }
}

/// Where the central directory is and how many entries it declares.
struct Directory {
    offset: u64,
    size: u64,
    entries: u64,
    /// Where the directory must end: the end record (or its 64-bit form) follows it.
    end: u64,
}

/// Finds the end-of-central-directory record: the last signature in the final 64 KiB whose
/// comment runs exactly to the end of the file.
fn find_directory(b: &[u8]) -> Result<Directory, ArchiveError> {
    let missing =
        || format_err("no end-of-central-directory record (not a ZIP archive, or truncated)");
    if b.len() < EOCD_LEN {
        return Err(missing());
    }
    let lowest = b.len().saturating_sub(EOCD_LEN + u16::MAX as usize);
    let eocd = (lowest..=b.len() - EOCD_LEN)
        .rev()
        .find(|&at| {
            u32_at(b, at) == Some(EOCD_SIG)
                && u16_at(b, at + 20).map(|c| at + EOCD_LEN + c as usize) == Some(b.len())
        })
        .ok_or_else(missing)?;
    let field16 = |off| u16_at(b, eocd + off).unwrap_or(0);
    let field32 = |off| u32_at(b, eocd + off).unwrap_or(0);
    if field16(4) != 0 || field16(6) != 0 {
        return Err(format_err("multi-disk archives are not supported"));
    }
    let (entries, size, offset) = (field16(10), field32(12), field32(16));
    let zip64 = entries == u16::MAX || size == u32::MAX || offset == u32::MAX;
    let locator = eocd.checked_sub(ZIP64_LOCATOR_LEN);
    let has_locator = locator.is_some_and(|at| u32_at(b, at) == Some(ZIP64_LOCATOR_SIG));
    if !(zip64 || has_locator) {
        return Ok(Directory {
            offset: offset as u64,
            size: size as u64,
            entries: entries as u64,
            end: eocd as u64,
        });
    }
    // ZIP64: the locator just before the end record points at the 64-bit end record.
    let at = locator
        .filter(|_| has_locator)
        .ok_or_else(|| format_err("the end record asks for ZIP64 but there is no ZIP64 locator"))?;
    let record = u64_at(b, at + 8).unwrap_or(u64::MAX);
    let r = usize::try_from(record)
        .ok()
        .filter(|&r| r.checked_add(ZIP64_EOCD_LEN).is_some_and(|e| e <= at))
        .filter(|&r| u32_at(b, r) == Some(ZIP64_EOCD_SIG))
        .ok_or_else(|| {
            format_err(format!(
                "the ZIP64 locator points at byte {record}, where there is no ZIP64 end record"
            ))
        })?;
    if u32_at(b, r + 16) != Some(0) || u32_at(b, r + 20) != Some(0) {
        return Err(format_err("multi-disk archives are not supported"));
    }
    Ok(Directory {
        entries: u64_at(b, r + 32).unwrap_or(0),
        size: u64_at(b, r + 40).unwrap_or(0),
        offset: u64_at(b, r + 48).unwrap_or(0),
        end: r as u64,
    })
}

/// One central-directory entry, as far as the reader needs it.
struct Entry {
    name: String,
    method: u16,
    crc: u32,
    compressed: u64,
    size: u64,
    header: u64,
}

/// The values of a ZIP64 extended-information extra field (id 1) that the entry marks as
/// 0xFFFFFFFF, in the order the format gives them.
fn zip64_extra(extra: &[u8], entry: &mut Entry) -> Result<(), String> {
    let mut at = 0;
    while at + 4 <= extra.len() {
        let (id, len) = (
            u16_at(extra, at).unwrap_or(0),
            u16_at(extra, at + 2).unwrap_or(0) as usize,
        );
        let body = extra
            .get(at + 4..at + 4 + len)
            .ok_or("an extra field runs past its entry")?;
        if id == 1 {
            let mut off = 0;
            for slot in [&mut entry.size, &mut entry.compressed, &mut entry.header] {
                if *slot == u32::MAX as u64 {
                    *slot = u64_at(body, off).ok_or("the ZIP64 extra field is too short")?;
                    off += 8;
                }
            }
            return Ok(());
        }
        at += 4 + len;
    }
    Ok(())
}

/// Parses the entry at `at` of the central directory `dir`; returns it and where the next
/// one starts.
fn central_entry(dir: &[u8], at: usize, index: u64) -> Result<(Entry, usize), ArchiveError> {
    let bad = |reason: String| format_err(format!("central directory entry {index}: {reason}"));
    if u32_at(dir, at) != Some(CENTRAL_SIG) {
        return Err(bad("bad signature".into()));
    }
    let f16 = |off| u16_at(dir, at + off).ok_or_else(|| bad("truncated".into()));
    let f32_ = |off| u32_at(dir, at + off).ok_or_else(|| bad("truncated".into()));
    let (flags, method) = (f16(8)?, f16(10)?);
    let (name_len, extra_len, comment_len) =
        (f16(28)? as usize, f16(30)? as usize, f16(32)? as usize);
    let name_at = at + CENTRAL_LEN;
    let next = name_at + name_len + extra_len + comment_len;
    let raw_name = dir
        .get(name_at..name_at + name_len)
        .ok_or_else(|| bad("its name runs past the directory".into()))?;
    let extra = dir
        .get(name_at + name_len..name_at + name_len + extra_len)
        .ok_or_else(|| bad("its extra field runs past the directory".into()))?;
    if next > dir.len() {
        return Err(bad("its comment runs past the directory".into()));
    }
    let name = std::str::from_utf8(raw_name)
        .map_err(|_| bad("its name is not UTF-8".into()))?
        .to_string();
    let member_err = |reason: &str| ArchiveError::Member {
        member: excerpt(&name),
        reason: reason.to_string(),
    };
    if flags & 1 != 0 {
        return Err(member_err("is encrypted"));
    }
    let mut entry = Entry {
        method,
        crc: f32_(16)?,
        compressed: f32_(20)? as u64,
        size: f32_(24)? as u64,
        header: f32_(42)? as u64,
        name: String::new(),
    };
    zip64_extra(extra, &mut entry).map_err(|r| member_err(&r))?;
    entry.name = name;
    Ok((entry, next))
}

/// Decodes the bytes of an `.npz` file: every member must be a `.npy` array.
pub fn decode_npz(b: &[u8], caps: &NpzLimits) -> Result<Vec<NpzMember>, ArchiveError> {
    let d = find_directory(b)?;
    if d.entries > caps.max_members as u64 {
        return Err(ArchiveError::TooManyMembers {
            count: d.entries,
            limit: caps.max_members,
        });
    }
    let dir_end = d.offset.checked_add(d.size).filter(|&e| e <= d.end);
    let Some(dir_end) = dir_end else {
        return Err(format_err(format!(
            "the central directory ({} bytes at byte {}) does not end before the end record at byte {}",
            d.size, d.offset, d.end
        )));
    };
    // Both fit the slice now, so they fit `usize`.
    let dir = &b[d.offset as usize..dir_end as usize];
    if d.entries.saturating_mul(CENTRAL_LEN as u64) > d.size {
        return Err(format_err(format!(
            "{} entries cannot fit a central directory of {} bytes",
            d.entries, d.size
        )));
    }
    let mut members: Vec<NpzMember> = Vec::with_capacity(d.entries as usize);
    let (mut at, mut total) = (0usize, 0u64);
    for index in 0..d.entries {
        let (entry, next) = central_entry(dir, at, index)?;
        at = next;
        let Some(stem) = entry.name.strip_suffix(".npy") else {
            return Err(ArchiveError::Member {
                member: excerpt(&entry.name),
                reason: "is not a .npy file".into(),
            });
        };
        if members.iter().any(|m| m.name == stem) {
            return Err(ArchiveError::Member {
                member: excerpt(&entry.name),
                reason: "appears twice".into(),
            });
        }
        if entry.size > caps.max_member_bytes {
            return Err(ArchiveError::MemberTooLarge {
                member: excerpt(&entry.name),
                size: entry.size,
                limit: caps.max_member_bytes,
            });
        }
        total = total.saturating_add(entry.size);
        if total > caps.max_total_bytes {
            return Err(ArchiveError::TotalTooLarge {
                member: excerpt(&entry.name),
                size: total,
                limit: caps.max_total_bytes,
            });
        }
        let data = member_bytes(b, &entry, d.offset)?;
        let tensor = super::decode(&data).map_err(|source| ArchiveError::Npy {
            member: excerpt(&entry.name),
            source,
        })?;
        members.push(NpzMember {
            name: stem.to_string(),
            tensor,
        });
    }
    Ok(members)
}

/// The uncompressed bytes of one member (whose declared size has passed the caps), read from
/// between its local header and the central directory at `dir_start`.
fn member_bytes(b: &[u8], e: &Entry, dir_start: u64) -> Result<Vec<u8>, ArchiveError> {
    let err = |reason: String| ArchiveError::Member {
        member: excerpt(&e.name),
        reason,
    };
    let h = usize::try_from(e.header)
        .ok()
        .filter(|&h| h as u64 + (LOCAL_LEN as u64) <= dir_start)
        .filter(|&h| u32_at(b, h) == Some(LOCAL_SIG))
        .ok_or_else(|| err(format!("no local header at byte {}", e.header)))?;
    let (name_len, extra_len) = (
        u16_at(b, h + 26).unwrap_or(0) as u64,
        u16_at(b, h + 28).unwrap_or(0) as u64,
    );
    let start = h as u64 + LOCAL_LEN as u64 + name_len + extra_len;
    let end = start
        .checked_add(e.compressed)
        .filter(|&end| end <= dir_start);
    let Some(end) = end else {
        return Err(err(format!(
            "its {} compressed bytes at byte {start} run past the member data (the archive is truncated or corrupt)",
            e.compressed
        )));
    };
    let raw = &b[start as usize..end as usize];
    let data = match e.method {
        STORED => {
            if e.compressed != e.size {
                return Err(err(format!(
                    "is stored with {} bytes but declares {} uncompressed",
                    e.compressed, e.size
                )));
            }
            raw.to_vec()
        }
        DEFLATED => {
            // One byte of room past the declared size: enough to tell "more" from "exact".
            let limit = usize::try_from(e.size.saturating_add(1)).unwrap_or(usize::MAX);
            let more = || {
                err(format!(
                    "inflates to more than the {} bytes it declares",
                    e.size
                ))
            };
            let out = miniz_oxide::inflate::decompress_to_vec_with_limit(raw, limit).map_err(
                |x| match x.status {
                    miniz_oxide::inflate::TINFLStatus::HasMoreOutput => more(),
                    _ => err(format!("deflate data: {x}")),
                },
            )?;
            if out.len() as u64 > e.size {
                return Err(more());
            }
            if out.len() as u64 != e.size {
                return Err(err(format!(
                    "inflates to {} bytes but declares {}",
                    out.len(),
                    e.size
                )));
            }
            out
        }
        m => {
            return Err(err(format!(
                "compression method {m} is not supported (numpy writes stored or deflate)"
            )))
        }
    };
    let crc = crc32fast::hash(&data);
    if crc != e.crc {
        return Err(err(format!(
            "CRC-32 {crc:08x} of the data does not match the recorded {:08x}",
            e.crc
        )));
    }
    Ok(data)
}
