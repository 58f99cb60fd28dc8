//! Import tests on models built in the test with the ONNX protobuf messages: one per op and
//! opset variant that changes how the frontend translates, asserting the resulting IR.

use std::collections::BTreeMap;
use std::path::PathBuf;

use onnx_protobuf::tensor_proto::{DataLocation, DataType};
use onnx_protobuf::tensor_shape_proto::dimension;
use onnx_protobuf::{type_proto, Message, ModelProto, StringStringEntryProto, TensorProto};
use protobuf::{EnumOrUnknown, MessageField};
use strata_ir::ops::{
    BinaryOp, Clip, Conv, ConvTranspose, Pad, Pool, ReduceMean, Reshape, Slice, Softmax, Split,
    UnaryOp,
};
use strata_ir::{DType, Dim, Graph, NodeKind, Op, Shape, Tensor, TensorData, TensorType};
use strata_onnx::{import_bytes, import_file, tensor_from_proto_bytes, ImportOptions, OnnxError};
use strata_test_support::onnx::*;

// ---------------------------------------------------------------- model building helpers

/// Importing a test model, expecting success or failure.
trait Import {
    fn import(self) -> Graph;
    fn import_err(self) -> OnnxError;
}

impl Import for M {
    fn import(self) -> Graph {
        let bytes = self.bytes();
        match import_bytes(&bytes, None, &ImportOptions::default()) {
            Ok(g) => g,
            Err(e) => panic!("import failed: {e}"),
        }
    }
    fn import_err(self) -> OnnxError {
        match import_bytes(&self.bytes(), None, &ImportOptions::default()) {
            Ok(_) => panic!("import succeeded, expected an error"),
            Err(e) => e,
        }
    }
}

/// The op of the node named `name`.
fn op(g: &Graph, name: &str) -> Op {
    g.node_ids()
        .filter_map(|id| g.node(id).ok())
        .find(|n| n.name == name)
        .and_then(|n| n.op().cloned())
        .unwrap_or_else(|| panic!("no op node `{name}`"))
}

/// Constant tensors feeding the inputs of node `name`, by slot (None for non-constants).
fn const_inputs(g: &Graph, name: &str) -> Vec<Option<Tensor>> {
    let id = g
        .node_ids()
        .find(|&id| g.node(id).is_ok_and(|n| n.name == name))
        .unwrap_or_else(|| panic!("no node `{name}`"));
    g.node_inputs(id)
        .into_iter()
        .map(|v| g.constant_value(v).map(|t| (**t).clone()))
        .collect()
}

fn out_ty(g: &Graph, i: usize) -> TensorType {
    g.value(g.outputs()[i]).expect("output value").ty.clone()
}

fn out_const(g: &Graph, i: usize) -> Option<Tensor> {
    g.constant_value(g.outputs()[i]).map(|t| (**t).clone())
}

fn count_ops(g: &Graph, pred: impl Fn(&Op) -> bool) -> usize {
    g.node_ids()
        .filter_map(|id| g.node(id).ok())
        .filter(|n| n.op().is_some_and(&pred))
        .count()
}

// ---------------------------------------------------------------- elementwise

#[test]
fn clip_attributes_become_constant_inputs_before_opset_11() {
    let g = M::new(10)
        .input(f32vi("x", &[-1, 4]))
        .node(node(
            "Clip",
            "clip",
            &["x"],
            &["y"],
            vec![("min", A::F(0.0)), ("max", A::F(6.0))],
        ))
        .output("y")
        .import();
    assert_eq!(
        op(&g, "clip"),
        Op::Clip(Clip {
            has_min: true,
            has_max: true
        })
    );
    let c = const_inputs(&g, "clip");
    assert!(c[0].is_none());
    assert_eq!(
        c[1].as_ref().and_then(|t| t.as_f32().map(<[f32]>::to_vec)),
        Some(vec![0.0])
    );
    assert_eq!(
        c[2].as_ref().and_then(|t| t.as_f32().map(<[f32]>::to_vec)),
        Some(vec![6.0])
    );
    assert_eq!(
        out_ty(&g, 0),
        TensorType::new(DType::F32, Shape(vec![Dim::Batch, Dim::Known(4)]))
    );
}

#[test]
fn clip_optional_inputs_from_opset_11() {
    let g = M::new(13)
        .input(f32vi("x", &[2, 4]))
        .init(f32_tensor("hi", &[], &[1.5]))
        .node(node("Clip", "clip", &["x", "", "hi"], &["y"], vec![]))
        .output("y")
        .import();
    assert_eq!(
        op(&g, "clip"),
        Op::Clip(Clip {
            has_min: false,
            has_max: true
        })
    );
    let c = const_inputs(&g, "clip");
    assert_eq!(c.len(), 2);
    assert_eq!(
        c[1].as_ref().and_then(|t| t.as_f32().map(<[f32]>::to_vec)),
        Some(vec![1.5])
    );
}

#[test]
fn activation_attributes_and_defaults() {
    let g = M::new(13)
        .input(f32vi("x", &[1, 4]))
        .node(node("LeakyRelu", "lrelu", &["x"], &["a"], vec![]))
        .node(node(
            "HardSigmoid",
            "hsig",
            &["a"],
            &["b"],
            vec![("alpha", A::F(0.25))],
        ))
        .node(node("Sub", "sub", &["b", "x"], &["y"], vec![]))
        .output("y")
        .import();
    assert_eq!(
        op(&g, "lrelu"),
        Op::Unary(UnaryOp::LeakyRelu { alpha: 0.01 })
    );
    assert_eq!(
        op(&g, "hsig"),
        Op::Unary(UnaryOp::HardSigmoid {
            alpha: 0.25,
            beta: 0.5
        })
    );
    assert_eq!(op(&g, "sub"), Op::Binary(BinaryOp::Sub));
}

