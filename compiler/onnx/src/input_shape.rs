//! Input shapes a user pins at import (`--input-shape NAME=Nx3x224x224`), as onnxruntime's
//! free-dimension overrides, onnx-mlir's `--shapeInformation` and onnxsim's
//! `--overwrite-input-shape` do. Strata compiles ahead of time with static shapes except a
//! free batch dimension, so a model whose other input dims are symbolic (or `-1`) needs them.

use std::fmt;
use std::str::FromStr;

/// One dimension of a pinned input shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputDim {
    /// The free batch dimension (`N`); only at axis 0.
    Batch,
    /// A static size.
    Size(usize),
}

/// A graph input's shape as the user pins it: `Nx3x224x224` keeps the batch free,
/// `1x3x224x224` fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputShape(pub Vec<InputDim>);

/// Largest size a pinned dimension may have (the same bound as a declared one).
const MAX_DIM: u64 = crate::MAX_ELEMENTS;

/// Why an input-shape text does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("input shape `{text}`: {reason} (expected dims separated by `x`, e.g. `Nx3x224x224`; `N` keeps the batch free)")]
pub struct InputShapeError {
    pub text: String,
    pub reason: String,
}

fn shape_error(text: &str, reason: String) -> InputShapeError {
    InputShapeError {
        text: text.chars().take(80).collect(),
        reason,
    }
}

impl FromStr for InputShape {
    type Err = InputShapeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| shape_error(text, reason);
        if text.trim().is_empty() {
            return Err(err("no dimensions".into()));
        }
        let parts: Vec<&str> = text.split(['x', 'X']).collect();
        if parts.len() > 64 {
            return Err(err(format!("{} dimensions (at most 64)", parts.len())));
        }
        let mut dims = Vec::with_capacity(parts.len());
        for (axis, part) in parts.iter().map(|p| p.trim()).enumerate() {
            if part == "N" || part == "n" {
                if axis != 0 {
                    return Err(err(format!(
                        "`N` (the free batch) at axis {axis}: only axis 0 can be the batch"
                    )));
                }
                dims.push(InputDim::Batch);
                continue;
            }
            match part.parse::<u64>() {
                Ok(n) if n <= MAX_DIM => dims.push(InputDim::Size(n as usize)),
                Ok(n) => return Err(err(format!("axis {axis}: {n} exceeds {MAX_DIM}"))),
                Err(_) => return Err(err(format!("axis {axis}: `{part}` is not a size"))),
            }
        }
        Ok(InputShape(dims))
    }
}

impl fmt::Display for InputShape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("x")?;
            }
            match d {
                InputDim::Batch => f.write_str("N")?,
                InputDim::Size(n) => write!(f, "{n}")?,
            }
        }
        Ok(())
    }
}

/// Parses `NAME=SHAPE`, as the command line and the build APIs take it.
pub fn parse_named_input_shape(text: &str) -> Result<(String, InputShape), InputShapeError> {
    let Some((name, shape)) = text.rsplit_once('=') else {
        return Err(shape_error(text, "expected `NAME=SHAPE`".into()));
    };
    if name.is_empty() {
        return Err(shape_error(text, "the input name is empty".into()));
    }
    Ok((name.to_string(), shape.parse()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let s: InputShape = "Nx3x224x224".parse().unwrap();
        assert_eq!(
            s.0,
            vec![
                InputDim::Batch,
                InputDim::Size(3),
                InputDim::Size(224),
                InputDim::Size(224)
            ]
        );
        assert_eq!(s.to_string(), "Nx3x224x224");
        assert_eq!("1x80".parse::<InputShape>().unwrap().to_string(), "1x80");
        let (name, shape) = parse_named_input_shape("images:0=Nx64").unwrap();
        assert_eq!(
            (name.as_str(), shape.to_string().as_str()),
            ("images:0", "Nx64")
        );
    }

    #[test]
    fn rejects_what_is_not_a_shape() {
        for bad in ["", "3xNx4", "3x-1", "3xabc", "3x99999999999999999999", "x3"] {
            assert!(bad.parse::<InputShape>().is_err(), "{bad}");
        }
        assert!(parse_named_input_shape("Nx3").is_err());
        assert!(parse_named_input_shape("=Nx3").is_err());
    }
}
