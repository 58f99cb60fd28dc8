//! Building ONNX models in tests from the protobuf messages: value types, nodes with
//! attributes, initializers and a small model builder ([`M`]).

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::{dimension, Dimension};
use onnx_protobuf::{
    type_proto, AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
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

pub fn node(op: &str, name: &str, ins: &[&str], outs: &[&str], attrs: Vec<(&str, A)>) -> NodeProto {
    let attribute = attrs
        .into_iter()
        .map(|(n, a)| {
            let mut p = AttributeProto {
                name: n.to_string(),
                ..Default::default()
            };
            let t = match a {
                A::I(v) => {
                    p.i = v;
                    AttributeType::INT
                }
                A::Is(v) => {
                    p.ints = v;
                    AttributeType::INTS
                }
                A::F(v) => {
                    p.f = v;
                    AttributeType::FLOAT
                }
                A::Fs(v) => {
                    p.floats = v;
                    AttributeType::FLOATS
                }
                A::S(v) => {
                    p.s = v.as_bytes().to_vec();
                    AttributeType::STRING
                }
                A::T(v) => {
                    p.t = MessageField::some(*v);
                    AttributeType::TENSOR
                }
            };
            p.type_ = EnumOrUnknown::new(t);
            p
        })
        .collect();
    NodeProto {
        op_type: op.to_string(),
        name: name.to_string(),
        input: ins.iter().map(|s| s.to_string()).collect(),
        output: outs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

pub fn f32_tensor(name: &str, dims: &[i64], data: &[f32]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: dims.to_vec(),
        data_type: DataType::FLOAT as i32,
        raw_data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}

pub fn i64_tensor(name: &str, data: &[i64]) -> TensorProto {
    TensorProto {
        name: name.to_string(),
        dims: vec![data.len() as i64],
        data_type: DataType::INT64 as i32,
        raw_data: data.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// A model under construction: nodes, inputs, outputs, initializers, one default opset.
pub struct M {
    pub nodes: Vec<NodeProto>,
    pub inputs: Vec<ValueInfoProto>,
    pub outputs: Vec<ValueInfoProto>,
    pub inits: Vec<TensorProto>,
    pub opset: i64,
}

impl M {
    pub fn new(opset: i64) -> M {
        M {
            nodes: vec![],
            inputs: vec![],
            outputs: vec![],
            inits: vec![],
            opset,
        }
    }
    pub fn node(mut self, n: NodeProto) -> M {
        self.nodes.push(n);
        self
    }
    pub fn input(mut self, v: ValueInfoProto) -> M {
        self.inputs.push(v);
        self
    }
    pub fn output(mut self, name: &str) -> M {
        self.outputs.push(ValueInfoProto {
            name: name.to_string(),
            ..Default::default()
        });
        self
    }
    pub fn init(mut self, t: TensorProto) -> M {
        self.inits.push(t);
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
            graph: MessageField::some(GraphProto {
                name: "test".to_string(),
                node: self.nodes,
                input: self.inputs,
                output: self.outputs,
                initializer: self.inits,
                ..Default::default()
            }),
            ..Default::default()
        }
        .write_to_bytes()
        .expect("serialize model")
    }
}
