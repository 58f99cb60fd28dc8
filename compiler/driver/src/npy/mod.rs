//! `.npy` input and output for the CLI: the format every numpy user already has.
//!
//! Reading is our own code, bounded at every step: the file is measured before it is read
//! ([`strata_ir::limits::MAX_FILE_BYTES`]), the header length is checked against the file and
//! [`strata_ir::limits::MAX_NPY_HEADER_BYTES`], the header is parsed in one linear pass
//! ([`header`]), and the shape's size is computed with checked arithmetic and compared with
//! the bytes present before anything is allocated. Writing goes to a temporary file that is
//! renamed into place, so an interrupted run never leaves a half-written output.

pub mod header;
pub mod npz;

use std::path::{Path, PathBuf};

use strata_ir::files::Existing;
use strata_ir::limits::{self, LimitError};
use strata_ir::{DType, Tensor, TensorData};

/// Why a `.npy` file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Decode {
        path: PathBuf,
        #[source]
        source: DecodeError,
    },
}

impl NpyError {
    /// The format error, when the file was read but its contents were refused.
    pub fn decode_error(&self) -> Option<&DecodeError> {
        match self {
            NpyError::Decode { source, .. } => Some(source),
            NpyError::Io { .. } => None,
        }
    }
}

/// Why the bytes of a `.npy` file are not an array Strata can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("not a valid .npy file: {reason}")]
    Format { reason: String },
    #[error("element type `{dtype}` is not supported (use float32, float64, int8, uint8, int32, int64 or bool)")]
    DType { dtype: String },
    #[error("header declares shape {shape:?} ({needed} bytes of data) but the file holds {available} bytes after the header")]
    Truncated {
        shape: Vec<u64>,
        needed: u64,
        available: u64,
    },
    #[error("Fortran-ordered arrays are not supported; save with np.ascontiguousarray")]
    FortranOrder,
    #[error("{0}")]
    TooLarge(LimitError),
}

const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Reads a C-ordered `.npy` file into a tensor.
pub fn read_npy(path: &Path) -> Result<Tensor, NpyError> {
    let bytes = strata_ir::files::read_limited(path, limits::MAX_FILE_BYTES).map_err(|source| {
        NpyError::Io {
            path: path.to_path_buf(),
            source,
        }
    })?;
    decode(&bytes).map_err(|source| NpyError::Decode {
        path: path.to_path_buf(),
        source,
    })
}

/// Decodes the bytes of a `.npy` file (format versions 1.0, 2.0 and 3.0).
pub fn decode(bytes: &[u8]) -> Result<Tensor, DecodeError> {
    let format = |reason: String| DecodeError::Format { reason };
    if bytes.get(..6) != Some(&MAGIC[..]) {
        return Err(format(
            "it does not start with the magic `\\x93NUMPY`".into(),
        ));
    }
    let (major, minor) = match bytes.get(6..8) {
        Some(&[major, minor]) => (major, minor),
        _ => return Err(format("the file ends inside the version".into())),
    };
    let (len_bytes, header_start) = match major {
        1 => (2, 10),
        2 | 3 => (4, 12),
        _ => {
            return Err(format(format!(
                "format version {major}.{minor} is not supported"
            )))
        }
    };
    let len_field = bytes
        .get(8..8 + len_bytes)
        .ok_or_else(|| format("the file ends inside the header length".into()))?;
    let header_len = len_field
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | b as u64);
    let available = (bytes.len() - header_start) as u64;
    if header_len > available {
        return Err(format(format!(
            "the header length field says {header_len} bytes but the file holds {available} after it"
        )));
    }
    let data_start = header_start + header_len as usize;
    let h = header::parse(&bytes[header_start..data_start]).map_err(format)?;

    let (dtype, swap) = element_type(&h.descr)?;
    if h.fortran_order && h.shape.len() > 1 {
        return Err(DecodeError::FortranOrder);
    }
    let data = &bytes[data_start..];
    let needed = limits::tensor_bytes(dtype, &h.shape).map_err(DecodeError::TooLarge)?;
    if needed > data.len() as u64 {
        return Err(DecodeError::Truncated {
            shape: h.shape,
            needed,
            available: data.len() as u64,
        });
    }
    // `needed` fits in the slice, so it and every dimension of a non-empty array fit `usize`;
    // an empty array may still name a huge dimension next to a zero.
    let shape = strata_ir::limits::usize_dims(&h.shape)
        .ok_or_else(|| format(format!("shape {:?} does not fit in memory", h.shape)))?;
    let mut raw = data[..needed as usize].to_vec();
    if swap {
        for chunk in raw.chunks_exact_mut(dtype.size_bytes()) {
            chunk.reverse();
        }
    }
    let values = TensorData::from_le_bytes(dtype, &raw)
        .ok_or_else(|| format("data length is not a whole number of elements".into()))?;
    Tensor::new(shape, values).map_err(|e| format(e.to_string()))
}