#[test]
fn constant_inputs_are_folded() {
    let g = M::new(13)
        .init(f32_tensor("a", &[2], &[1.0, 2.0]))
        .init(f32_tensor("b", &[2], &[10.0, 20.0]))
        .node(node("Add", "add", &["a", "b"], &["y"], vec![]))
        .output("y")
        .import();
    let y = out_const(&g, 0).expect("folded to a constant");
    assert_eq!(y.as_f32(), Some(&[11.0f32, 22.0][..]));
    assert_eq!(count_ops(&g, |_| true), 0);
}

// ---------------------------------------------------------------- conv / pool

#[test]
fn conv_auto_pad_same_upper_and_lower() {
    for (mode, pads) in [
        ("SAME_UPPER", vec![0, 0, 1, 1]),
        ("SAME_LOWER", vec![1, 1, 0, 0]),
    ] {
        let g = M::new(13)
            .input(f32vi("x", &[-1, 3, 4, 4]))
            .init(f32_tensor("w", &[2, 3, 2, 2], &[0.5; 24]))
            .node(node(
                "Conv",
                "conv",
                &["x", "w"],
                &["y"],
                vec![("auto_pad", A::S(mode.into()))],
            ))
            .output("y")
            .import();
        assert_eq!(
            op(&g, "conv"),
            Op::Conv(Conv {
                kernel: vec![2, 2],
                strides: vec![1, 1],
                pads,
                dilations: vec![1, 1],
                group: 1,
                has_bias: false
            }),
            "{mode}"
        );
        assert_eq!(
            out_ty(&g, 0).shape,
            Shape(vec![
                Dim::Batch,
                Dim::Known(2),
                Dim::Known(4),
                Dim::Known(4)
            ])
        );
    }
}

#[test]
fn conv_strided_same_and_depthwise_group() {
    let g = M::new(11)
        .input(f32vi("x", &[1, 4, 5, 5]))
        .init(f32_tensor("w", &[4, 1, 3, 3], &[1.0; 36]))
        .init(f32_tensor("b", &[4], &[0.0; 4]))
        .node(node(
            "Conv",
            "dw",
            &["x", "w", "b"],
            &["y"],
            vec![
                ("auto_pad", A::S("SAME_UPPER".into())),
                ("strides", A::Is(vec![2, 2])),
                ("group", A::I(4)),
            ],
        ))
        .output("y")
        .import();
    assert_eq!(
        op(&g, "dw"),
        Op::Conv(Conv {
            kernel: vec![3, 3],
            strides: vec![2, 2],
            pads: vec![1, 1, 1, 1],
            dilations: vec![1, 1],
            group: 4,
            has_bias: true
        })
    );
    assert_eq!(out_ty(&g, 0), TensorType::known(DType::F32, &[1, 4, 3, 3]));
}

#[test]
fn conv_transpose_output_shape_becomes_pads() {
    // in 3, stride 2, kernel 3: full output 7; output_shape 6 → total padding 1.
    let g = M::new(13)
        .input(f32vi("x", &[1, 1, 3, 3]))
        .init(f32_tensor("w", &[1, 2, 3, 3], &[1.0; 18]))
        .node(node(
            "ConvTranspose",
            "deconv",
            &["x", "w"],
            &["y"],
            vec![
                ("strides", A::Is(vec![2, 2])),
                ("output_shape", A::Is(vec![6, 6])),
            ],
        ))
        .output("y")
        .import();
    let Op::ConvTranspose(ConvTranspose {
        pads,
        output_padding,
        ..
    }) = op(&g, "deconv")
    else {
        panic!("not a conv_transpose")
    };
    assert_eq!(pads, vec![1, 1, 0, 0]);
    assert_eq!(output_padding, vec![0, 0]);
    assert_eq!(out_ty(&g, 0), TensorType::known(DType::F32, &[1, 2, 6, 6]));
}

#[test]
fn pools_and_global_pools() {
    let g = M::new(12)
        .input(f32vi("x", &[-1, 2, 6, 6]))
        .node(node(
            "MaxPool",
            "mp",
            &["x"],
            &["a"],
            vec![
                ("kernel_shape", A::Is(vec![3, 3])),
                ("strides", A::Is(vec![2, 2])),
                ("auto_pad", A::S("SAME_UPPER".into())),
            ],
        ))
        .node(node(
            "AveragePool",
            "ap",
            &["a"],
            &["b"],
            vec![
                ("kernel_shape", A::Is(vec![2, 2])),
                ("pads", A::Is(vec![1, 1, 1, 1])),
                ("count_include_pad", A::I(1)),
            ],
        ))
        .node(node("GlobalAveragePool", "gap", &["b"], &["y"], vec![]))
        .output("y")
        .import();
    assert_eq!(
        op(&g, "mp"),
        Op::MaxPool(Pool {
            kernel: vec![3, 3],
            strides: vec![2, 2],
            pads: vec![0, 0, 1, 1],
            dilations: vec![1, 1],
            ceil_mode: false,
            count_include_pad: false
        })
    );
    let Op::AveragePool(p) = op(&g, "ap") else {
        panic!()
    };
    assert!(p.count_include_pad);
    assert_eq!(p.pads, vec![1, 1, 1, 1]);
    assert_eq!(
        out_ty(&g, 0).shape,
        Shape(vec![
            Dim::Batch,
            Dim::Known(2),
            Dim::Known(1),
            Dim::Known(1)
        ])
    );
}

// ---------------------------------------------------------------- normalization

#[test]
fn softmax_legacy_coerces_to_2d() {
    let g = M::new(11)
        .input(f32vi("x", &[2, 3, 4]))
        .node(node("Softmax", "sm", &["x"], &["y"], vec![]))
        .output("y")
        .import();
    assert_eq!(
        op(&g, "sm"),
        Op::Softmax(Softmax {
            axis: 1,
            coerce_2d: true
        })
    );
    let g = M::new(13)
        .input(f32vi("x", &[2, 3, 4]))
        .node(node("Softmax", "sm", &["x"], &["y"], vec![]))
        .output("y")
        .import();
    assert_eq!(
        op(&g, "sm"),
        Op::Softmax(Softmax {
            axis: 2,
            coerce_2d: false
        })
    );
}

