//! Resource caps: the largest sizes Strata accepts from any input, in one place.
//!
//! Strata runs in build systems and CI on files from anywhere, so a size read from a file (a
//! header length, a dimension, a shape product) is checked here before anything is allocated,
//! read or multiplied further. Every reader (ONNX import, the `.strata` container, the IR
//! text, `.npy`) and the runtime use these caps, so a file is refused the same way whichever
//! tool reads it. The caps are far above any model Strata targets and far below what would
//! exhaust a build machine; a file beyond them is refused with [`LimitError`], naming the cap.

use crate::{DType, Dim, TensorType};

/// Most bytes one tensor may occupy (4 GiB): a constant, an array read from a file, a value of
/// a graph at batch size 1, or a tensor a kernel allocates at run time.
pub const MAX_TENSOR_BYTES: u64 = 1 << 32;

/// Most elements one tensor may have (2^32), whatever its element type.
pub const MAX_TENSOR_ELEMENTS: u64 = 1 << 32;

/// Most bytes of one file read whole into memory (a model, an IR text, a `.npy` array): a
/// tensor at [`MAX_TENSOR_BYTES`] plus room for its header. Regular files are measured before
/// they are read; pipes and devices are read up to this size and refused past it.
pub const MAX_FILE_BYTES: u64 = MAX_TENSOR_BYTES + (1 << 20);

/// Most bytes of a serialized protobuf message (an ONNX model file): protobuf's own limit, so
/// a larger `.onnx` file cannot be valid and is refused before it is read. Models beyond it
/// keep their weights in external data files, each tensor capped by [`MAX_TENSOR_BYTES`].
pub const MAX_PROTOBUF_BYTES: u64 = (1 << 31) - 1;

/// Most bytes of a `.npy` header: numpy's own default (`max_header_size` of `np.load`), which
/// every header numpy writes for a plain array fits easily.
pub const MAX_NPY_HEADER_BYTES: usize = 10_000;

/// Most bytes of file content quoted in an error message; longer text is cut with a note of
/// how much was left out, so a hostile file cannot flood a terminal or a CI log.
pub const MAX_QUOTED_BYTES: usize = 64;

/// Longest word (a run without whitespace) of an error message as printed, and longest
/// message: names taken from a file (an op type, a node name) can be megabytes long.
pub const MAX_MESSAGE_WORD_BYTES: usize = 256;
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// A size beyond one of the caps, or one whose arithmetic overflows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("shape {shape:?} has more elements than fit in 64 bits")]
    Overflow { shape: Vec<u64> },
    /// `elements` counts an empty axis as 1, so `[0, 2^40]` is refused too: code that
    /// computes strides or offsets from the dimensions never meets a huge one.
    #[error(
        "shape {shape:?} spans {elements} elements, more than the limit of {MAX_TENSOR_ELEMENTS}"
    )]
    Elements { shape: Vec<u64>, elements: u64 },
    #[error(
        "{dtype} shape {shape:?} needs {bytes} bytes, more than the limit of {MAX_TENSOR_BYTES}"
    )]
    Bytes {
        dtype: DType,
        shape: Vec<u64>,
        /// At most `MAX_TENSOR_ELEMENTS` × 8, so it fits.
        bytes: u64,
    },
}

/// Element count of a shape, checked against overflow and [`MAX_TENSOR_ELEMENTS`]. The check
/// counts an empty axis as 1, so the other dimensions of an empty tensor are bounded too.
pub fn element_count(shape: &[u64]) -> Result<u64, LimitError> {
    let span = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d.max(1)))
        .ok_or_else(|| LimitError::Overflow {
            shape: shape.to_vec(),
        })?;
    if span > MAX_TENSOR_ELEMENTS {
        return Err(LimitError::Elements {
            shape: shape.to_vec(),
            elements: span,
        });
    }
    Ok(if shape.contains(&0) { 0 } else { span })
}

/// Dimensions read from a file as `usize`, or `None` when one does not fit this host (an
/// empty tensor may name a huge dimension next to a zero, which the byte checks allow).
pub fn usize_dims(shape: &[u64]) -> Option<Vec<usize>> {
    shape.iter().map(|&d| usize::try_from(d).ok()).collect()
}

/// Bytes of a `dtype` tensor of `shape`, checked against both caps. The result fits `usize`
/// on 64-bit hosts; callers on 32-bit hosts convert with `usize::try_from`.
pub fn tensor_bytes(dtype: DType, shape: &[u64]) -> Result<u64, LimitError> {
    // `element_count` caps `n` at 2^32, so the product fits in 64 bits.
    let bytes = element_count(shape)? * dtype.size_bytes() as u64;
    if bytes > MAX_TENSOR_BYTES {
        return Err(LimitError::Bytes {
            dtype,
            shape: shape.to_vec(),
            bytes,
        });
    }
    Ok(bytes)
}