/// The element type of a numpy type string, and whether its bytes are big-endian.
fn element_type(descr: &str) -> Result<(DType, bool), DecodeError> {
    let unsupported = || DecodeError::DType {
        dtype: limits::excerpt(descr),
    };
    let (order, code) = match descr.as_bytes().first() {
        Some(b'<' | b'|' | b'=') => (false, &descr[1..]),
        Some(b'>') => (true, &descr[1..]),
        _ => return Err(unsupported()),
    };
    let dtype = match code {
        "f4" => DType::F32,
        "f8" => DType::F64,
        "i1" => DType::I8,
        "u1" => DType::U8,
        "i4" => DType::I32,
        "i8" => DType::I64,
        "b1" => DType::Bool,
        _ => return Err(unsupported()),
    };
    Ok((dtype, order && dtype.size_bytes() > 1))
}

/// The numpy type string Strata writes for an element type.
fn descr(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "<f4",
        DType::F64 => "<f8",
        DType::I8 => "|i1",
        DType::U8 => "|u1",
        DType::I32 => "<i4",
        DType::I64 => "<i8",
        DType::Bool => "|b1",
    }
}

/// The bytes of a `.npy` file (format 1.0; 2.0 for a header over 64 KiB) holding `tensor`, laid out as numpy writes it:
/// the header padded with spaces and a newline so the data starts at a multiple of 64.
pub fn encode(tensor: &Tensor) -> Vec<u8> {
    let shape: Vec<u64> = tensor.shape().iter().map(|&d| d as u64).collect();
    let text = header::format(descr(tensor.dtype()), &shape);
    // Format 1.0 (2-byte header length, 10-byte preamble) for every ordinary array; 2.0
    // (4-byte length, 12-byte preamble) only when the header would not fit 65 535 bytes.
    let padded = |preamble: usize| {
        let unpadded = preamble + text.len() + 1;
        format!("{text}{}\n", " ".repeat((64 - unpadded % 64) % 64))
    };
    let v1 = padded(10);
    let data = tensor.data().to_le_bytes();
    let mut out = Vec::with_capacity(12 + v1.len() + data.len());
    out.extend_from_slice(MAGIC);
    let text = match u16::try_from(v1.len()) {
        Ok(len) => {
            out.extend_from_slice(&[1, 0]);
            out.extend_from_slice(&len.to_le_bytes());
            v1
        }
        Err(_) => {
            let v2 = padded(12);
            out.extend_from_slice(&[2, 0]);
            // 4 GiB of header would take a shape of over 10^8 axes in memory first.
            out.extend_from_slice(&(v2.len() as u32).to_le_bytes());
            v2
        }
    };
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&data);
    out
}