#[test]
fn dropout_is_identity_with_all_true_mask() {
    let g = M::new(13)
        .input(f32vi("x", &[2, 3]))
        .node(node("Dropout", "drop", &["x"], &["y", "mask"], vec![]))
        .output("y")
        .output("mask")
        .import();
    assert_eq!(op(&g, "drop"), Op::Identity);
    let mask = out_const(&g, 1).expect("mask is a constant");
    assert_eq!(mask.shape(), &[2, 3]);
    assert_eq!(mask.data(), &TensorData::Bool(vec![true; 6]));
}

// ---------------------------------------------------------------- layout

#[test]
fn squeeze_attribute_and_input_forms() {
    let g = M::new(11)
        .input(f32vi("x", &[-1, 3, 1]))
        .node(node(
            "Squeeze",
            "sq",
            &["x"],
            &["y"],
            vec![("axes", A::Is(vec![-1]))],
        ))
        .output("y")
        .import();
    assert_eq!(op(&g, "sq"), Op::Squeeze { axes: vec![2] });
    let g = M::new(13)
        .input(f32vi("x", &[-1, 3, 1]))
        .init(i64_tensor("axes", &[2]))
        .node(node("Squeeze", "sq", &["x", "axes"], &["y"], vec![]))
        .node(node("Unsqueeze", "usq", &["y", "axes"], &["z"], vec![]))
        .output("z")
        .import();
    assert_eq!(op(&g, "sq"), Op::Squeeze { axes: vec![2] });
    assert_eq!(op(&g, "usq"), Op::Unsqueeze { axes: vec![2] });
    assert_eq!(
        out_ty(&g, 0).shape,
        Shape(vec![Dim::Batch, Dim::Known(3), Dim::Known(1)])
    );
}

#[test]
fn split_forms() {
    // opset 11: attribute sizes
    let g = M::new(11)
        .input(f32vi("x", &[2, 6]))
        .node(node(
            "Split",
            "sp",
            &["x"],
            &["a", "b"],
            vec![("axis", A::I(-1)), ("split", A::Is(vec![2, 4]))],
        ))
        .output("a")
        .output("b")
        .import();
    assert_eq!(
        op(&g, "sp"),
        Op::Split(Split {
            axis: 1,
            sizes: vec![2, 4]
        })
    );
    // opset 13: sizes as an input
    let g = M::new(13)
        .input(f32vi("x", &[2, 6]))
        .init(i64_tensor("sizes", &[5, 1]))
        .node(node(
            "Split",
            "sp",
            &["x", "sizes"],
            &["a", "b"],
            vec![("axis", A::I(1))],
        ))
        .output("a")
        .output("b")
        .import();
    assert_eq!(
        op(&g, "sp"),
        Op::Split(Split {
            axis: 1,
            sizes: vec![5, 1]
        })
    );
    // opset 18: num_outputs with an uneven last chunk
    let g = M::new(18)
        .input(f32vi("x", &[7, 2]))
        .node(node(
            "Split",
            "sp",
            &["x"],
            &["a", "b", "c"],
            vec![("num_outputs", A::I(3))],
        ))
        .output("a")
        .output("b")
        .output("c")
        .import();
    assert_eq!(
        op(&g, "sp"),
        Op::Split(Split {
            axis: 0,
            sizes: vec![3, 3, 1]
        })
    );
    assert_eq!(out_ty(&g, 2), TensorType::known(DType::F32, &[1, 2]));
    // no sizes: equal parts
    let g = M::new(13)
        .input(f32vi("x", &[-1, 6]))
        .node(node(
            "Split",
            "sp",
            &["x"],
            &["a", "b", "c"],
            vec![("axis", A::I(1))],
        ))
        .output("a")
        .output("b")
        .output("c")
        .import();
    assert_eq!(
        op(&g, "sp"),
        Op::Split(Split {
            axis: 1,
            sizes: vec![2, 2, 2]
        })
    );
}

#[test]
fn pad_forms() {
    // opset 2-10: attributes
    let g = M::new(10)
        .input(f32vi("x", &[1, 2, 3]))
        .node(node(
            "Pad",
            "pad",
            &["x"],
            &["y"],
            vec![
                ("pads", A::Is(vec![0, 1, 2, 0, 1, 2])),
                ("value", A::F(1.5)),
            ],
        ))
        .output("y")
        .import();
    assert_eq!(
        op(&g, "pad"),
        Op::Pad(Pad {
            pads: vec![0, 1, 2, 0, 1, 2],
            value: 1.5
        })
    );
    // opset 11+: inputs
    let g = M::new(13)
        .input(f32vi("x", &[1, 2, 3]))
        .init(i64_tensor("pads", &[0, 0, 1, 0, 0, 1]))
        .init(f32_tensor("cv", &[], &[-2.0]))
        .node(node(
            "Pad",
            "pad",
            &["x", "pads", "cv"],
            &["y"],
            vec![("mode", A::S("constant".into()))],
        ))
        .output("y")
        .import();
    assert_eq!(
        op(&g, "pad"),
        Op::Pad(Pad {
            pads: vec![0, 0, 1, 0, 0, 1],
            value: -2.0
        })
    );
    assert_eq!(out_ty(&g, 0), TensorType::known(DType::F32, &[1, 2, 5]));
    // opset 18: axes
    let g = M::new(18)
        .input(f32vi("x", &[-1, 2, 3]))
        .init(i64_tensor("pads", &[1, 2]))
        .init(i64_tensor("axes", &[-1]))
        .node(node(
            "Pad",
            "pad",
            &["x", "pads", "", "axes"],
            &["y"],
            vec![],
        ))
        .output("y")
        .import();
    assert_eq!(
        op(&g, "pad"),
        Op::Pad(Pad {
            pads: vec![0, 0, 1, 0, 0, 2],
            value: 0.0
        })
    );
}

