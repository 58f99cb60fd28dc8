//! ONNX tensors and element types → Strata tensors.
//!
//! Every size is validated before anything is allocated: the element count is computed with
//! checked arithmetic and capped, and the stored data (raw bytes, typed fields or an external
//! file) must hold exactly that many elements, so a malicious size field can never turn into
//! a huge allocation.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use onnx_protobuf::tensor_proto::{DataLocation, DataType};
use onnx_protobuf::TensorProto;
use protobuf::Enum;
use strata_ir::{DType, Tensor, TensorData};

use super::OnnxError;

/// The most elements a tensor or value type may have: [`strata_ir::limits`], shared with
/// every other reader.
pub const MAX_ELEMENTS: u64 = strata_ir::limits::MAX_TENSOR_ELEMENTS;

/// The ONNX name of an element-type code, for messages.
pub fn onnx_dtype_name(code: i32) -> String {
    match DataType::from_i32(code) {
        Some(t) => format!("{t:?}"),
        None => format!("unknown type code {code}"),
    }
}

/// Maps an ONNX element type to Strata's; `name` is the tensor or value it belongs to.
pub fn dtype_from_onnx(code: i32, name: &str) -> Result<DType, OnnxError> {
    match DataType::from_i32(code) {
        Some(DataType::FLOAT) => Ok(DType::F32),
        Some(DataType::DOUBLE) => Ok(DType::F64),
        Some(DataType::INT8) => Ok(DType::I8),
        Some(DataType::UINT8) => Ok(DType::U8),
        Some(DataType::INT32) => Ok(DType::I32),
        Some(DataType::INT64) => Ok(DType::I64),
        Some(DataType::BOOL) => Ok(DType::Bool),
        _ => Err(OnnxError::UnsupportedDType {
            name: name.to_string(),
            dtype: onnx_dtype_name(code),
        }),
    }
}

/// Validates ONNX dims and returns them with the element count.
pub fn checked_dims(name: &str, dims: &[i64]) -> Result<(Vec<usize>, usize), OnnxError> {
    let mut shape = Vec::with_capacity(dims.len().min(64));
    let mut count: u64 = 1;
    for (axis, &d) in dims.iter().enumerate() {
        if d < 0 {
            return Err(OnnxError::InvalidDim {
                name: name.to_string(),
                axis,
                dim: d,
            });
        }
        let du = d as u64;
        count = count
            .checked_mul(du)
            .ok_or_else(|| OnnxError::TensorTooLarge {
                name: name.to_string(),
                dims: dims.to_vec(),
                reason: "element count overflows".to_string(),
            })?;
        if du > MAX_ELEMENTS {
            return Err(OnnxError::TensorTooLarge {
                name: name.to_string(),
                dims: dims.to_vec(),
                reason: format!("dimension {d} exceeds the limit of {MAX_ELEMENTS}"),
            });
        }
        shape.push(du as usize);
    }
    if count > MAX_ELEMENTS {
        return Err(OnnxError::TensorTooLarge {
            name: name.to_string(),
            dims: dims.to_vec(),
            reason: format!("{count} elements exceed the limit of {MAX_ELEMENTS}"),
        });
    }
    Ok((shape, count as usize))
}

/// Converts a `TensorProto`; `base_dir` is where external data files are looked up (the model's
/// directory), `None` when the tensor did not come from a file.
pub fn tensor_from_proto(t: &TensorProto, base_dir: Option<&Path>) -> Result<Tensor, OnnxError> {
    let name = t.name.as_str();
    if let Some(seg) = t.segment.as_ref() {
        // A segment is one chunk of a larger tensor; importing it as the whole tensor would
        // silently give wrong shapes. A SequenceProto or OptionalProto read as a TensorProto
        // puts its values in the same field number, so name that too.
        return Err(OnnxError::InvalidTensor {
            name: name.to_string(),
            reason: format!(
                "has a `segment` (elements {}..{} of a larger tensor), which is not supported; \
                 a sequence or optional value (SequenceProto/OptionalProto) read as a tensor \
                 looks the same",
                seg.begin, seg.end
            ),
        });
    }
    let dtype = dtype_from_onnx(t.data_type, name)?;
    let (shape, count) = checked_dims(name, &t.dims)?;
    let dims64: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let nbytes = strata_ir::limits::tensor_bytes(dtype, &dims64)
        .ok()
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| OnnxError::TensorTooLarge {
            name: name.to_string(),
            dims: t.dims.clone(),
            reason: format!(
                "{dtype} data exceeds the limit of {} bytes",
                strata_ir::limits::MAX_TENSOR_BYTES
            ),
        })?;
    let external = t.data_location.enum_value() == Ok(DataLocation::EXTERNAL);
    let data = if external {
        let bytes = read_external(t, base_dir, nbytes)?;
        decode_le(dtype, &bytes, name)?
    } else if !t.raw_data.is_empty() || count == 0 && typed_len(t, dtype) == 0 {
        if t.raw_data.len() != nbytes {
            return Err(OnnxError::TensorDataLength {
                name: name.to_string(),
                dims: t.dims.clone(),
                field: "raw_data",
                unit: "bytes",
                expected: nbytes,
                got: t.raw_data.len(),
            });
        }
        decode_le(dtype, &t.raw_data, name)?
    } else {
        let (field, got) = (typed_field_name(dtype), typed_len(t, dtype));
        if got != count {
            return Err(OnnxError::TensorDataLength {
                name: name.to_string(),
                dims: t.dims.clone(),
                field,
                unit: "elements",
                expected: count,
                got,
            });
        }
        typed_data(t, dtype)?
    };
    Tensor::new(shape, data).map_err(|e| OnnxError::InvalidTensor {
        name: name.to_string(),
        reason: e.to_string(),
    })
}

