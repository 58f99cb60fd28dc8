//! `.npy` input and output for the CLI: the format every numpy user already has.
//!
//! Reading checks that the header's shape fits the file before any allocation, so a corrupt
//! or hostile header cannot make the tool allocate gigabytes. Writing goes to a temporary file
//! that is renamed into place, so an interrupted run never leaves a half-written output.

use std::io::Write;
use std::path::{Path, PathBuf};

use npyz::WriterBuilder;
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
    #[error("{path}: not a valid .npy file: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("{path}: element type `{dtype}` is not supported (use float32, float64, int8, uint8, int32, int64 or bool)")]
    DType { path: PathBuf, dtype: String },
    #[error("{path}: header declares shape {shape:?} ({needed} bytes of data) but the file holds {available} bytes after the header")]
    Truncated {
        path: PathBuf,
        shape: Vec<u64>,
        needed: u128,
        available: u64,
    },
    #[error("{path}: Fortran-ordered arrays are not supported; save with np.ascontiguousarray")]
    FortranOrder { path: PathBuf },
}

/// Reads a C-ordered `.npy` file into a tensor.
pub fn read_npy(path: &Path) -> Result<Tensor, NpyError> {
    let bytes = std::fs::read(path).map_err(|source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let format = |reason: String| NpyError::Format {
        path: path.to_path_buf(),
        reason,
    };
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| format(e.to_string()))?;
    let npyz::DType::Plain(ts) = npy.dtype() else {
        return Err(NpyError::DType {
            path: path.to_path_buf(),
            dtype: "structured".to_string(),
        });
    };
    let type_str = ts.to_string();
    let dtype = match type_str.as_str() {
        "<f4" => DType::F32,
        "<f8" => DType::F64,
        "|i1" | "<i1" => DType::I8,
        "|u1" | "<u1" => DType::U8,
        "<i4" => DType::I32,
        "<i8" => DType::I64,
        "|b1" | "<b1" => DType::Bool,
        _ => {
            return Err(NpyError::DType {
                path: path.to_path_buf(),
                dtype: type_str,
            })
        }
    };
    if npy.order() == npyz::Order::Fortran && npy.shape().len() > 1 {
        return Err(NpyError::FortranOrder {
            path: path.to_path_buf(),
        });
    }
    let shape64 = npy.shape().to_vec();
    let needed: u128 =
        shape64.iter().map(|&d| d as u128).product::<u128>() * dtype.size_bytes() as u128;
    let header_len =
        header_length(&bytes).ok_or_else(|| format("unreadable header length".into()))?;
    let available = bytes.len().saturating_sub(header_len) as u64;
    if needed > available as u128 {
        return Err(NpyError::Truncated {
            path: path.to_path_buf(),
            shape: shape64,
            needed,
            available,
        });
    }
    let shape: Vec<usize> = shape64.iter().map(|&d| d as usize).collect();
    let io = |e: std::io::Error| format(e.to_string());
    let data = match dtype {
        DType::F32 => TensorData::F32(npy.into_vec().map_err(io)?),
        DType::F64 => TensorData::F64(npy.into_vec().map_err(io)?),
        DType::I8 => TensorData::I8(npy.into_vec().map_err(io)?),
        DType::U8 => TensorData::U8(npy.into_vec().map_err(io)?),
        DType::I32 => TensorData::I32(npy.into_vec().map_err(io)?),
        DType::I64 => TensorData::I64(npy.into_vec().map_err(io)?),
        DType::Bool => TensorData::Bool(npy.into_vec().map_err(io)?),
    };
    Tensor::new(shape, data).map_err(|e| format(e.to_string()))
}

/// Byte length of magic + version + header-length field + header, per the NPY spec.
fn header_length(bytes: &[u8]) -> Option<usize> {
    let major = *bytes.get(6)?;
    if major == 1 {
        let n = u16::from_le_bytes([*bytes.get(8)?, *bytes.get(9)?]) as usize;
        Some(10 + n)
    } else {
        let n = u32::from_le_bytes(bytes.get(8..12)?.try_into().ok()?) as usize;
        Some(12 + n)
    }
}

/// Writes a tensor as `.npy`, atomically (temporary file in the same directory, then rename).
pub fn write_npy(path: &Path, tensor: &Tensor) -> Result<(), NpyError> {
    let io = |source| NpyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut buf = Vec::new();
    let shape: Vec<u64> = tensor.shape().iter().map(|&d| d as u64).collect();
    fn write<T: npyz::AutoSerialize + Clone>(
        buf: &mut Vec<u8>,
        shape: &[u64],
        data: &[T],
    ) -> std::io::Result<()> {
        let mut w = npyz::WriteOptions::new()
            .default_dtype()
            .shape(shape)
            .writer(buf)
            .begin_nd()?;
        w.extend(data.iter().cloned())?;
        w.finish()
    }
    match tensor.data() {
        TensorData::F32(v) => write(&mut buf, &shape, v),
        TensorData::F64(v) => write(&mut buf, &shape, v),
        TensorData::I8(v) => write(&mut buf, &shape, v),
        TensorData::U8(v) => write(&mut buf, &shape, v),
        TensorData::I32(v) => write(&mut buf, &shape, v),
        TensorData::I64(v) => write(&mut buf, &shape, v),
        TensorData::Bool(v) => write(&mut buf, &shape, v),
    }
    .map_err(io)?;
    write_atomic(path, &buf).map_err(io)
}

/// Writes `bytes` to `path` through a temporary sibling file and a rename, so readers never
/// see a partial file and an existing file survives a failed write.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