#[test]
fn slice_attribute_and_input_forms() {
    let g = M::new(9)
        .input(f32vi("x", &[4, 10]))
        .node(node(
            "Slice",
            "sl",
            &["x"],
            &["y"],
            vec![
                ("starts", A::Is(vec![1])),
                ("ends", A::Is(vec![-1])),
                ("axes", A::Is(vec![-1])),
            ],
        ))
        .output("y")
        .import();
    assert_eq!(
        op(&g, "sl"),
        Op::Slice(Slice {
            starts: vec![1],
            ends: vec![-1],
            axes: vec![1],
            steps: vec![1]
        })
    );
    let g = M::new(13)
        .input(f32vi("x", &[4, 10]))
        .init(i64_tensor("s", &[0]))
        .init(i64_tensor("e", &[i64::MAX]))
        .init(i64_tensor("a", &[1]))
        .init(i64_tensor("st", &[3]))
        .node(node(
            "Slice",
            "sl",
            &["x", "s", "e", "a", "st"],
            &["y"],
            vec![],
        ))
        .output("y")
        .import();
    assert_eq!(
        op(&g, "sl"),
        Op::Slice(Slice {
            starts: vec![0],
            ends: vec![i64::MAX],
            axes: vec![1],
            steps: vec![3]
        })
    );
    assert_eq!(out_ty(&g, 0), TensorType::known(DType::F32, &[4, 4]));
}

#[test]
fn transpose_default_perm_is_reversed() {
    let g = M::new(13)
        .input(f32vi("x", &[2, 3, 4]))
        .node(node("Transpose", "tr", &["x"], &["y"], vec![]))
        .output("y")
        .import();
    assert_eq!(
        op(&g, "tr"),
        Op::Transpose {
            perm: vec![2, 1, 0]
        }
    );
    assert_eq!(out_ty(&g, 0), TensorType::known(DType::F32, &[4, 3, 2]));
}

/// PyTorch's `x.view(x.size(0), -1)`: the batch size flows through Shape → Gather →
/// Unsqueeze → Concat into Reshape's target and becomes `0` (copy).
#[test]
fn dynamic_flatten_pattern_folds_with_batch() {
    let g = M::new(13)
        .input(f32vi("x", &[-1, 3, 4, 4]))
        .init(TensorProto {
            name: "zero".to_string(),
            data_type: DataType::INT64 as i32,
            raw_data: 0i64.to_le_bytes().to_vec(),
            ..Default::default()
        })
        .init(i64_tensor("minus_one", &[-1]))
        .init(i64_tensor("ax0", &[0]))
        .node(node("Shape", "shape", &["x"], &["s"], vec![]))
        .node(node(
            "Gather",
            "gather",
            &["s", "zero"],
            &["n"],
            vec![("axis", A::I(0))],
        ))
        .node(node("Unsqueeze", "unsq", &["n", "ax0"], &["n1"], vec![]))
        .node(node(
            "Concat",
            "cat",
            &["n1", "minus_one"],
            &["target"],
            vec![("axis", A::I(0))],
        ))
        .node(node("Reshape", "reshape", &["x", "target"], &["y"], vec![]))
        .output("y")
        .import();
    assert_eq!(
        op(&g, "reshape"),
        Op::Reshape(Reshape {
            shape: vec![0, -1],
            allow_zero: false
        })
    );
    assert_eq!(out_ty(&g, 0).shape, Shape(vec![Dim::Batch, Dim::Known(48)]));
    // The shape computation is gone: only the reshape remains.
    assert_eq!(count_ops(&g, |_| true), 1, "{:?}", g);
}

#[test]
fn shape_of_static_dims_is_a_constant() {
    let g = M::new(15)
        .input(f32vi("x", &[-1, 3, 4]))
        .node(node(
            "Shape",
            "shape",
            &["x"],
            &["s"],
            vec![("start", A::I(1))],
        ))
        .output("s")
        .import();
    let s = out_const(&g, 0).expect("constant");
    assert_eq!(s.as_i64(), Some(&[3i64, 4][..]));
}

#[test]
fn reshape_batch_in_wrong_position_is_an_error() {
    let e = M::new(13)
        .input(f32vi("x", &[-1, 6]))
        .init(i64_tensor("idx", &[0]))
        .init(i64_tensor("six", &[6]))
        .node(node("Shape", "shape", &["x"], &["s"], vec![]))
        .node(node("Gather", "gather", &["s", "idx"], &["n"], vec![]))
        .node(node(
            "Concat",
            "cat",
            &["six", "n"],
            &["t"],
            vec![("axis", A::I(0))],
        ))
        .node(node("Reshape", "reshape", &["x", "t"], &["y"], vec![]))
        .output("y")
        .import_err();
    assert!(
        matches!(&e, OnnxError::BatchDependent { node, input, .. } if node == "reshape" && input == "t"),
        "{e:?}"
    );
}

#[test]
fn bind_turns_an_input_into_a_constant() {
    let bytes = M::new(13)
        .input(f32vi("x", &[2, 6]))
        .input(vi("shape", DataType::INT64, &[2]))
        .node(node("Reshape", "reshape", &["x", "shape"], &["y"], vec![]))
        .output("y")
        .bytes();
    let mut opts = ImportOptions::default();
    opts.bind.insert(
        "shape".to_string(),
        Tensor::from_i64(vec![2], vec![3, 4]).expect("tensor"),
    );
    let g = import_bytes(&bytes, None, &opts).expect("import");
    assert_eq!(
        op(&g, "reshape"),
        Op::Reshape(Reshape {
            shape: vec![3, 4],
            allow_zero: false
        })
    );
    assert_eq!(g.inputs().len(), 1);
    // A binding that names no input is an error.
    let mut bad = BTreeMap::new();
    bad.insert("nope".to_string(), Tensor::scalar_f32(1.0));
    let e = import_bytes(
        &bytes,
        None,
        &ImportOptions {
            bind: bad,
            ..Default::default()
        },
    )
    .expect_err("unknown binding");
    assert!(
        matches!(&e, OnnxError::UnknownBinding { name } if name == "nope"),
        "{e:?}"
    );
}