/// [`tensor_bytes`] of concrete `usize` dimensions.
pub fn tensor_bytes_usize(dtype: DType, shape: &[usize]) -> Result<usize, LimitError> {
    let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    let bytes = tensor_bytes(dtype, &dims)?;
    usize::try_from(bytes).map_err(|_| LimitError::Bytes {
        dtype,
        shape: dims,
        bytes,
    })
}

/// Checks a static type at batch size `batch` (the batch dimension `N` counts as `batch`).
pub fn check_type(ty: &TensorType, batch: usize) -> Result<u64, LimitError> {
    let dims: Vec<u64> = ty
        .shape
        .dims()
        .iter()
        .map(|d| match d {
            Dim::Known(n) => *n as u64,
            Dim::Batch => batch as u64,
        })
        .collect();
    tensor_bytes(ty.dtype, &dims)
}

/// At most [`MAX_QUOTED_BYTES`] of `text` (cut at a character boundary), with a note of how
/// much was left out; for quoting file content in error messages.
pub fn excerpt(text: &str) -> String {
    if text.len() <= MAX_QUOTED_BYTES {
        return text.to_string();
    }
    let mut end = MAX_QUOTED_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes)", &text[..end], text.len() - end)
}

/// An error message fit to print: every word over [`MAX_MESSAGE_WORD_BYTES`] cut to an
/// [`excerpt`], and the whole cut at [`MAX_MESSAGE_BYTES`]. Short messages are unchanged.
pub fn shorten_message(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MAX_MESSAGE_BYTES + 64));
    let mut rest = message;
    while !rest.is_empty() {
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, tail) = rest.split_at(word_end);
        if word.len() > MAX_MESSAGE_WORD_BYTES {
            out.push_str(&excerpt(word));
        } else {
            out.push_str(word);
        }
        let space_end = tail
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(tail.len());
        out.push_str(&tail[..space_end]);
        rest = &tail[space_end..];
        if out.len() > MAX_MESSAGE_BYTES {
            let mut end = MAX_MESSAGE_BYTES;
            while !out.is_char_boundary(end) {
                end -= 1;
            }
            let left = out.len() - end + rest.len();
            out.truncate(end);
            out.push_str(&format!("… ({left} more bytes)"));
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Shape;

    #[test]
    fn element_count_refuses_overflow_and_the_cap() {
        assert_eq!(element_count(&[2, 3, 4]), Ok(24));
        assert_eq!(element_count(&[]), Ok(1));
        assert_eq!(element_count(&[0, 1 << 20]), Ok(0));
        assert!(matches!(
            element_count(&[0, u64::MAX]),
            Err(LimitError::Elements { .. })
        ));
        assert!(matches!(
            element_count(&[u64::MAX, 2]),
            Err(LimitError::Overflow { .. })
        ));
        assert!(matches!(
            element_count(&[1 << 16, (1 << 16) + 1]),
            Err(LimitError::Elements { elements, .. }) if elements == (1 << 32) + (1 << 16)
        ));
    }

    #[test]
    fn tensor_bytes_counts_the_element_size() {
        assert_eq!(tensor_bytes(DType::F32, &[1 << 30]), Ok(1 << 32));
        assert!(matches!(
            tensor_bytes(DType::F32, &[(1 << 30) + 1]),
            Err(LimitError::Bytes { bytes, .. }) if bytes == (1 << 32) + 4
        ));
        assert_eq!(tensor_bytes(DType::U8, &[1 << 32]), Ok(1 << 32));
    }

    #[test]
    fn check_type_resolves_the_batch() {
        let ty = TensorType::new(DType::F32, Shape(vec![Dim::Batch, Dim::Known(1 << 20)]));
        assert_eq!(check_type(&ty, 1), Ok(4 << 20));
        assert!(check_type(&ty, 1 << 12).is_err());
    }

    #[test]
    fn shorten_message_cuts_long_words_and_long_messages() {
        let short = "node `conv1` (conv): input 1: rank 3 not allowed";
        assert_eq!(shorten_message(short), short);
        let long = format!("unknown op `{}` here", "A".repeat(1 << 20));
        let cut = shorten_message(&long);
        assert!(cut.starts_with("unknown op `AAAA"), "{cut}");
        assert!(cut.ends_with("(1048514 more bytes) here"), "{cut}");
        let many = "word ".repeat(10_000);
        let cut = shorten_message(&many);
        assert!(cut.len() < MAX_MESSAGE_BYTES + 64, "{}", cut.len());
        assert!(
            cut.ends_with("(45904 more bytes)"),
            "{}",
            &cut[cut.len() - 40..]
        );
    }

    #[test]
    fn excerpt_cuts_long_text_at_a_char_boundary() {
        assert_eq!(excerpt("short"), "short");
        let long = "é".repeat(100);
        let cut = excerpt(&long);
        assert!(cut.starts_with(&"é".repeat(32)), "{cut}");
        assert!(cut.ends_with("(136 more bytes)"), "{cut}");
    }
}