/// Writes a tensor as `.npy`, atomically (temporary file in the same directory, then rename).
/// An existing path that is not a regular file is refused.
pub fn write_npy(path: &Path, tensor: &Tensor) -> Result<(), NpyError> {
    write_atomic(path, &encode(tensor)).map_err(|source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes `bytes` to `path` through a temporary sibling file and a rename, so readers never
/// see a partial file and an existing file survives a failed write. A path that exists and is
/// not a regular file (symlink, FIFO, device) is refused; see [`strata_ir::files`].
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    strata_ir::files::write_atomic(path, bytes, Existing::Refuse)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(major: u8, header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[major, 0]);
        if major == 1 {
            out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        } else {
            out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn a_header_over_64_kib_is_written_as_format_2() {
        // 30 000 unit axes: a ~90 KB shape tuple, past format 1.0's 2-byte length.
        let t = Tensor::new(vec![1; 30_000], TensorData::F32(vec![0.5])).unwrap();
        let bytes = encode(&t);
        assert_eq!(&bytes[6..8], &[2, 0]);
        let len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        assert_eq!((12 + len) % 64, 0, "data aligned to 64 bytes");
        let e = decode(&bytes).unwrap_err().to_string();
        assert!(e.contains("header"), "{e}");
        // An ordinary array stays format 1.0.
        assert_eq!(&encode(&Tensor::scalar_f32(1.0))[6..8], &[1, 0]);
    }

    #[test]
    fn encode_decode_round_trip_every_dtype() {
        let tensors = [
            Tensor::new(
                vec![2, 3],
                TensorData::F32(vec![1.0, -2.5, 3.0, 0.0, f32::MAX, -0.0]),
            )
            .unwrap(),
            Tensor::new(vec![2], TensorData::F64(vec![1e300, -1e-300])).unwrap(),
            Tensor::new(vec![3], TensorData::I8(vec![-128, 0, 127])).unwrap(),
            Tensor::new(vec![1, 1, 2], TensorData::U8(vec![0, 255])).unwrap(),
            Tensor::new(vec![2], TensorData::I32(vec![i32::MIN, 7])).unwrap(),
            Tensor::new(vec![], TensorData::I64(vec![-9])).unwrap(),
            Tensor::new(vec![4], TensorData::Bool(vec![true, false, false, true])).unwrap(),
            Tensor::new(vec![0, 5], TensorData::F32(vec![])).unwrap(),
        ];
        for t in tensors {
            let bytes = encode(&t);
            let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
            assert_eq!((10 + header_len) % 64, 0, "data aligned to 64");
            assert_eq!(decode(&bytes).unwrap(), t);
        }
    }

    #[test]
    fn big_endian_and_version_2_are_read() {
        let data: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let t = decode(&npy(
            2,
            "{'descr': '>f4', 'fortran_order': False, 'shape': (2,)}",
            &data,
        ))
        .unwrap();
        assert_eq!(t.as_f32().unwrap(), &[1.5, -2.0]);
    }

    #[test]
    fn sizes_are_checked_before_allocation() {
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 2)}";
        assert!(matches!(
            decode(&npy(1, h, &[])),
            Err(DecodeError::TooLarge(LimitError::Elements { .. }))
        ));
        let h = "{'descr': '<f8', 'fortran_order': False, 'shape': (18446744073709551615, 2)}";
        assert!(matches!(
            decode(&npy(1, h, &[])),
            Err(DecodeError::TooLarge(LimitError::Overflow { .. }))
        ));
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (3,)}";
        assert_eq!(
            decode(&npy(1, h, &[0; 11])),
            Err(DecodeError::Truncated {
                shape: vec![3],
                needed: 12,
                available: 11
            })
        );
        // A header length near 4 GiB is compared with the file, not allocated.
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[2, 0, 0xff, 0xff, 0xff, 0xff]);
        let e = decode(&bytes).unwrap_err();
        assert!(e.to_string().contains("4294967295 bytes"), "{e}");
    }

    #[test]
    fn other_refusals_are_typed() {
        let h = |d: &str, f: &str, s: &str| {
            format!("{{'descr': '{d}', 'fortran_order': {f}, 'shape': {s}}}")
        };
        assert_eq!(
            decode(&npy(1, &h("<c8", "False", "(1,)"), &[0; 8])),
            Err(DecodeError::DType {
                dtype: "<c8".into()
            })
        );
        assert_eq!(
            decode(&npy(1, &h("<f4", "True", "(2, 2)"), &[0; 16])),
            Err(DecodeError::FortranOrder)
        );
        assert!(matches!(
            decode(&npy(9, &h("<f4", "False", "(1,)"), &[0; 4])),
            Err(DecodeError::Format { reason }) if reason.contains("version 9.0")
        ));
        assert!(matches!(
            decode(b"\x93NUMP"),
            Err(DecodeError::Format { .. })
        ));
    }
}