#[test]
fn reduce_mean_attribute_and_input_forms() {
    let g = M::new(13)
        .input(f32vi("x", &[-1, 3, 4, 4]))
        .node(node(
            "ReduceMean",
            "rm",
            &["x"],
            &["y"],
            vec![("axes", A::Is(vec![-1, 2])), ("keepdims", A::I(0))],
        ))
        .output("y")
        .import();
    assert_eq!(
        op(&g, "rm"),
        Op::ReduceMean(ReduceMean {
            axes: vec![2, 3],
            keep_dims: false
        })
    );
    let g = M::new(18)
        .input(f32vi("x", &[2, 3]))
        .node(node(
            "ReduceMean",
            "rm",
            &["x"],
            &["y"],
            vec![("noop_with_empty_axes", A::I(1))],
        ))
        .output("y")
        .import();
    assert_eq!(op(&g, "rm"), Op::Identity);
    let g = M::new(18)
        .input(f32vi("x", &[2, 3]))
        .node(node("ReduceMean", "rm", &["x"], &["y"], vec![]))
        .output("y")
        .import();
    assert_eq!(
        op(&g, "rm"),
        Op::ReduceMean(ReduceMean {
            axes: vec![0, 1],
            keep_dims: true
        })
    );
}

// ---------------------------------------------------------------- constants and tensors

#[test]
fn constant_node_forms() {
    let g = M::new(13)
        .node(node(
            "Constant",
            "c1",
            &[],
            &["a"],
            vec![("value_floats", A::Fs(vec![1.0, 2.0]))],
        ))
        .node(node(
            "Constant",
            "c2",
            &[],
            &["b"],
            vec![("value_int", A::I(7))],
        ))
        .node(node(
            "Constant",
            "c3",
            &[],
            &["c"],
            vec![("value", A::T(Box::new(f32_tensor("", &[1], &[4.0]))))],
        ))
        .output("a")
        .output("b")
        .output("c")
        .import();
    assert_eq!(
        out_const(&g, 0).and_then(|t| t.as_f32().map(<[f32]>::to_vec)),
        Some(vec![1.0, 2.0])
    );
    let b = out_const(&g, 1).expect("b");
    assert_eq!((b.shape(), b.as_i64()), (&[][..], Some(&[7i64][..])));
    assert_eq!(
        out_const(&g, 2).and_then(|t| t.as_f32().map(<[f32]>::to_vec)),
        Some(vec![4.0])
    );
}

#[test]
fn typed_field_initializers() {
    let mk = |name: &str, dt: DataType, f: &dyn Fn(&mut TensorProto)| {
        let mut t = TensorProto {
            name: name.to_string(),
            dims: vec![3],
            data_type: dt as i32,
            ..Default::default()
        };
        f(&mut t);
        t
    };
    let inits = vec![
        mk("f", DataType::FLOAT, &|t| {
            t.float_data = vec![1.0, -2.0, 3.5]
        }),
        mk("d", DataType::DOUBLE, &|t| {
            t.double_data = vec![0.25, 1.0, 2.0]
        }),
        mk("i8", DataType::INT8, &|t| t.int32_data = vec![-128, 0, 127]),
        mk("u8", DataType::UINT8, &|t| t.int32_data = vec![0, 1, 255]),
        mk("b", DataType::BOOL, &|t| t.int32_data = vec![1, 0, 1]),
        mk("i32", DataType::INT32, &|t| t.int32_data = vec![-5, 6, 7]),
        mk("i64", DataType::INT64, &|t| {
            t.int64_data = vec![i64::MIN, 0, i64::MAX]
        }),
    ];
    let mut m = M::new(13);
    for t in inits {
        let name = t.name.clone();
        m = m.init(t).output(&name);
    }
    let g = m.import();
    let data: Vec<TensorData> = (0..7)
        .map(|i| out_const(&g, i).expect("const").data().clone())
        .collect();
    assert_eq!(data[0], TensorData::F32(vec![1.0, -2.0, 3.5]));
    assert_eq!(data[1], TensorData::F64(vec![0.25, 1.0, 2.0]));
    assert_eq!(data[2], TensorData::I8(vec![-128, 0, 127]));
    assert_eq!(data[3], TensorData::U8(vec![0, 1, 255]));
    assert_eq!(data[4], TensorData::Bool(vec![true, false, true]));
    assert_eq!(data[5], TensorData::I32(vec![-5, 6, 7]));
    assert_eq!(data[6], TensorData::I64(vec![i64::MIN, 0, i64::MAX]));
}

