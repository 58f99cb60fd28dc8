//! Typed access to a node's attributes, with errors that name the node, op and attribute.

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::{AttributeProto, NodeProto, TensorProto};

use super::OnnxError;

/// One ONNX node being imported: its identity for error messages and its attributes.
pub struct NodeCtx<'a> {
    /// The node name used in the IR and in messages (ONNX name, else the first output name).
    pub name: String,
    pub op_type: &'a str,
    pub proto: &'a NodeProto,
    /// The default-domain opset the model imports.
    pub opset: i64,
}

/// The attribute type, falling back to the populated field for old files that omit it.
fn attr_type(a: &AttributeProto) -> Result<AttributeType, i32> {
    match a.type_.enum_value() {
        Ok(AttributeType::UNDEFINED) => Ok(if !a.ints.is_empty() {
            AttributeType::INTS
        } else if !a.floats.is_empty() {
            AttributeType::FLOATS
        } else if !a.strings.is_empty() {
            AttributeType::STRINGS
        } else if a.t.is_some() {
            AttributeType::TENSOR
        } else if a.g.is_some() {
            AttributeType::GRAPH
        } else if !a.s.is_empty() {
            AttributeType::STRING
        } else if a.f != 0.0 {
            AttributeType::FLOAT
        } else {
            AttributeType::INT
        }),
        other => other,
    }
}

fn type_name(t: Result<AttributeType, i32>) -> String {
    match t {
        Ok(t) => format!("{t:?}"),
        Err(code) => format!("unknown type code {code}"),
    }
}

impl<'a> NodeCtx<'a> {
    /// The attribute named `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&'a AttributeProto> {
        self.proto.attribute.iter().find(|a| a.name == name)
    }

    fn typed(
        &self,
        name: &str,
        want: AttributeType,
    ) -> Result<Option<&'a AttributeProto>, OnnxError> {
        let Some(a) = self.attr(name) else {
            return Ok(None);
        };
        let t = attr_type(a);
        if t != Ok(want) {
            return Err(OnnxError::AttributeType {
                node: self.name.clone(),
                op_type: self.op_type.to_string(),
                attr: name.to_string(),
                expected: match want {
                    AttributeType::INT => "INT",
                    AttributeType::INTS => "INTS",
                    AttributeType::FLOAT => "FLOAT",
                    AttributeType::FLOATS => "FLOATS",
                    AttributeType::STRING => "STRING",
                    AttributeType::TENSOR => "TENSOR",
                    _ => "another type",
                },
                got: type_name(t),
            });
        }
        Ok(Some(a))
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, OnnxError> {
        Ok(self.typed(name, AttributeType::INT)?.map(|a| a.i))
    }

    pub fn int_or(&self, name: &str, default: i64) -> Result<i64, OnnxError> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    /// An int attribute that must be 0 or 1.
    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool, OnnxError> {
        match self.int(name)? {
            None => Ok(default),
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            Some(v) => Err(self.out_of_range(name, format!("{v} is not 0 or 1"))),
        }
    }

    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, OnnxError> {
        Ok(self
            .typed(name, AttributeType::INTS)?
            .map(|a| a.ints.clone()))
    }

    pub fn float(&self, name: &str) -> Result<Option<f32>, OnnxError> {
        Ok(self.typed(name, AttributeType::FLOAT)?.map(|a| a.f))
    }

    pub fn float_or(&self, name: &str, default: f32) -> Result<f32, OnnxError> {
        Ok(self.float(name)?.unwrap_or(default))
    }

    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>, OnnxError> {
        Ok(self
            .typed(name, AttributeType::FLOATS)?
            .map(|a| a.floats.clone()))
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, OnnxError> {
        Ok(self
            .typed(name, AttributeType::STRING)?
            .map(|a| String::from_utf8_lossy(&a.s).into_owned()))
    }

    pub fn tensor(&self, name: &str) -> Result<Option<&'a TensorProto>, OnnxError> {
        Ok(self
            .typed(name, AttributeType::TENSOR)?
            .and_then(|a| a.t.as_ref()))
    }

    pub fn required<T>(&self, name: &str, v: Option<T>) -> Result<T, OnnxError> {
        v.ok_or_else(|| OnnxError::MissingAttribute {
            node: self.name.clone(),
            op_type: self.op_type.to_string(),
            attr: name.to_string(),
        })
    }

    pub fn out_of_range(&self, attr: &str, reason: impl Into<String>) -> OnnxError {
        OnnxError::AttributeOutOfRange {
            node: self.name.clone(),
            op_type: self.op_type.to_string(),
            attr: attr.to_string(),
            reason: reason.into(),
        }
    }

    pub fn unsupported_value(&self, attr: &str, value: impl Into<String>) -> OnnxError {
        OnnxError::UnsupportedAttributeValue {
            node: self.name.clone(),
            op_type: self.op_type.to_string(),
            attr: attr.to_string(),
            value: value.into(),
        }
    }

    pub fn unsupported(&self, reason: impl Into<String>) -> OnnxError {
        OnnxError::Unsupported {
            node: self.name.clone(),
            op_type: self.op_type.to_string(),
            reason: reason.into(),
        }
    }

    pub fn input_count(&self, reason: impl Into<String>) -> OnnxError {
        OnnxError::InputCount {
            node: self.name.clone(),
            op_type: self.op_type.to_string(),
            reason: reason.into(),
        }
    }

    pub fn non_constant(&self, input: &str) -> OnnxError {
        OnnxError::NonConstantInput {
            node: self.name.clone(),
            op_type: self.op_type.to_string(),
            input: input.to_string(),
        }
    }

    /// Normalises an axis in `[-rank, rank)` (or `[-rank, rank]` with `inclusive`) to non-negative.
    pub fn axis(
        &self,
        attr: &str,
        axis: i64,
        rank: usize,
        inclusive: bool,
    ) -> Result<usize, OnnxError> {
        let r = rank as i64;
        let hi = if inclusive { r } else { r - 1 };
        if axis < -r || axis > hi {
            return Err(self.out_of_range(
                attr,
                format!("axis {axis} is outside [{}, {hi}] for rank {rank}", -r),
            ));
        }
        Ok(if axis < 0 {
            (axis + r) as usize
        } else {
            axis as usize
        })
    }

    /// Normalises a list of axes, rejecting duplicates; the result is sorted.
    pub fn axes(&self, attr: &str, axes: &[i64], rank: usize) -> Result<Vec<usize>, OnnxError> {
        let mut out = axes
            .iter()
            .map(|&a| self.axis(attr, a, rank, false))
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_unstable();
        if out.windows(2).any(|w| w[0] == w[1]) {
            return Err(self.out_of_range(attr, format!("duplicate axes in {axes:?}")));
        }
        Ok(out)
    }
}
