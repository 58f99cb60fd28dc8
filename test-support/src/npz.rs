//! A tiny `.npz` (ZIP) writer for the reader's tests: stored or deflated members, and the
//! ways an archive can lie (a declared size that is not the data's, ZIP64 sizes), which no
//! honest writer produces. Also the QAT tables sidecar of a [`QatTables`], as
//! `strata_torch` lays it out (docs/qat-tables.md).

use strata_compiler::npy::encode;
use strata_ir::Tensor;
use strata_passes::qat_tables::QatTables;

/// One archive member.
#[derive(Debug, Clone)]
pub struct Member {
    /// The file name inside the archive (`x.npy`).
    pub name: String,
    /// The uncompressed bytes.
    pub data: Vec<u8>,
    pub deflate: bool,
    /// The uncompressed size the directory declares (default: the data's); over 4 GiB it is
    /// written as a ZIP64 extra field.
    pub declared_size: Option<u64>,
}

impl Member {
    /// `name.npy` holding `t`, stored.
    pub fn npy(name: &str, t: &Tensor) -> Member {
        Member::raw(&format!("{name}.npy"), encode(t))
    }

    /// A member with the given file name and bytes, stored.
    pub fn raw(name: &str, data: Vec<u8>) -> Member {
        Member {
            name: name.to_string(),
            data,
            deflate: false,
            declared_size: None,
        }
    }

    /// The same member, deflated.
    pub fn deflated(mut self) -> Member {
        self.deflate = true;
        self
    }
}

/// The ZIP archive of `members`, laid out as Python's `zipfile` writes it (local headers and
/// data, central directory, end record).
pub fn zip(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for m in members {
        let crc = crc32fast::hash(&m.data);
        let body = if m.deflate {
            miniz_oxide::deflate::compress_to_vec(&m.data, 6)
        } else {
            m.data.clone()
        };
        let size = m.declared_size.unwrap_or(m.data.len() as u64);
        let method: u16 = if m.deflate { 8 } else { 0 };
        let size32 = u32::try_from(size).unwrap_or(u32::MAX);
        let extra: Vec<u8> = if size32 == u32::MAX {
            [
                &1u16.to_le_bytes()[..],
                &8u16.to_le_bytes(),
                &size.to_le_bytes(),
            ]
            .concat()
        } else {
            Vec::new()
        };
        let offset = out.len() as u32;
        let common = |v: &mut Vec<u8>| {
            v.extend_from_slice(&20u16.to_le_bytes()); // version needed
            v.extend_from_slice(&0u16.to_le_bytes()); // flags
            v.extend_from_slice(&method.to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes()); // time
            v.extend_from_slice(&0x21u16.to_le_bytes()); // date: 1980-01-01
            v.extend_from_slice(&crc.to_le_bytes());
            v.extend_from_slice(&(body.len() as u32).to_le_bytes());
            v.extend_from_slice(&size32.to_le_bytes());
            v.extend_from_slice(&(m.name.len() as u16).to_le_bytes());
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(&0u16.to_le_bytes()); // extra length
        out.extend_from_slice(m.name.as_bytes());
        out.extend_from_slice(&body);

        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // version made by
        common(&mut central);
        central.extend_from_slice(&(extra.len() as u16).to_le_bytes());
        central.extend_from_slice(&[0; 6]); // comment length, disk, internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(m.name.as_bytes());
        central.extend_from_slice(&extra);
    }
    let (cd_offset, cd_size, n) = (out.len() as u32, central.len() as u32, members.len() as u16);
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // disk numbers
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes()); // comment length
    out
}

/// The sidecar's arrays for `t`, named as docs/qat-tables.md names them.
pub fn sidecar_arrays(t: &QatTables) -> Vec<(String, Tensor)> {
    let int = |v: i64| Tensor::from_i64(vec![], vec![v]).unwrap();
    let vec = |v: &[f32]| Tensor::from_f32(vec![v.len()], v.to_vec()).unwrap();
    let planes: Vec<i64> = t.planes.iter().map(|&k| k as i64).collect();
    let mut out = vec![
        ("strata/format".to_string(), int(1)),
        ("strata/bits".to_string(), int(t.bits as i64)),
        ("strata/act_bits".to_string(), int(t.act_bits as i64)),
        (
            "strata/planes".to_string(),
            Tensor::from_i64(vec![planes.len()], planes).unwrap(),
        ),
    ];
    for (w, layer) in &t.layers {
        out.push((format!("{w}/scale"), vec(&layer.scales)));
        for s in &layer.tables {
            let k = s.k;
            out.push((format!("{w}/k{k}/alpha"), vec(&s.alpha)));
            out.push((format!("{w}/k{k}/beta"), vec(&s.beta)));
            out.push((format!("{w}/k{k}/bias"), vec(&s.bias)));
            out.push((format!("{w}/k{k}/act"), vec(&[s.act_scale, s.act_zero])));
        }
    }
    out
}

/// The `.npz` bytes of `arrays`, stored (as `numpy.savez`) or deflated (`savez_compressed`).
pub fn npz(arrays: &[(String, Tensor)], deflate: bool) -> Vec<u8> {
    let members: Vec<Member> = arrays
        .iter()
        .map(|(name, t)| {
            let m = Member::npy(name, t);
            if deflate {
                m.deflated()
            } else {
                m
            }
        })
        .collect();
    zip(&members)
}