fn typed_field_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "float_data",
        DType::F64 => "double_data",
        DType::I64 => "int64_data",
        DType::I8 | DType::U8 | DType::I32 | DType::Bool => "int32_data",
    }
}

fn typed_len(t: &TensorProto, dtype: DType) -> usize {
    match dtype {
        DType::F32 => t.float_data.len(),
        DType::F64 => t.double_data.len(),
        DType::I64 => t.int64_data.len(),
        DType::I8 | DType::U8 | DType::I32 | DType::Bool => t.int32_data.len(),
    }
}

fn typed_data(t: &TensorProto, dtype: DType) -> Result<TensorData, OnnxError> {
    let narrow = |lo: i32, hi: i32| -> Result<(), OnnxError> {
        match t.int32_data.iter().position(|&v| v < lo || v > hi) {
            Some(i) => Err(OnnxError::InvalidTensor {
                name: t.name.clone(),
                reason: format!(
                    "int32_data[{i}] = {} is out of range for {dtype}",
                    t.int32_data[i]
                ),
            }),
            None => Ok(()),
        }
    };
    Ok(match dtype {
        DType::F32 => TensorData::F32(t.float_data.clone()),
        DType::F64 => TensorData::F64(t.double_data.clone()),
        DType::I64 => TensorData::I64(t.int64_data.clone()),
        DType::I32 => TensorData::I32(t.int32_data.clone()),
        DType::I8 => {
            narrow(i8::MIN as i32, i8::MAX as i32)?;
            TensorData::I8(t.int32_data.iter().map(|&v| v as i8).collect())
        }
        DType::U8 => {
            narrow(0, u8::MAX as i32)?;
            TensorData::U8(t.int32_data.iter().map(|&v| v as u8).collect())
        }
        DType::Bool => TensorData::Bool(t.int32_data.iter().map(|&v| v != 0).collect()),
    })
}

fn decode_le(dtype: DType, bytes: &[u8], name: &str) -> Result<TensorData, OnnxError> {
    TensorData::from_le_bytes(dtype, bytes).ok_or_else(|| OnnxError::InvalidTensor {
        name: name.to_string(),
        reason: format!(
            "{} bytes is not a whole number of {dtype} elements",
            bytes.len()
        ),
    })
}

/// Checks that an external-data location is a plain relative path that stays inside the
/// model directory (no `..`, no absolute path, no drive prefix).
fn safe_relative(location: &str) -> bool {
    let p = Path::new(location);
    !location.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

fn ext_err(name: &str, reason: impl Into<String>) -> OnnxError {
    OnnxError::ExternalData {
        name: name.to_string(),
        reason: reason.into(),
    }
}

fn read_external(
    t: &TensorProto,
    base_dir: Option<&Path>,
    nbytes: usize,
) -> Result<Vec<u8>, OnnxError> {
    let name = t.name.as_str();
    let mut location = None;
    let mut offset: u64 = 0;
    let mut length: Option<u64> = None;
    for entry in &t.external_data {
        let parse = |v: &str| {
            v.trim().parse::<u64>().map_err(|_| {
                ext_err(
                    name,
                    format!("`{}` = `{v}` is not a non-negative integer", entry.key),
                )
            })
        };
        match entry.key.as_str() {
            "location" => location = Some(entry.value.as_str()),
            "offset" => offset = parse(&entry.value)?,
            "length" => length = Some(parse(&entry.value)?),
            _ => {} // checksum and future keys do not affect the bytes read
        }
    }
    let location = location.ok_or_else(|| ext_err(name, "no `location` key"))?;
    if !safe_relative(location) {
        return Err(ext_err(
            name,
            format!("location `{location}` must be a relative path inside the model directory"),
        ));
    }
    let base = base_dir.ok_or_else(|| {
        ext_err(
            name,
            "the model was not loaded from a file, so there is no directory to read external data from",
        )
    })?;
    let path: PathBuf = base.join(location);
    let io = |source| OnnxError::ExternalDataIo {
        name: name.to_string(),
        path: path.clone(),
        source,
    };
    // Symlinks could still point outside: compare canonical paths.
    let canon_base = base.canonicalize().map_err(io)?;
    let canon = path.canonicalize().map_err(io)?;
    if !canon.starts_with(&canon_base) {
        return Err(ext_err(
            name,
            format!("location `{location}` resolves outside the model directory"),
        ));
    }
    // A regular file only, opened without blocking (a FIFO would wait for a writer forever)
    // and measured before anything is read.
    let (mut file, file_len) = strata_ir::files::open_regular(&canon).map_err(io)?;
    let want = nbytes as u64;
    if let Some(len) = length {
        if len != want {
            return Err(ext_err(
                name,
                format!("length {len} does not match the {want} bytes its dimensions need"),
            ));
        }
    }
    if offset.checked_add(want).is_none_or(|end| end > file_len) {
        return Err(OnnxError::ExternalDataRange {
            name: name.to_string(),
            path,
            offset,
            length: want,
            file_len,
        });
    }
    file.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut buf = vec![0u8; nbytes];
    file.read_exact(&mut buf).map_err(io)?;
    Ok(buf)
}
