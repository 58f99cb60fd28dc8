//! Building ONNX models in tests from the protobuf messages: value types, nodes with
//! attributes, initializers and a small model builder ([`M`]).

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::{DataLocation, DataType};
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::{
    type_proto, AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use protobuf::{EnumOrUnknown, MessageField};

/// A tensor value type; a negative dim is the symbolic batch dimension `N`.
pub fn vi(name: &str, dtype: DataType, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| Dimension {
            value: Some(if d < 0 {
                dimension::Value::DimParam("N".to_string())
            } else {
                dimension::Value::DimValue(d)
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.to_string(),
        type_: MessageField::some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: dtype as i32,
                shape: MessageField::some(TensorShapeProto {
                    dim,
                    ..Default::default()
                }),
                ..Default::default()
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn f32vi(name: &str, dims: &[i64]) -> ValueInfoProto {
    vi(name, DataType::FLOAT, dims)
}

/// An attribute value: int, ints, float, floats, string, tensor.
pub enum A {
    I(i64),
    Is(Vec<i64>),
    F(f32),
    Fs(Vec<f32>),
    S(String),
    T(Box<TensorProto>),
}

impl A {
    /// The attribute `name = self`: its type tag, then its value in the matching field.
    fn proto(self, name: &str) -> AttributeProto {
        let tag = match &self {
            A::I(_) => AttributeType::INT,
            A::Is(_) => AttributeType::INTS,
            A::F(_) => AttributeType::FLOAT,
            A::Fs(_) => AttributeType::FLOATS,
            A::S(_) => AttributeType::STRING,
            A::T(_) => AttributeType::TENSOR,
        };
        let mut p = AttributeProto {
            name: name.to_string(),
            type_: EnumOrUnknown::new(tag),
            ..Default::default()
        };
        match self {
            A::I(v) => p.i = v,
            A::Is(v) => p.ints = v,
            A::F(v) => p.f = v,
            A::Fs(v) => p.floats = v,
            A::S(v) => p.s = v.into_bytes(),
            A::T(v) => p.t = MessageField::some(*v),
        }
        p
    }
}

pub fn node(op: &str, name: &str, ins: &[&str], outs: &[&str], attrs: Vec<(&str, A)>) -> NodeProto {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    NodeProto {
        op_type: op.to_string(),
        name: name.to_string(),
        input: strings(ins),
        output: strings(outs),
        attribute: attrs.into_iter().map(|(n, a)| a.proto(n)).collect(),
        ..Default::default()
    }
}

/// An initializer of any element type from its little-endian `raw_data`.
pub fn raw_tensor(name: &str, dtype: DataType, dims: &[i64], raw: Vec<u8>) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: dtype as i32,
        raw_data: raw,
        ..Default::default()
    }
}

/// An f32 initializer whose data lives in the file `location` next to the model, with more
/// `external_data` entries (`offset`, `length`) after it.
pub fn external_tensor(
    name: &str,
    dims: &[i64],
    location: &str,
    extra: &[(&str, String)],
) -> TensorProto {
    let mut t = raw_tensor(name, DataType::FLOAT, dims, vec![]);
    t.data_location = EnumOrUnknown::new(DataLocation::EXTERNAL);
    t.external_data = std::iter::once(("location", location.to_string()))
        .chain(extra.iter().map(|(k, v)| (*k, v.clone())))
        .map(|(key, value)| StringStringEntryProto {
            key: key.to_string(),
            value,
            ..Default::default()
        })
        .collect();
    t
}

pub fn f32_tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    let raw = data.iter().flat_map(|x| x.to_le_bytes()).collect();
    raw_tensor(name, DataType::FLOAT, dims, raw)
}

/// A 1-D int64 initializer.
pub fn i64_tensor(name: &str, data: &[i64]) -> TensorProto {
    let raw = data.iter().flat_map(|x| x.to_le_bytes()).collect();
    raw_tensor(name, DataType::INT64, &[data.len() as i64], raw)
}

/// A model under construction: its graph (named `test`) and one default-domain opset.
pub struct M {
    pub graph: GraphProto,
    pub opset: i64,
}

impl M {
    pub fn new(opset: i64) -> M {
        let name = "test".to_string();
        let graph = GraphProto {
            name,
            ..Default::default()
        };
        M { graph, opset }
    }
    pub fn node(mut self, n: NodeProto) -> M {
        self.graph.node.push(n);
        self
    }
    pub fn input(mut self, v: ValueInfoProto) -> M {
        self.graph.input.push(v);
        self
    }
    /// A graph output by name only (its type is inferred on import).
    pub fn output(mut self, name: &str) -> M {
        self.graph.output.push(ValueInfoProto {
            name: name.to_string(),
            ..Default::default()
        });
        self
    }
    pub fn init(mut self, t: TensorProto) -> M {
        self.graph.initializer.push(t);
        self
    }
    pub fn bytes(self) -> Vec<u8> {
        ModelProto {
            ir_version: 8,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: self.opset,
                ..Default::default()
            }],
            graph: MessageField::some(self.graph),
            ..Default::default()
        }
        .write_to_bytes()
        .expect("serialize model")
    }
}