#[test]
fn int8_out_of_range_in_int32_data_is_an_error() {
    let e = M::new(13)
        .init(TensorProto {
            name: "w8".to_string(),
            dims: vec![2],
            data_type: DataType::INT8 as i32,
            int32_data: vec![1, 300],
            ..Default::default()
        })
        .output("w8")
        .import_err();
    assert!(
        matches!(&e, OnnxError::InvalidTensor { name, .. } if name == "w8"),
        "{e:?}"
    );
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("strata-onnx-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn external(name: &str, location: &str, offset: u64) -> TensorProto {
    let kv = |k: &str, v: String| StringStringEntryProto {
        key: k.to_string(),
        value: v,
        ..Default::default()
    };
    TensorProto {
        name: name.to_string(),
        dims: vec![2, 2],
        data_type: DataType::FLOAT as i32,
        data_location: EnumOrUnknown::new(DataLocation::EXTERNAL),
        external_data: vec![
            kv("location", location.to_string()),
            kv("offset", offset.to_string()),
            kv("length", "16".to_string()),
        ],
        ..Default::default()
    }
}

#[test]
fn external_data_initializer() {
    let dir = temp_dir("ext");
    let mut blob = vec![0u8; 8]; // data starts at offset 8
    for v in [1.0f32, 2.0, 3.0, 4.0] {
        blob.extend(v.to_le_bytes());
    }
    std::fs::create_dir_all(dir.join("data")).expect("mkdir");
    std::fs::write(dir.join("data/weights.bin"), &blob).expect("write weights");
    let bytes = M::new(13)
        .input(f32vi("x", &[2, 2]))
        .init(external("w", "data/weights.bin", 8))
        .node(node("MatMul", "mm", &["x", "w"], &["y"], vec![]))
        .output("y")
        .bytes();
    std::fs::write(dir.join("model.onnx"), &bytes).expect("write model");
    let g = import_file(&dir.join("model.onnx"), &ImportOptions::default()).expect("import");
    assert_eq!(op(&g, "mm"), Op::MatMul);
    let w = const_inputs(&g, "mm")[1].clone().expect("weight constant");
    assert_eq!(w.shape(), &[2, 2]);
    assert_eq!(w.as_f32(), Some(&[1.0f32, 2.0, 3.0, 4.0][..]));
    // Without a model directory, external data cannot be resolved.
    let e = import_bytes(&bytes, None, &ImportOptions::default()).expect_err("no dir");
    assert!(
        matches!(&e, OnnxError::ExternalData { name, .. } if name == "w"),
        "{e:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn tensor_proto_bytes_round_trip() {
    let bytes = f32_tensor("input_0", &[2], &[0.5, -1.0])
        .write_to_bytes()
        .expect("serialize");
    let (name, t) = tensor_from_proto_bytes(&bytes).expect("decode");
    assert_eq!(name, "input_0");
    assert_eq!(
        t,
        Tensor::from_f32(vec![2], vec![0.5, -1.0]).expect("tensor")
    );
    assert!(matches!(
        tensor_from_proto_bytes(&[0xff; 5]),
        Err(OnnxError::Decode { .. })
    ));
    // A segment (a chunk of a larger tensor) is refused, not imported as the whole tensor.
    let mut seg = f32_tensor("part", &[2], &[0.5, -1.0]);
    seg.segment = MessageField::some(onnx_protobuf::tensor_proto::Segment {
        begin: 2,
        end: 4,
        ..Default::default()
    });
    let e = tensor_from_proto_bytes(&seg.write_to_bytes().expect("serialize")).unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(&e, OnnxError::InvalidTensor { name, .. } if name == "part")
            && text.contains("segment")
            && text.contains("2..4"),
        "{text}"
    );
}

// ---------------------------------------------------------------- graph structure

#[test]
fn unsorted_nodes_are_ordered_and_initializer_inputs_are_constants() {
    let mut input_w = f32vi("w", &[4]);
    input_w.name = "w".to_string();
    let g = M::new(13)
        .input(f32vi("x", &[-1, 4]))
        .input(input_w)
        .init(f32_tensor("w", &[4], &[1.0; 4]))
        .node(node("Relu", "", &["a"], &["y"], vec![]))
        .node(node("Mul", "", &["x", "w"], &["a"], vec![]))
        .output("y")
        .import();
    // Unnamed nodes are named after their first output.
    assert_eq!(op(&g, "y"), Op::Unary(UnaryOp::Relu));
    assert_eq!(op(&g, "a"), Op::Binary(BinaryOp::Mul));
    assert_eq!(
        g.inputs().len(),
        1,
        "`w` has an initializer, so it is a constant"
    );
    assert!(const_inputs(&g, "a")[1].is_some());
    let kinds: Vec<bool> = g
        .topo_order()
        .expect("acyclic")
        .into_iter()
        .map(|id| matches!(g.node(id).expect("node").kind, NodeKind::Op(_)))
        .collect();
    assert_eq!(kinds.iter().filter(|&&k| k).count(), 2);
}

#[test]
fn gemm_and_flatten() {
    let g = M::new(13)
        .input(f32vi("x", &[-1, 2, 3]))
        .init(f32_tensor("w", &[4, 6], &[0.0; 24]))
        .node(node("Flatten", "fl", &["x"], &["f"], vec![]))
        .node(node(
            "Gemm",
            "fc",
            &["f", "w"],
            &["y"],
            vec![("transB", A::I(1)), ("alpha", A::F(2.0))],
        ))
        .output("y")
        .import();
    assert_eq!(op(&g, "fl"), Op::Flatten { axis: 1 });
    let Op::Gemm(gm) = op(&g, "fc") else { panic!() };
    assert!(gm.trans_b && !gm.trans_a && !gm.has_c);
    assert_eq!(gm.alpha, 2.0);
    assert_eq!(out_ty(&g, 0).shape, Shape(vec![Dim::Batch, Dim::Known(4)]));
}

#[test]
fn cast_and_batchnorm() {
    let g = M::new(15)
        .input(f32vi("x", &[-1, 2, 2, 2]))
        .init(f32_tensor("s", &[2], &[1.0, 1.0]))
        .init(f32_tensor("b", &[2], &[0.0, 0.0]))
        .init(f32_tensor("m", &[2], &[0.0, 0.0]))
        .init(f32_tensor("v", &[2], &[1.0, 1.0]))
        .node(node(
            "BatchNormalization",
            "bn",
            &["x", "s", "b", "m", "v"],
            &["a"],
            vec![("epsilon", A::F(1e-3))],
        ))
        .node(node(
            "Cast",
            "cast",
            &["a"],
            &["y"],
            vec![("to", A::I(DataType::DOUBLE as i64))],
        ))
        .output("y")
        .import();
    let Op::BatchNorm(bn) = op(&g, "bn") else {
        panic!()
    };
    assert_eq!(bn.epsilon, 1e-3);
    assert_eq!(op(&g, "cast"), Op::Cast { to: DType::F64 });
    assert_eq!(out_ty(&g, 0).dtype, DType::F64);
}

// ---------------------------------------------------------------- more error paths and edge cases

#[test]
fn dropout_training_with_zero_ratio_is_identity() {
    let g = M::new(13)
        .input(f32vi("x", &[2, 2]))
        .init(f32_tensor("r", &[], &[0.0]))
        .init(TensorProto {
            name: "t".to_string(),
            data_type: DataType::BOOL as i32,
            int32_data: vec![1],
            ..Default::default()
        })
        .node(node("Dropout", "drop", &["x", "r", "t"], &["y"], vec![]))
        .output("y")
        .import();
    assert_eq!(op(&g, "drop"), Op::Identity);
    let e = M::new(13)
        .input(f32vi("x", &[2, 2]))
        .init(f32_tensor("r", &[], &[0.5]))
        .init(TensorProto {
            name: "t".to_string(),
            data_type: DataType::BOOL as i32,
            int32_data: vec![1],
            ..Default::default()
        })
        .node(node("Dropout", "drop", &["x", "r", "t"], &["y"], vec![]))
        .output("y")
        .import_err();
    assert!(
        matches!(&e, OnnxError::Unsupported { node, .. } if node == "drop"),
        "{e:?}"
    );
}

#[test]
fn model_without_graph_or_opset() {
    let bytes = ModelProto {
        ir_version: 8,
        ..Default::default()
    }
    .write_to_bytes()
    .expect("serialize");
    let e = import_bytes(&bytes, None, &ImportOptions::default()).expect_err("no graph");
    assert!(matches!(e, OnnxError::MissingGraph), "{e:?}");

    let mut m = ModelProto::parse_from_bytes(
        &M::new(13)
            .input(f32vi("x", &[1]))
            .node(node("Relu", "r", &["x"], &["y"], vec![]))
            .output("y")
            .bytes(),
    )
    .expect("parse");
    m.opset_import.clear();
    let e = import_bytes(
        &m.write_to_bytes().expect("ser"),
        None,
        &ImportOptions::default(),
    )
    .expect_err("no opset");
    assert!(
        matches!(&e, OnnxError::MissingOpset { node, .. } if node == "r"),
        "{e:?}"
    );
}

#[test]
fn input_without_shape_is_unsupported() {
    let mut x = f32vi("x", &[1]);
    if let Some(type_proto::Value::TensorType(t)) = x.type_.as_mut().and_then(|t| t.value.as_mut())
    {
        t.shape = MessageField::none();
    }
    let e = M::new(13)
        .input(x)
        .node(node("Relu", "r", &["x"], &["y"], vec![]))
        .output("y")
        .import_err();
    assert!(
        matches!(&e, OnnxError::UnsupportedType { name, .. } if name == "x"),
        "{e:?}"
    );
}

#[test]
fn typed_field_length_mismatch() {
    let e = M::new(13)
        .init(TensorProto {
            name: "w".to_string(),
            dims: vec![2, 2],
            data_type: DataType::FLOAT as i32,
            float_data: vec![1.0, 2.0, 3.0],
            ..Default::default()
        })
        .output("w")
        .import_err();
    assert!(
        matches!(&e, OnnxError::TensorDataLength { name, field: "float_data", expected: 4, got: 3, .. } if name == "w"),
        "{e:?}"
    );
}

#[test]
fn external_data_file_missing() {
    let dir = temp_dir("ext-missing");
    let bytes = M::new(13)
        .init(external("w", "absent.bin", 0))
        .output("w")
        .bytes();
    std::fs::write(dir.join("model.onnx"), &bytes).expect("write model");
    let e = import_file(&dir.join("model.onnx"), &ImportOptions::default()).expect_err("missing");
    assert!(
        matches!(&e, OnnxError::ExternalDataIo { name, .. } if name == "w"),
        "{e:?}"
    );
    mentions_str(&e.to_string(), "absent.bin");
    let _ = std::fs::remove_dir_all(&dir);
}

fn mentions_str(msg: &str, needle: &str) {
    assert!(msg.contains(needle), "`{msg}` does not mention `{needle}`");
}

#[test]
fn too_many_inputs() {
    let e = M::new(13)
        .input(f32vi("x", &[1]))
        .node(node("Relu", "r", &["x", "x"], &["y"], vec![]))
        .output("y")
        .import_err();
    assert!(
        matches!(&e, OnnxError::InputCount { node, .. } if node == "r"),
        "{e:?}"
    );
}

#[test]
fn binding_of_the_wrong_shape() {
    let bytes = M::new(13)
        .input(f32vi("x", &[2, 6]))
        .input(vi("shape", DataType::INT64, &[2]))
        .node(node("Reshape", "reshape", &["x", "shape"], &["y"], vec![]))
        .output("y")
        .bytes();
    let mut opts = ImportOptions::default();
    opts.bind.insert(
        "shape".to_string(),
        Tensor::from_i64(vec![3], vec![3, 2, 2]).expect("tensor"),
    );
    let e = import_bytes(&bytes, None, &opts).expect_err("mismatch");
    assert!(
        matches!(&e, OnnxError::BindingMismatch { name, .. } if name == "shape"),
        "{e:?}"
    );
}

#[test]
fn unknown_auto_pad_value() {
    let e = M::new(13)
        .input(f32vi("x", &[1, 1, 4, 4]))
        .init(f32_tensor("w", &[1, 1, 2, 2], &[1.0; 4]))
        .node(node(
            "Conv",
            "conv",
            &["x", "w"],
            &["y"],
            vec![("auto_pad", A::S("SAME_MIDDLE".into()))],
        ))
        .output("y")
        .import_err();
    assert!(
        matches!(&e, OnnxError::UnsupportedAttributeValue { node, attr, .. } if node == "conv" && attr == "auto_pad"),
        "{e:?}"
    );
}

#[test]
fn split_num_outputs_that_cannot_fit() {
    // 5 split into 4 chunks of ceil(5/4) = 2 would need 6.
    let e = M::new(18)
        .input(f32vi("x", &[5]))
        .node(node(
            "Split",
            "sp",
            &["x"],
            &["a", "b", "c", "d"],
            vec![("num_outputs", A::I(4))],
        ))
        .output("a")
        .import_err();
    assert!(
        matches!(&e, OnnxError::AttributeOutOfRange { node, attr, .. } if node == "sp" && attr == "num_outputs"),
        "{e:?}"
    );
}

#[test]
fn opsets_after_22_are_accepted_for_unchanged_ops() {
    let g = M::new(25)
        .input(f32vi("x", &[-1, 2, 3]))
        .init(i64_tensor("s", &[0, 6]))
        .node(node("Reshape", "reshape", &["x", "s"], &["y"], vec![]))
        .output("y")
        .import();
    assert_eq!(
        op(&g, "reshape"),
        Op::Reshape(Reshape {
            shape: vec![0, 6],
            allow_zero: false
        })
    );
    assert_eq!(out_ty(&g, 0).shape, Shape(vec![Dim::Batch, Dim::Known(6)]));
}

#[test]
fn squeeze_without_axes_keeps_the_batch_dimension() {
    let g = M::new(13)
        .input(f32vi("x", &[-1, 1, 3, 1]))
        .node(node("Squeeze", "sq", &["x"], &["y"], vec![]))
        .output("y")
        .import();
    assert_eq!(op(&g, "sq"), Op::Squeeze { axes: vec![1, 3] });
    assert_eq!(out_ty(&g, 0).shape, Shape(vec![Dim::Batch, Dim::Known(3)]));
}

/// `x: f32[N, 3, H, -1]`: a batch, a static, a named symbolic and a `-1` dimension, feeding
/// the `x.view(x.size(0), -1)` pattern.
fn dynamic_input_model() -> Vec<u8> {
    let mut x = f32vi("x", &[-1, 3, 0, 0]);
    if let Some(type_proto::Value::TensorType(t)) = x.type_.as_mut().and_then(|t| t.value.as_mut())
    {
        let dims = &mut t.shape.as_mut().unwrap().dim;
        dims[2].value = Some(dimension::Value::DimParam("H".to_string()));
        dims[3].value = Some(dimension::Value::DimValue(-1));
    }
    M::new(13)
        .input(x)
        .init(TensorProto {
            name: "zero".to_string(),
            data_type: DataType::INT64 as i32,
            raw_data: 0i64.to_le_bytes().to_vec(),
            ..Default::default()
        })
        .init(i64_tensor("minus_one", &[-1]))
        .init(i64_tensor("ax0", &[0]))
        .node(node("Shape", "shape", &["x"], &["s"], vec![]))
        .node(node(
            "Gather",
            "gather",
            &["s", "zero"],
            &["n"],
            vec![("axis", A::I(0))],
        ))
        .node(node("Unsqueeze", "unsq", &["n", "ax0"], &["n1"], vec![]))
        .node(node(
            "Concat",
            "cat",
            &["n1", "minus_one"],
            &["target"],
            vec![("axis", A::I(0))],
        ))
        .node(node("Reshape", "reshape", &["x", "target"], &["y"], vec![]))
        .output("y")
        .bytes()
}

fn with_shapes(shapes: &[(&str, &str)]) -> ImportOptions {
    ImportOptions {
        input_shapes: shapes
            .iter()
            .map(|(n, s)| (n.to_string(), s.parse().unwrap()))
            .collect(),
        ..Default::default()
    }
}

#[test]
fn dynamic_input_dims_need_a_pinned_shape_and_say_how() {
    let bytes = dynamic_input_model();
    let e = import_bytes(&bytes, None, &ImportOptions::default()).unwrap_err();
    match &e {
        OnnxError::SymbolicDim {
            input,
            axis,
            symbol,
            suggestion,
        } => {
            assert_eq!((input.as_str(), *axis, symbol.as_str()), ("x", 2, "H"));
            assert_eq!(suggestion, "Nx3x?x?");
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().contains("`x=Nx3x?x?`"), "{e}");
}

#[test]
fn pinned_input_shapes_make_dims_static_and_keep_the_batch_free() {
    let bytes = dynamic_input_model();
    let g = import_bytes(&bytes, None, &with_shapes(&[("x", "Nx3x8x5")])).unwrap();
    assert_eq!(
        g.value(strata_ir::ValueRef::first(g.inputs()[0]))
            .unwrap()
            .ty
            .shape,
        Shape(vec![
            Dim::Batch,
            Dim::Known(3),
            Dim::Known(8),
            Dim::Known(5)
        ])
    );
    assert_eq!(
        out_ty(&g, 0).shape,
        Shape(vec![Dim::Batch, Dim::Known(120)])
    );
    // The shape computation folded away once the dims were known.
    assert_eq!(count_ops(&g, |_| true), 1, "{g:?}");
    // A number at axis 0 fixes the batch.
    let g = import_bytes(&bytes, None, &with_shapes(&[("x", "2x3x8x5")])).unwrap();
    assert_eq!(
        out_ty(&g, 0).shape,
        Shape(vec![Dim::Known(2), Dim::Known(120)])
    );
}

#[test]
fn pinned_input_shapes_that_do_not_fit_are_errors() {
    let bytes = dynamic_input_model();
    for (name, shape, needle) in [
        ("x", "Nx4x8x8", "axis 1 is 3, not 4"),
        ("x", "Nx3x8", "rank 3 instead of 4"),
        (
            "y",
            "Nx3x8x8",
            "no graph input of this name (its inputs: x)",
        ),
    ] {
        let e = import_bytes(&bytes, None, &with_shapes(&[(name, shape)])).unwrap_err();
        assert!(e.to_string().contains(needle), "{name}={shape}: {e}");
    }
}
