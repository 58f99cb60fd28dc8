//! Import tests on models built in the test with the ONNX protobuf messages: one per op and
//! opset variant that changes how the frontend translates, asserting the resulting IR. An
//! op is checked through its IR text (`mnemonic(inputs) {attrs}`), which is lossless.

use std::collections::BTreeMap;
use std::path::PathBuf;

use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::dimension;
use onnx_protobuf::{type_proto, Message, ModelProto, NodeProto, TensorProto};
use protobuf::MessageField;
use strata_ir::ops::{BinaryOp, ConvTranspose, UnaryOp};
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

/// A model on input `x: f32[x]` (a negative dim is the batch) with `inits` and `nodes`,
/// whose outputs are `outs`.
fn model(
    opset: i64,
    x: &[i64],
    inits: Vec<TensorProto>,
    nodes: Vec<NodeProto>,
    outs: &[&str],
) -> M {
    let mut m = M::new(opset).input(f32vi("x", x));
    m.graph.initializer = inits;
    m.graph.node = nodes;
    outs.iter().fold(m, |m, o| m.output(o))
}

/// Imports `y = op_type(ins…)` as node `n` of a [`model`].
fn one(
    opset: i64,
    x: &[i64],
    inits: Vec<TensorProto>,
    n: (&str, &[&str], Vec<(&str, A)>),
) -> Graph {
    let (op_type, ins, attrs) = n;
    model(
        opset,
        x,
        inits,
        vec![node(op_type, "n", ins, &["y"], attrs)],
        &["y"],
    )
    .import()
}

/// The node named `name`.
fn find(g: &Graph, name: &str) -> strata_ir::NodeId {
    g.node_ids()
        .find(|&id| g.node(id).is_ok_and(|n| n.name == name))
        .unwrap_or_else(|| panic!("no node `{name}`"))
}

/// The op of the node named `name`.
fn op(g: &Graph, name: &str) -> Op {
    let node = g.node(find(g, name)).expect("node");
    node.op()
        .cloned()
        .unwrap_or_else(|| panic!("`{name}` is no op node"))
}

/// Node `name` as the IR text prints it (lossless), without its results and node name:
/// `mnemonic(inputs) {attrs} : types`.
fn op_line(g: &Graph, name: &str) -> String {
    let first = &g.node(find(g, name)).expect("node").outputs[0].name;
    let text = strata_ir::text::print(g);
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(&format!("%{first} =")) || l.starts_with(&format!("%{first},")))
        .unwrap_or_else(|| panic!("no line for `{name}` in\n{text}"));
    let rhs = line.split_once(" = ").expect("an op line").1;
    rhs.replacen(&format!(" @{name} :"), " :", 1)
}

/// One single-node case: opset, the dims of `x`, initializers, the op type, its inputs after
/// `x`, its attributes and the node's expected [`op_line`].
type Case<'a> = (
    i64,
    &'a [i64],
    Vec<TensorProto>,
    &'a str,
    &'a [&'a str],
    Vec<(&'a str, A)>,
    &'a str,
);

/// Imports each case as `y = op_type(x, inputs…)` (node `n`) and checks its line.
#[track_caller]
fn check_lines(cases: Vec<Case>) {
    for (opset, x, inits, op_type, ins, attrs, want) in cases {
        let ins: Vec<&str> = std::iter::once("x").chain(ins.iter().copied()).collect();
        let g = one(opset, x, inits, (op_type, &ins, attrs));
        assert_eq!(op_line(&g, "n"), want, "{op_type} in opset {opset}");
    }
}

/// Constant tensors feeding the inputs of node `name`, by slot (None for non-constants).
fn const_inputs(g: &Graph, name: &str) -> Vec<Option<Tensor>> {
    g.node_inputs(find(g, name))
        .into_iter()
        .map(|v| g.constant_value(v).map(|t| (**t).clone()))
        .collect()
}

/// The f32 values of a constant, if it is one.
fn f32s(t: Option<&Tensor>) -> Option<Vec<f32>> {
    t.and_then(|t| t.as_f32().map(<[f32]>::to_vec))
}

fn out_ty(g: &Graph, i: usize) -> TensorType {
    g.value(g.outputs()[i]).expect("output value").ty.clone()
}

/// `[N, dims…]` or fully known (`batch` false) output shapes.
fn shape(batch: bool, dims: &[usize]) -> Shape {
    let lead = batch.then_some(Dim::Batch);
    Shape(
        lead.into_iter()
            .chain(dims.iter().map(|&d| Dim::Known(d)))
            .collect(),
    )
}

fn out_const(g: &Graph, i: usize) -> Option<Tensor> {
    g.constant_value(g.outputs()[i]).map(|t| (**t).clone())
}

fn count_ops(g: &Graph) -> usize {
    g.node_ids()
        .filter_map(|id| g.node(id).ok())
        .filter(|n| n.op().is_some())
        .count()
}

// ---------------------------------------------------------------- single-node translations

/// Attribute and input forms across opsets that come down to one IR op each.
#[test]
fn single_node_forms() {
    let same_upper = || ("auto_pad", A::S("SAME_UPPER".into()));
    let axes = |a: &[i64]| ("axes", A::Is(a.to_vec()));
    let slice_inits = vec![
        i64_tensor("s", &[0]),
        i64_tensor("e", &[i64::MAX]),
        i64_tensor("a", &[1]),
        i64_tensor("st", &[3]),
    ];
    let pad_inits = vec![
        i64_tensor("pads", &[0, 0, 1, 0, 0, 1]),
        f32_tensor("cv", &[], &[-2.0]),
    ];
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        // Conv: SAME_* padding, strides and a depthwise group.
        (11, &[1, 4, 5, 5], vec![f32_tensor("w", &[4, 1, 3, 3], &[1.0; 36]), f32_tensor("b", &[4], &[0.0; 4])],
            "Conv", &["w", "b"], vec![same_upper(), ("strides", A::Is(vec![2, 2])), ("group", A::I(4))],
            "conv(%x, %w, %b) {kernel=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], dilations=[1, 1], group=4, has_bias=true} : f32[1,4,3,3]"),
        // Softmax flattened to 2-D around `axis` (default 1) before opset 13, per axis after.
        (11, &[2, 3, 4], vec![], "Softmax", &[], vec![], "softmax(%x) {axis=1, coerce_2d=true} : f32[2,3,4]"),
        (13, &[2, 3, 4], vec![], "Softmax", &[], vec![], "softmax(%x) {axis=2, coerce_2d=false} : f32[2,3,4]"),
        // Squeeze axes as an attribute before opset 13; without axes the batch stays.
        (11, &[-1, 3, 1], vec![], "Squeeze", &[], vec![axes(&[-1])], "squeeze(%x) {axes=[2]} : f32[N,3]"),
        (13, &[-1, 1, 3, 1], vec![], "Squeeze", &[], vec![], "squeeze(%x) {axes=[1, 3]} : f32[N,3]"),
        // Pad: attributes in opset 2-10, inputs from 11, axes from 18.
        (10, &[1, 2, 3], vec![], "Pad", &[], vec![("pads", A::Is(vec![0, 1, 2, 0, 1, 2])), ("value", A::F(1.5))],
            "pad(%x) {pads=[0, 1, 2, 0, 1, 2], value=1.5} : f32[1,4,7]"),
        (13, &[1, 2, 3], pad_inits, "Pad", &["pads", "cv"], vec![("mode", A::S("constant".into()))],
            "pad(%x) {pads=[0, 0, 1, 0, 0, 1], value=-2.0} : f32[1,2,5]"),
        (18, &[-1, 2, 3], vec![i64_tensor("pads", &[1, 2]), i64_tensor("axes", &[-1])], "Pad", &["pads", "", "axes"], vec![],
            "pad(%x) {pads=[0, 0, 1, 0, 0, 2], value=0.0} : f32[N,2,6]"),
        // Slice: attributes before opset 10, inputs after.
        (9, &[4, 10], vec![], "Slice", &[], vec![("starts", A::Is(vec![1])), ("ends", A::Is(vec![-1])), axes(&[-1])],
            "slice(%x) {starts=[1], ends=[-1], axes=[1], steps=[1]} : f32[4,8]"),
        (13, &[4, 10], slice_inits, "Slice", &["s", "e", "a", "st"], vec![],
            "slice(%x) {starts=[0], ends=[9223372036854775807], axes=[1], steps=[3]} : f32[4,4]"),
        // Transpose's default permutation reverses the axes.
        (13, &[2, 3, 4], vec![], "Transpose", &[], vec![], "transpose(%x) {perm=[2, 1, 0]} : f32[4,3,2]"),
        // ReduceMean: attribute axes; from opset 18 no axes is every axis, or none (identity).
        (13, &[-1, 3, 4, 4], vec![], "ReduceMean", &[], vec![axes(&[-1, 2]), ("keepdims", A::I(0))],
            "reduce_mean(%x) {axes=[2, 3], keep_dims=false} : f32[N,3]"),
        (18, &[2, 3], vec![], "ReduceMean", &[], vec![("noop_with_empty_axes", A::I(1))], "identity(%x) : f32[2,3]"),
        (18, &[2, 3], vec![], "ReduceMean", &[], vec![], "reduce_mean(%x) {axes=[0, 1], keep_dims=true} : f32[1,1]"),
        // Opsets after 22 import the ops that did not change.
        (25, &[-1, 2, 3], vec![i64_tensor("s", &[0, 6])], "Reshape", &["s"], vec![],
            "reshape(%x) {shape=[0, 6], allow_zero=false} : f32[N,6]"),
    ];
    check_lines(cases);
}

#[test]
fn conv_auto_pad_same_upper_and_lower() {
    for (mode, pads) in [
        ("SAME_UPPER", "[0, 0, 1, 1]"),
        ("SAME_LOWER", "[1, 1, 0, 0]"),
    ] {
        let w = f32_tensor("w", &[2, 3, 2, 2], &[0.5; 24]);
        let attrs = vec![("auto_pad", A::S(mode.into()))];
        let g = one(13, &[-1, 3, 4, 4], vec![w], ("Conv", &["x", "w"], attrs));
        let want = format!("conv(%x, %w) {{kernel=[2, 2], strides=[1, 1], pads={pads}, dilations=[1, 1], group=1, has_bias=false}} : f32[N,2,4,4]");
        assert_eq!(op_line(&g, "n"), want, "{mode}");
    }
}

#[test]
fn clip_attributes_become_constant_inputs_before_opset_11() {
    let attrs = vec![("min", A::F(0.0)), ("max", A::F(6.0))];
    let g = one(10, &[-1, 4], vec![], ("Clip", &["x"], attrs));
    let want = "clip(%x, %n_min, %n_max) {has_min=true, has_max=true} : f32[N,4]";
    assert_eq!(op_line(&g, "n"), want);
    let c = const_inputs(&g, "n");
    assert!(c[0].is_none());
    assert_eq!(f32s(c[1].as_ref()), Some(vec![0.0]));
    assert_eq!(f32s(c[2].as_ref()), Some(vec![6.0]));
}

#[test]
fn clip_optional_inputs_from_opset_11() {
    let hi = f32_tensor("hi", &[], &[1.5]);
    let g = one(13, &[2, 4], vec![hi], ("Clip", &["x", "", "hi"], vec![]));
    let want = "clip(%x, %hi) {has_min=false, has_max=true} : f32[2,4]";
    assert_eq!(op_line(&g, "n"), want);
    let c = const_inputs(&g, "n");
    assert_eq!(c.len(), 2);
    assert_eq!(f32s(c[1].as_ref()), Some(vec![1.5]));
}

#[test]
fn activation_attributes_and_defaults() {
    let alpha = vec![("alpha", A::F(0.25))];
    let nodes = vec![
        node("LeakyRelu", "lrelu", &["x"], &["a"], vec![]),
        node("HardSigmoid", "hsig", &["a"], &["b"], alpha),
        node("Sub", "sub", &["b", "x"], &["y"], vec![]),
    ];
    let g = model(13, &[1, 4], vec![], nodes, &["y"]).import();
    assert_eq!(
        op_line(&g, "lrelu"),
        "leaky_relu(%x) {alpha=0.01} : f32[1,4]"
    );
    let want = "hard_sigmoid(%a) {alpha=0.25, beta=0.5} : f32[1,4]";
    assert_eq!(op_line(&g, "hsig"), want);
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
    assert_eq!(count_ops(&g), 0);
}

#[test]
fn conv_transpose_output_shape_becomes_pads() {
    // in 3, stride 2, kernel 3: full output 7; output_shape 6 → total padding 1.
    let attrs = vec![
        ("strides", A::Is(vec![2, 2])),
        ("output_shape", A::Is(vec![6, 6])),
    ];
    let w = f32_tensor("w", &[1, 2, 3, 3], &[1.0; 18]);
    let g = one(
        13,
        &[1, 1, 3, 3],
        vec![w],
        ("ConvTranspose", &["x", "w"], attrs),
    );
    let Op::ConvTranspose(ConvTranspose {
        pads,
        output_padding,
        ..
    }) = op(&g, "n")
    else {
        panic!("not a conv_transpose")
    };
    assert_eq!(pads, vec![1, 1, 0, 0]);
    assert_eq!(output_padding, vec![0, 0]);
    assert_eq!(out_ty(&g, 0), TensorType::known(DType::F32, &[1, 2, 6, 6]));
}

#[test]
fn pools_and_global_pools() {
    let mp = vec![
        ("kernel_shape", A::Is(vec![3, 3])),
        ("strides", A::Is(vec![2, 2])),
        ("auto_pad", A::S("SAME_UPPER".into())),
    ];
    let ap = vec![
        ("kernel_shape", A::Is(vec![2, 2])),
        ("pads", A::Is(vec![1, 1, 1, 1])),
        ("count_include_pad", A::I(1)),
    ];
    let nodes = vec![
        node("MaxPool", "mp", &["x"], &["a"], mp),
        node("AveragePool", "ap", &["a"], &["b"], ap),
        node("GlobalAveragePool", "gap", &["b"], &["y"], vec![]),
    ];
    let g = model(12, &[-1, 2, 6, 6], vec![], nodes, &["y"]).import();
    let want = "max_pool(%x) {kernel=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1], dilations=[1, 1], ceil_mode=false, count_include_pad=false} : f32[N,2,3,3]";
    assert_eq!(op_line(&g, "mp"), want);
    let Op::AveragePool(p) = op(&g, "ap") else {
        panic!()
    };
    assert!(p.count_include_pad);
    assert_eq!(p.pads, vec![1, 1, 1, 1]);
    assert_eq!(out_ty(&g, 0).shape, shape(true, &[2, 1, 1]));
}

#[test]
fn dropout_is_identity_with_all_true_mask() {
    let drop = node("Dropout", "drop", &["x"], &["y", "mask"], vec![]);
    let g = model(13, &[2, 3], vec![], vec![drop], &["y", "mask"]).import();
    assert_eq!(op(&g, "drop"), Op::Identity);
    let mask = out_const(&g, 1).expect("mask is a constant");
    assert_eq!(mask.shape(), &[2, 3]);
    assert_eq!(mask.data(), &TensorData::Bool(vec![true; 6]));
}

#[test]
fn squeeze_and_unsqueeze_axes_as_an_input() {
    let nodes = vec![
        node("Squeeze", "sq", &["x", "axes"], &["y"], vec![]),
        node("Unsqueeze", "usq", &["y", "axes"], &["z"], vec![]),
    ];
    let g = model(
        13,
        &[-1, 3, 1],
        vec![i64_tensor("axes", &[2])],
        nodes,
        &["z"],
    )
    .import();
    assert_eq!(op(&g, "sq"), Op::Squeeze { axes: vec![2] });
    assert_eq!(op(&g, "usq"), Op::Unsqueeze { axes: vec![2] });
    assert_eq!(out_ty(&g, 0).shape, shape(true, &[3, 1]));
}

/// Opset, the dims of `x`, the sizes input (if any), the outputs, the attributes and the
/// expected [`op_line`].
type SplitCase<'a> = (
    i64,
    &'a [i64],
    Option<&'a [i64]>,
    &'a [&'a str],
    Vec<(&'a str, A)>,
    &'a str,
);

#[test]
fn split_forms() {
    let axis = |a| ("axis", A::I(a));
    #[rustfmt::skip]
    let cases: Vec<SplitCase> = vec![
        // opset 11: attribute sizes
        (11, &[2, 6], None, &["a", "b"], vec![axis(-1), ("split", A::Is(vec![2, 4]))],
            "split(%x) {axis=1, sizes=[2, 4]} : f32[2,2], f32[2,4]"),
        // opset 13: sizes as an input
        (13, &[2, 6], Some(&[5, 1]), &["a", "b"], vec![axis(1)], "split(%x) {axis=1, sizes=[5, 1]} : f32[2,5], f32[2,1]"),
        // opset 18: num_outputs with an uneven last chunk
        (18, &[7, 2], None, &["a", "b", "c"], vec![("num_outputs", A::I(3))],
            "split(%x) {axis=0, sizes=[3, 3, 1]} : f32[3,2], f32[3,2], f32[1,2]"),
        // no sizes: equal parts
        (13, &[-1, 6], None, &["a", "b", "c"], vec![axis(1)],
            "split(%x) {axis=1, sizes=[2, 2, 2]} : f32[N,2], f32[N,2], f32[N,2]"),
    ];
    for (opset, x, sizes, outs, attrs, want) in cases {
        let inits: Vec<_> = sizes.map(|s| i64_tensor("sizes", s)).into_iter().collect();
        let ins: &[&str] = if sizes.is_some() {
            &["x", "sizes"]
        } else {
            &["x"]
        };
        let n = node("Split", "sp", ins, outs, attrs);
        let g = model(opset, x, inits, vec![n], outs).import();
        assert_eq!(op_line(&g, "sp"), want, "opset {opset}");
    }
}

// ---------------------------------------------------------------- shapes computed in the graph

/// PyTorch's `x.view(x.size(0), -1)` on input `x`: the batch size flows through Shape →
/// Gather → Unsqueeze → Concat into Reshape's target.
fn view_batch_minus_one(x: onnx_protobuf::ValueInfoProto) -> M {
    let zero = raw_tensor("zero", DataType::INT64, &[], 0i64.to_le_bytes().to_vec());
    let axis0 = || vec![("axis", A::I(0))];
    M::new(13)
        .input(x)
        .init(zero)
        .init(i64_tensor("minus_one", &[-1]))
        .init(i64_tensor("ax0", &[0]))
        .node(node("Shape", "shape", &["x"], &["s"], vec![]))
        .node(node("Gather", "gather", &["s", "zero"], &["n"], axis0()))
        .node(node("Unsqueeze", "unsq", &["n", "ax0"], &["n1"], vec![]))
        .node(node(
            "Concat",
            "cat",
            &["n1", "minus_one"],
            &["target"],
            axis0(),
        ))
        .node(node("Reshape", "reshape", &["x", "target"], &["y"], vec![]))
        .output("y")
}

/// The batch size reaches Reshape's target as `0` (copy).
#[test]
fn dynamic_flatten_pattern_folds_with_batch() {
    let g = view_batch_minus_one(f32vi("x", &[-1, 3, 4, 4])).import();
    let want = "reshape(%x) {shape=[0, -1], allow_zero=false} : f32[N,48]";
    assert_eq!(op_line(&g, "reshape"), want);
    // The shape computation is gone: only the reshape remains.
    assert_eq!(count_ops(&g), 1, "{:?}", g);
}

#[test]
fn shape_of_static_dims_is_a_constant() {
    let start = vec![("start", A::I(1))];
    let shape = node("Shape", "shape", &["x"], &["s"], start);
    let g = model(15, &[-1, 3, 4], vec![], vec![shape], &["s"]).import();
    let s = out_const(&g, 0).expect("constant");
    assert_eq!(s.as_i64(), Some(&[3i64, 4][..]));
}

#[test]
fn reshape_batch_in_wrong_position_is_an_error() {
    let nodes = vec![
        node("Shape", "shape", &["x"], &["s"], vec![]),
        node("Gather", "gather", &["s", "idx"], &["n"], vec![]),
        node(
            "Concat",
            "cat",
            &["six", "n"],
            &["t"],
            vec![("axis", A::I(0))],
        ),
        node("Reshape", "reshape", &["x", "t"], &["y"], vec![]),
    ];
    let inits = vec![i64_tensor("idx", &[0]), i64_tensor("six", &[6])];
    let e = model(13, &[-1, 6], inits, nodes, &["y"]).import_err();
    assert!(
        matches!(&e, OnnxError::BatchDependent { node, input, .. } if node == "reshape" && input == "t"),
        "{e:?}"
    );
}

/// `y = reshape(x, shape)` with both as graph inputs.
fn reshape_by_input() -> Vec<u8> {
    M::new(13)
        .input(f32vi("x", &[2, 6]))
        .input(vi("shape", DataType::INT64, &[2]))
        .node(node("Reshape", "reshape", &["x", "shape"], &["y"], vec![]))
        .output("y")
        .bytes()
}

/// Import options binding input `name` to an int64 tensor.
fn bind(name: &str, dims: Vec<usize>, values: Vec<i64>) -> ImportOptions {
    let mut opts = ImportOptions::default();
    let t = Tensor::from_i64(dims, values).expect("tensor");
    opts.bind.insert(name.to_string(), t);
    opts
}

#[test]
fn bind_turns_an_input_into_a_constant() {
    let bytes = reshape_by_input();
    let g = import_bytes(&bytes, None, &bind("shape", vec![2], vec![3, 4])).expect("import");
    let want = "reshape(%x) {shape=[3, 4], allow_zero=false} : f32[3,4]";
    assert_eq!(op_line(&g, "reshape"), want);
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
fn binding_of_the_wrong_shape() {
    let opts = bind("shape", vec![3], vec![3, 2, 2]);
    let e = import_bytes(&reshape_by_input(), None, &opts).expect_err("mismatch");
    assert!(
        matches!(&e, OnnxError::BindingMismatch { name, .. } if name == "shape"),
        "{e:?}"
    );
}

// ---------------------------------------------------------------- constants and tensors

#[test]
fn constant_node_forms() {
    let value = A::T(Box::new(f32_tensor("", &[1], &[4.0])));
    let nodes = vec![
        node(
            "Constant",
            "c1",
            &[],
            &["a"],
            vec![("value_floats", A::Fs(vec![1.0, 2.0]))],
        ),
        node("Constant", "c2", &[], &["b"], vec![("value_int", A::I(7))]),
        node("Constant", "c3", &[], &["c"], vec![("value", value)]),
    ];
    let mut m = M::new(13);
    m.graph.node = nodes;
    let g = m.output("a").output("b").output("c").import();
    assert_eq!(f32s(out_const(&g, 0).as_ref()), Some(vec![1.0, 2.0]));
    let b = out_const(&g, 1).expect("b");
    assert_eq!((b.shape(), b.as_i64()), (&[][..], Some(&[7i64][..])));
    assert_eq!(f32s(out_const(&g, 2).as_ref()), Some(vec![4.0]));
}

/// A 1-D initializer of `dtype` whose data `fill` puts in a typed field.
fn typed(
    name: &str,
    dims: &[i64],
    dtype: DataType,
    fill: impl Fn(&mut TensorProto),
) -> TensorProto {
    let mut t = raw_tensor(name, dtype, dims, vec![]);
    fill(&mut t);
    t
}

#[test]
fn typed_field_initializers() {
    let inits = vec![
        typed("f", &[3], DataType::FLOAT, |t| {
            t.float_data = vec![1.0, -2.0, 3.5]
        }),
        typed("d", &[3], DataType::DOUBLE, |t| {
            t.double_data = vec![0.25, 1.0, 2.0]
        }),
        typed("i8", &[3], DataType::INT8, |t| {
            t.int32_data = vec![-128, 0, 127]
        }),
        typed("u8", &[3], DataType::UINT8, |t| {
            t.int32_data = vec![0, 1, 255]
        }),
        typed("b", &[3], DataType::BOOL, |t| t.int32_data = vec![1, 0, 1]),
        typed("i32", &[3], DataType::INT32, |t| {
            t.int32_data = vec![-5, 6, 7]
        }),
        typed("i64", &[3], DataType::INT64, |t| {
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
    let w8 = typed("w8", &[2], DataType::INT8, |t| t.int32_data = vec![1, 300]);
    let e = M::new(13).init(w8).output("w8").import_err();
    assert!(
        matches!(&e, OnnxError::InvalidTensor { name, .. } if name == "w8"),
        "{e:?}"
    );
}

#[test]
fn typed_field_length_mismatch() {
    let w = typed("w", &[2, 2], DataType::FLOAT, |t| {
        t.float_data = vec![1.0, 2.0, 3.0]
    });
    let e = M::new(13).init(w).output("w").import_err();
    assert!(
        matches!(&e, OnnxError::TensorDataLength { name, field: "float_data", expected: 4, got: 3, .. } if name == "w"),
        "{e:?}"
    );
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("strata-onnx-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A 2×2 f32 initializer stored in `location` at `offset`.
fn external(name: &str, location: &str, offset: u64) -> TensorProto {
    let extra = [("offset", offset.to_string()), ("length", "16".to_string())];
    external_tensor(name, &[2, 2], location, &extra)
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
    let mm = node("MatMul", "mm", &["x", "w"], &["y"], vec![]);
    let bytes = model(
        13,
        &[2, 2],
        vec![external("w", "data/weights.bin", 8)],
        vec![mm],
        &["y"],
    )
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
    let msg = e.to_string();
    assert!(
        msg.contains("absent.bin"),
        "`{msg}` does not mention `absent.bin`"
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
    let g = M::new(13)
        .input(f32vi("x", &[-1, 4]))
        .input(f32vi("w", &[4]))
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
    let gemm_attrs = vec![("transB", A::I(1)), ("alpha", A::F(2.0))];
    let nodes = vec![
        node("Flatten", "fl", &["x"], &["f"], vec![]),
        node("Gemm", "fc", &["f", "w"], &["y"], gemm_attrs),
    ];
    let w = f32_tensor("w", &[4, 6], &[0.0; 24]);
    let g = model(13, &[-1, 2, 3], vec![w], nodes, &["y"]).import();
    assert_eq!(op(&g, "fl"), Op::Flatten { axis: 1 });
    let Op::Gemm(gm) = op(&g, "fc") else { panic!() };
    assert!(gm.trans_b && !gm.trans_a && !gm.has_c);
    assert_eq!(gm.alpha, 2.0);
    assert_eq!(out_ty(&g, 0).shape, shape(true, &[4]));
}

#[test]
fn cast_and_batchnorm() {
    let to_double = vec![("to", A::I(DataType::DOUBLE as i64))];
    let nodes = vec![
        node(
            "BatchNormalization",
            "bn",
            &["x", "s", "b", "m", "v"],
            &["a"],
            vec![("epsilon", A::F(1e-3))],
        ),
        node("Cast", "cast", &["a"], &["y"], to_double),
    ];
    let stats = [("s", 1.0), ("b", 0.0), ("m", 0.0), ("v", 1.0)];
    let inits = stats
        .iter()
        .map(|&(n, v)| f32_tensor(n, &[2], &[v; 2]))
        .collect();
    let g = model(15, &[-1, 2, 2, 2], inits, nodes, &["y"]).import();
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
    let dropout = |ratio: f32| {
        let training = typed("t", &[], DataType::BOOL, |t| t.int32_data = vec![1]);
        let inits = vec![f32_tensor("r", &[], &[ratio]), training];
        let drop = node("Dropout", "drop", &["x", "r", "t"], &["y"], vec![]);
        model(13, &[2, 2], inits, vec![drop], &["y"])
    };
    assert_eq!(op(&dropout(0.0).import(), "drop"), Op::Identity);
    let e = dropout(0.5).import_err();
    assert!(
        matches!(&e, OnnxError::Unsupported { node, .. } if node == "drop"),
        "{e:?}"
    );
}

/// `y = relu(x)`, `x: f32[1]`, with the node's inputs `ins`.
fn relu_model(ins: &[&str]) -> M {
    model(
        13,
        &[1],
        vec![],
        vec![node("Relu", "r", ins, &["y"], vec![])],
        &["y"],
    )
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

    let mut m = ModelProto::parse_from_bytes(&relu_model(&["x"]).bytes()).expect("parse");
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
    let mut m = relu_model(&["x"]);
    if let Some(type_proto::Value::TensorType(t)) = m.graph.input[0]
        .type_
        .as_mut()
        .and_then(|t| t.value.as_mut())
    {
        t.shape = MessageField::none();
    }
    let e = m.import_err();
    assert!(
        matches!(&e, OnnxError::UnsupportedType { name, .. } if name == "x"),
        "{e:?}"
    );
}

#[test]
fn too_many_inputs() {
    let e = relu_model(&["x", "x"]).import_err();
    assert!(
        matches!(&e, OnnxError::InputCount { node, .. } if node == "r"),
        "{e:?}"
    );
}

#[test]
fn unknown_auto_pad_value() {
    let w = f32_tensor("w", &[1, 1, 2, 2], &[1.0; 4]);
    let attrs = vec![("auto_pad", A::S("SAME_MIDDLE".into()))];
    let conv = node("Conv", "conv", &["x", "w"], &["y"], attrs);
    let e = model(13, &[1, 1, 4, 4], vec![w], vec![conv], &["y"]).import_err();
    assert!(
        matches!(&e, OnnxError::UnsupportedAttributeValue { node, attr, .. } if node == "conv" && attr == "auto_pad"),
        "{e:?}"
    );
}

#[test]
fn split_num_outputs_that_cannot_fit() {
    // 5 split into 4 chunks of ceil(5/4) = 2 would need 6.
    let attrs = vec![("num_outputs", A::I(4))];
    let split = node("Split", "sp", &["x"], &["a", "b", "c", "d"], attrs);
    let e = model(18, &[5], vec![], vec![split], &["a"]).import_err();
    assert!(
        matches!(&e, OnnxError::AttributeOutOfRange { node, attr, .. } if node == "sp" && attr == "num_outputs"),
        "{e:?}"
    );
}

// ---------------------------------------------------------------- symbolic input dimensions

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
    view_batch_minus_one(x).bytes()
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
        shape(true, &[3, 8, 5])
    );
    assert_eq!(out_ty(&g, 0).shape, shape(true, &[120]));
    // The shape computation folded away once the dims were known.
    assert_eq!(count_ops(&g), 1, "{g:?}");
    // A number at axis 0 fixes the batch.
    let g = import_bytes(&bytes, None, &with_shapes(&[("x", "2x3x8x5")])).unwrap();
    assert_eq!(out_ty(&g, 0).shape, shape(false, &[2, 120]));
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

// ---------------------------------------------------------------- math, compare, reduce, resize, QDQ

fn scalar_tensor(name: &str, dtype: DataType, raw: Vec<u8>) -> TensorProto {
    raw_tensor(name, dtype, &[], raw)
}

/// The translations of the ops added for real-model imports (issue 12): one IR op each, or
/// a Cast around Pow for mixed types.
#[test]
fn math_compare_reduce_resize_qdq_forms() {
    let axes = |a: &[i64]| ("axes", A::Is(a.to_vec()));
    let scales = f32_tensor("sc", &[4], &[1.0, 1.0, 2.0, 2.0]);
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        (13, &[-1, 3], vec![], "Exp", &[], vec![], "exp(%x) : f32[N,3]"),
        (13, &[-1, 3], vec![], "Reciprocal", &[], vec![], "reciprocal(%x) : f32[N,3]"),
        (15, &[2, 3], vec![f32_tensor("e", &[3], &[1.0, 2.0, 0.5])], "Pow", &["e"], vec![], "pow(%x, %e) : f32[2,3]"),
        (13, &[-1, 3], vec![f32_tensor("t", &[1], &[0.5])], "Greater", &["t"], vec![], "greater(%x, %t) : bool[N,3]"),
        (16, &[2, 3], vec![f32_tensor("t", &[3], &[0.0; 3])], "LessOrEqual", &["t"], vec![], "less_equal(%x, %t) : bool[2,3]"),
        (13, &[-1, 3, 4], vec![i64_tensor("ax", &[-1])], "ReduceSum", &["ax"], vec![("keepdims", A::I(0))],
            "reduce_sum(%x) {axes=[2], keep_dims=false} : f32[N,3]"),
        (11, &[-1, 3, 4], vec![], "ReduceSum", &[], vec![axes(&[1])], "reduce_sum(%x) {axes=[1], keep_dims=true} : f32[N,1,4]"),
        (18, &[2, 3], vec![], "ReduceMax", &[], vec![], "reduce_max(%x) {axes=[0, 1], keep_dims=true} : f32[1,1]"),
        (13, &[-1, 10], vec![], "ArgMax", &[], vec![("axis", A::I(-1)), ("keepdims", A::I(0)), ("select_last_index", A::I(1))],
            "arg_max(%x) {axis=1, keep_dims=false, select_last_index=true} : i64[N]"),
        (13, &[-1, 1, 4], vec![i64_tensor("s", &[3, 1])], "Expand", &["s"], vec![], "expand(%x) {shape=[3, 1]} : f32[N,3,4]"),
        (18, &[2, 3], vec![i64_tensor("p", &[1, 2, 1, 0])], "Pad", &["p"], vec![("mode", A::S("reflect".into()))],
            "pad(%x) {pads=[1, 2, 1, 0], value=0.0, mode=reflect} : f32[4,5]"),
        (19, &[-1, 3, 4, 5], vec![scales], "Resize", &["", "sc"], vec![("mode", A::S("linear".into()))],
            "resize(%x) {mode=linear, coord=half_pixel, nearest=round_prefer_floor, scales=[1.0, 1.0, 2.0, 2.0], sizes=[0, 3, 8, 10]} : f32[N,3,8,10]"),
        (19, &[1, 3, 4, 4], vec![i64_tensor("sz", &[6, 2])], "Resize", &["", "", "sz"],
            vec![axes(&[2, 3]), ("coordinate_transformation_mode", A::S("asymmetric".into())), ("nearest_mode", A::S("floor".into()))],
            "resize(%x) {mode=nearest, coord=asymmetric, nearest=floor, scales=[1.0, 1.0, 1.5, 0.5], sizes=[1, 3, 6, 2]} : f32[1,3,6,2]"),
        (10, &[1, 1, 2, 2], vec![f32_tensor("sc", &[4], &[1.0, 1.0, 2.0, 3.0])], "Resize", &["sc"], vec![],
            "resize(%x) {mode=nearest, coord=asymmetric, nearest=floor, scales=[1.0, 1.0, 2.0, 3.0], sizes=[1, 1, 4, 6]} : f32[1,1,4,6]"),
        (13, &[-1, 4], vec![f32_tensor("s", &[], &[0.1]), scalar_tensor("z", DataType::INT8, vec![3])], "QuantizeLinear", &["s", "z"], vec![],
            "quantize_linear(%x, %s, %z) {axis=0} : i8[N,4]"),
        (13, &[-1, 4], vec![f32_tensor("s", &[4], &[0.1; 4])], "QuantizeLinear", &["s"], vec![],
            "quantize_linear(%x, %s, %n_zero_point) {axis=1} : u8[N,4]"),
    ];
    check_lines(cases);
}

#[test]
fn pow_with_mixed_types_casts() {
    let m = |x_type: DataType, e: TensorProto| {
        M::new(15)
            .input(vi("x", x_type, &[3]))
            .init(e)
            .node(node("Pow", "n", &["x", "e"], &["y"], vec![]))
            .output("y")
            .import()
    };
    // Float base, integer exponent: the exponent becomes the base's type (folded here).
    let g = m(DataType::FLOAT, i64_tensor("e", &[2, 3, 0]));
    assert_eq!(op(&g, "n"), Op::Binary(BinaryOp::Pow));
    assert_eq!(
        const_inputs(&g, "n")[1]
            .as_ref()
            .and_then(|t| t.as_f32().map(<[f32]>::to_vec)),
        Some(vec![2.0, 3.0, 0.0])
    );
    // Integer base, float exponent: computed in float, cast back.
    let g = m(DataType::INT64, f32_tensor("e", &[1], &[2.0]));
    assert_eq!(op(&g, "n"), Op::Cast { to: DType::I64 });
    assert_eq!(op(&g, "n_float_pow"), Op::Binary(BinaryOp::Pow));
    let y = strata_runtime::run(&g, &[Tensor::from_i64(vec![3], vec![2, -3, 5]).unwrap()]).unwrap();
    assert_eq!(y[0].as_i64(), Some(&[4i64, 9, 25][..]));
}

/// Shape → ConstantOfShape / Gather → Range / Expand on static dims all fold away: only the
/// ops on the real input remain, and the result is right.
#[test]
fn shape_arithmetic_chains_fold_to_constants() {
    let one = f32_tensor("one", &[1], &[1.0]);
    let nodes = vec![
        node("Shape", "shape", &["x"], &["s"], vec![]),
        node(
            "ConstantOfShape",
            "ones",
            &["s"],
            &["c"],
            vec![("value", A::T(Box::new(one)))],
        ),
        node("Mul", "mul", &["x", "c"], &["y1"], vec![]),
        node("Gather", "dim1", &["s", "i1"], &["d"], vec![]),
        node("Range", "range", &["zero", "d", "step"], &["r"], vec![]),
        node("Cast", "cast", &["r"], &["rf"], vec![("to", A::I(1))]),
        node("Add", "add", &["y1", "rf"], &["y2"], vec![]),
        node("Expand", "expand", &["two", "s"], &["e"], vec![]),
        node("Mul", "mul2", &["y2", "e"], &["y"], vec![]),
    ];
    let inits = vec![
        scalar_tensor("i1", DataType::INT64, 1i64.to_le_bytes().to_vec()),
        scalar_tensor("zero", DataType::INT64, 0i64.to_le_bytes().to_vec()),
        scalar_tensor("step", DataType::INT64, 1i64.to_le_bytes().to_vec()),
        f32_tensor("two", &[1], &[2.0]),
    ];
    let g = model(13, &[2, 3], inits, nodes, &["y"]).import();
    assert_eq!(count_ops(&g), 3, "{}", strata_ir::text::print(&g));
    let rf = const_inputs(&g, "add")[1].clone().expect("range folded");
    assert_eq!(rf.as_f32(), Some(&[0.0f32, 1.0, 2.0][..]));
    let x = Tensor::from_f32(vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
    let y = strata_runtime::run(&g, &[x]).unwrap();
    assert_eq!(
        y[0].as_f32(),
        Some(&[2.0f32, 6.0, 10.0, 8.0, 12.0, 16.0][..])
    );
}

/// Bad attributes and inputs of the new ops: typed errors naming the node and op type.
#[test]
fn new_ops_refuse_bad_attributes() {
    let err = |opset: i64,
               x: &[i64],
               inits: Vec<TensorProto>,
               op_type: &str,
               ins: &[&str],
               attrs: Vec<(&str, A)>| {
        let ins: Vec<&str> = std::iter::once("x").chain(ins.iter().copied()).collect();
        model(
            opset,
            x,
            inits,
            vec![node(op_type, "n", &ins, &["y"], attrs)],
            &["y"],
        )
        .import_err()
    };
    let unsupported = |e: &OnnxError, want: &str| matches!(e, OnnxError::UnsupportedAttributeValue { node, attr, .. } if node == "n" && attr == want);
    let out_of_range = |e: &OnnxError, want: &str| matches!(e, OnnxError::AttributeOutOfRange { node, attr, .. } if node == "n" && attr == want);
    let sc = || f32_tensor("sc", &[4], &[1.0, 1.0, 2.0, 2.0]);
    let e = err(
        19,
        &[1, 1, 2, 2],
        vec![sc()],
        "Resize",
        &["", "sc"],
        vec![("mode", A::S("cubic".into()))],
    );
    assert!(unsupported(&e, "mode"), "{e}");
    assert!(
        e.to_string().contains("Resize") && e.to_string().contains("cubic"),
        "{e}"
    );
    let e = err(
        13,
        &[1, 1, 2, 2],
        vec![sc()],
        "Resize",
        &["", "sc"],
        vec![(
            "coordinate_transformation_mode",
            A::S("tf_crop_and_resize".into()),
        )],
    );
    assert!(unsupported(&e, "coordinate_transformation_mode"), "{e}");
    let e = err(
        19,
        &[1, 1, 4, 4],
        vec![f32_tensor("sc", &[4], &[1.0, 1.0, 0.5, 0.5])],
        "Resize",
        &["", "sc"],
        vec![("mode", A::S("linear".into())), ("antialias", A::I(1))],
    );
    assert!(unsupported(&e, "antialias"), "{e}");
    let e = err(
        19,
        &[-1, 1, 2, 2],
        vec![f32_tensor("sc", &[4], &[2.0, 1.0, 2.0, 2.0])],
        "Resize",
        &["", "sc"],
        vec![],
    );
    assert!(
        matches!(&e, OnnxError::BatchDependent { node, .. } if node == "n"),
        "{e}"
    );
    let e = err(13, &[2, 3], vec![], "ArgMax", &[], vec![("axis", A::I(2))]);
    assert!(out_of_range(&e, "axis"), "{e}");
    let e = err(
        13,
        &[2, 3],
        vec![],
        "ArgMax",
        &[],
        vec![("keepdims", A::I(2))],
    );
    assert!(out_of_range(&e, "keepdims"), "{e}");
    let e = err(
        18,
        &[2, 3],
        vec![i64_tensor("p", &[1, 1, 1, 1])],
        "Pad",
        &["p"],
        vec![("mode", A::S("wrap".into()))],
    );
    assert!(unsupported(&e, "mode"), "wrap needs opset 19: {e}");
    let e = err(
        21,
        &[2, 4],
        vec![f32_tensor("s", &[2, 2], &[0.1; 4])],
        "QuantizeLinear",
        &["s"],
        vec![("block_size", A::I(2))],
    );
    assert!(unsupported(&e, "block_size"), "{e}");
    assert!(e.to_string().contains("export the float model"), "{e}");
    let e = err(
        13,
        &[2, 3],
        vec![i64_tensor("s", &[-2, 3])],
        "Expand",
        &["s"],
        vec![],
    );
    assert!(out_of_range(&e, "shape"), "{e}");
    // An opset before the op existed.
    let e = err(
        11,
        &[2, 3],
        vec![f32_tensor("t", &[1], &[0.0])],
        "GreaterOrEqual",
        &["t"],
        vec![],
    );
    assert!(
        matches!(&e, OnnxError::UnsupportedOpset { node, opset: 11, .. } if node == "n"),
        "{e}"
    );
    // Mixed element types in a comparison are a typed shape-inference error.
    let e = err(
        13,
        &[2, 3],
        vec![i64_tensor("t", &[1])],
        "Equal",
        &["t"],
        vec![],
    );
    assert!(
        matches!(&e, OnnxError::Shape { node, op_type, .. } if node == "n" && op_type == "Equal"),
        "{e}"
    );
    // ConstantOfShape: a two-element value, a batch-dependent shape.
    let two = f32_tensor("v", &[2], &[1.0, 2.0]);
    let nodes = vec![
        node("Shape", "s", &["x"], &["s"], vec![]),
        node(
            "ConstantOfShape",
            "n",
            &["s"],
            &["y"],
            vec![("value", A::T(Box::new(two)))],
        ),
    ];
    let e = model(13, &[2, 3], vec![], nodes, &["y"]).import_err();
    assert!(out_of_range(&e, "value"), "{e}");
    let nodes = vec![
        node("Shape", "s", &["x"], &["s"], vec![]),
        node("ConstantOfShape", "n", &["s"], &["y"], vec![]),
    ];
    let e = model(13, &[-1, 3], vec![], nodes, &["y"]).import_err();
    assert!(
        matches!(&e, OnnxError::BatchDependent { node, .. } if node == "n"),
        "{e}"
    );
    // Range up to the batch size.
    let nodes = vec![
        node("Shape", "s", &["x"], &["s"], vec![]),
        node("Gather", "g", &["s", "i0"], &["d"], vec![]),
        node("Range", "n", &["zero", "d", "step"], &["y"], vec![]),
    ];
    let i64s = |n: &str, v: i64| scalar_tensor(n, DataType::INT64, v.to_le_bytes().to_vec());
    let inits = vec![i64s("i0", 0), i64s("zero", 0), i64s("step", 1)];
    let e = model(13, &[-1, 3], inits, nodes, &["y"]).import_err();
    assert!(
        matches!(&e, OnnxError::BatchDependent { node, .. } if node == "n"),
        "{e}"
    );
    // Range with a zero step.
    let zero = |n: &str| scalar_tensor(n, DataType::FLOAT, 0f32.to_le_bytes().to_vec());
    let nodes = vec![node("Range", "n", &["a", "b", "c"], &["y"], vec![])];
    let e = model(
        13,
        &[1],
        vec![zero("a"), zero("b"), zero("c")],
        nodes,
        &["y"],
    )
    .import_err();
    assert!(out_of_range(&e, "input"), "{e}");
}

/// A DequantizeLinear of a constant int8 weight folds to the float weight at import.
#[test]
fn dequantized_constant_weight_folds() {
    let w = raw_tensor(
        "w8",
        DataType::INT8,
        &[2, 1, 1, 1],
        vec![10u8, (-4i8) as u8],
    );
    let nodes = vec![
        node(
            "DequantizeLinear",
            "dq",
            &["w8", "ws", "wz"],
            &["w"],
            vec![("axis", A::I(0))],
        ),
        node("Conv", "conv", &["x", "w"], &["y"], vec![]),
    ];
    let inits = vec![
        w,
        f32_tensor("ws", &[2], &[0.5, 0.25]),
        raw_tensor("wz", DataType::INT8, &[2], vec![0, 0]),
    ];
    let g = model(13, &[-1, 1, 2, 2], inits, nodes, &["y"]).import();
    assert_eq!(count_ops(&g), 1);
    let w = const_inputs(&g, "conv")[1].clone().expect("folded weight");
    assert_eq!(w.as_f32(), Some(&[5.0f32, -1.0][..]));
}

/// TorchScript's `x.expand(n, 3, 4)` on a batched input: the target is built from Shape,
/// and `Where(Equal(target, -1), 1, target)` replaces -1 entries. With the batch size in the
/// target this folds symbolically (the batch is never -1) and Expand keeps the batch free.
#[test]
fn torchscript_expand_pattern_with_batch_folds() {
    let i64s = |n: &str, v: &[i64]| i64_tensor(n, v);
    let one = i64_tensor("one", &[1]);
    let nodes = vec![
        node("Shape", "shape", &["x"], &["s"], vec![]),
        node("Slice", "batch", &["s", "z", "o"], &["b"], vec![]),
        node(
            "Concat",
            "target",
            &["b", "rest"],
            &["t"],
            vec![("axis", A::I(0))],
        ),
        node("Shape", "tlen", &["t"], &["tl"], vec![]),
        node(
            "ConstantOfShape",
            "ones",
            &["tl"],
            &["ones"],
            vec![("value", A::T(Box::new(one)))],
        ),
        node("Mul", "neg", &["ones", "m1"], &["neg"], vec![]),
        node("Equal", "eq", &["t", "neg"], &["eq"], vec![]),
        node("Where", "where", &["eq", "ones", "t"], &["w"], vec![]),
        node("Expand", "n", &["x", "w"], &["y"], vec![]),
    ];
    let inits = vec![
        i64s("z", &[0]),
        i64s("o", &[1]),
        i64s("rest", &[3, 4]),
        i64s("m1", &[-1]),
    ];
    let g = model(13, &[-1, 1, 4], inits, nodes, &["y"]).import();
    assert_eq!(count_ops(&g), 1, "{}", strata_ir::text::print(&g));
    assert_eq!(
        op_line(&g, "n"),
        "expand(%x) {shape=[1, 3, 4]} : f32[N,3,4]"
    );
    let x = Tensor::from_f32(vec![2, 1, 4], (0..8).map(|i| i as f32).collect()).unwrap();
    let y = strata_runtime::run(&g, &[x]).unwrap();
    assert_eq!(y[0].shape(), &[2, 3, 4]);
    assert_eq!(y[0].as_f32().unwrap()[12..16], [4.0, 5.0, 6.0, 7.0]);
}

/// GRU in layout 1 (`[batch, seq, …]`, as `torch.nn.GRU(batch_first=True)` exports it) with a
/// bias, an initial state and `linear_before_reset`: the layer runs between Transposes; the
/// attributes it cannot compute are refused with the node named.
#[test]
fn gru_forms_and_refusals() {
    let (h, i) = (3usize, 2usize);
    let halves = |name: &str, dims: &[usize]| {
        let n = dims.iter().product();
        let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
        f32_tensor(name, &dims, &vec![0.5; n])
    };
    let inits = || {
        vec![
            halves("w", &[1, 3 * h, i]),
            halves("r", &[1, 3 * h, h]),
            halves("b", &[1, 6 * h]),
            halves("h0", &[1, 1, h]),
        ]
    };
    let gru = |attrs: Vec<(&str, A)>| {
        model(
            14,
            &[1, 5, i as i64],
            inits(),
            vec![node(
                "GRU",
                "n",
                &["x", "w", "r", "b", "", "h0"],
                &["y", "yh"],
                attrs,
            )],
            &["y", "yh"],
        )
    };
    let g = gru(vec![
        ("layout", A::I(1)),
        ("linear_before_reset", A::I(1)),
        ("hidden_size", A::I(h as i64)),
    ])
    .import();
    let line = op_line(&g, "n");
    assert!(
        line.starts_with("gru(")
            && line.contains("direction=forward")
            && line.contains("has_bias=true")
            && line.contains("has_initial_h=true")
            && line.contains("linear_before_reset=true")
            && line.ends_with(": f32[5,1,1,3], f32[1,1,3]"),
        "{line}"
    );
    // Back to layout 1: y [N, T, D, H], y_h [N, D, H].
    assert_eq!(
        out_ty(&g, 0).shape.dims(),
        &[Dim::Known(1), Dim::Known(5), Dim::Known(1), Dim::Known(3)]
    );
    assert_eq!(
        out_ty(&g, 1).shape.dims(),
        &[Dim::Known(1), Dim::Known(1), Dim::Known(3)]
    );
    match gru(vec![("linear_before_reset", A::I(2))]).import_err() {
        OnnxError::AttributeOutOfRange { node, attr, .. } => {
            assert_eq!((node.as_str(), attr.as_str()), ("n", "linear_before_reset"))
        }
        e => panic!("{e}"),
    }
    match gru(vec![("clip", A::F(3.0))]).import_err() {
        OnnxError::UnsupportedAttributeValue { node, attr, .. } => {
            assert_eq!((node.as_str(), attr.as_str()), ("n", "clip"))
        }
        e => panic!("{e}"),
    }
}

/// PyTorch's RNN export with a free batch: the zero initial state is a ConstantOfShape of
/// `[D, N, H]` computed from `Shape(x)`. The state is dropped (absent means zeros), so the
/// batch stays free; the same zeros read by anything else are still refused, naming the node.
#[test]
fn zero_initial_state_from_the_batch_size_is_an_absent_one() {
    let (t, i, h) = (5i64, 2i64, 3i64);
    let halves = |name: &str, dims: &[i64]| {
        let n = dims.iter().product::<i64>() as usize;
        f32_tensor(name, dims, &vec![0.5; n])
    };
    let state_nodes = || {
        vec![
            node("Shape", "shape", &["x"], &["s"], vec![]),
            node(
                "Gather",
                "batch",
                &["s", "zero"],
                &["n"],
                vec![("axis", A::I(0))],
            ),
            node("Unsqueeze", "unsq", &["n", "axes"], &["n1"], vec![]),
            node(
                "Concat",
                "cat",
                &["one", "n1", "hid"],
                &["hs"],
                vec![("axis", A::I(0))],
            ),
            node("ConstantOfShape", "zeros", &["hs"], &["h0"], vec![]),
            node(
                "Transpose",
                "seq",
                &["x"],
                &["xt"],
                vec![("perm", A::Is(vec![1, 0, 2]))],
            ),
        ]
    };
    let inits = || {
        vec![
            raw_tensor("zero", DataType::INT64, &[], 0i64.to_le_bytes().to_vec()),
            i64_tensor("axes", &[0]),
            i64_tensor("one", &[1]),
            i64_tensor("hid", &[h]),
            halves("w", &[1, 3 * h, i]),
            halves("r", &[1, 3 * h, h]),
        ]
    };
    let mut nodes = state_nodes();
    nodes.push(node(
        "GRU",
        "gru",
        &["xt", "w", "r", "", "", "h0"],
        &["y", "yh"],
        vec![("hidden_size", A::I(h))],
    ));
    let g = model(14, &[-1, t, i], inits(), nodes, &["yh"]).import();
    let line = op_line(&g, "gru");
    assert!(line.contains("has_initial_h=false"), "{line}");
    assert_eq!(
        out_ty(&g, 0).shape.dims(),
        &[Dim::Known(1), Dim::Batch, Dim::Known(3)]
    );
    // The zeros as an operand of anything else: refused, naming the ConstantOfShape.
    let mut nodes = state_nodes();
    nodes.push(node("Add", "add", &["h0", "h0"], &["y"], vec![]));
    match model(14, &[-1, t, i], inits(), nodes, &["y"]).import_err() {
        OnnxError::BatchDependent { node, op_type, .. } => {
            assert_eq!(
                (node.as_str(), op_type.as_str()),
                ("zeros", "ConstantOfShape")
            )
        }
        e => panic!("{e}"),
    }
    // As a graph output, too.
    match model(14, &[-1, t, i], inits(), state_nodes(), &["h0"]).import_err() {
        OnnxError::BatchDependent { node, .. } => assert_eq!(node, "zeros"),
        e => panic!("{e}"),
    }
}

/// Ops imported as their function bodies keep a free batch and compute the spec's values
/// (DepthToSpace CRD and Tile checked element by element through the runtime, ReduceMin,
/// ReduceLogSumExp and Elu against direct formulas); the attribute values they cannot
/// compute are refused with the node and attribute named, and a Tile of the free batch axis
/// with the batch-dependent error.
#[test]
fn function_body_ops_keep_the_batch_and_refuse_what_they_cannot() {
    let run = |g: &Graph, dims: &[usize], x: &[f32]| {
        let x = Tensor::from_f32(dims.to_vec(), x.to_vec()).unwrap();
        let y = strata_runtime::run(g, &[x]).unwrap().remove(0);
        (y.shape().to_vec(), y.as_f32().unwrap().to_vec())
    };
    let xs: Vec<f32> = (0..2 * 8 * 2 * 3).map(|i| i as f32 * 0.25 - 3.0).collect();
    // DepthToSpace CRD (PixelShuffle): y[n, c, 2h + i, 2w + j] = x[n, 4c + 2i + j, h, w].
    let g = one(
        13,
        &[-1, 8, 2, 3],
        vec![],
        (
            "DepthToSpace",
            &["x"],
            vec![("blocksize", A::I(2)), ("mode", A::S("CRD".into()))],
        ),
    );
    assert_eq!(out_ty(&g, 0).shape.dims()[0], Dim::Batch);
    let (shape, y) = run(&g, &[2, 8, 2, 3], &xs);
    assert_eq!(shape, [2, 2, 4, 6]);
    for (n, c, hh, ww) in (0..2).flat_map(|n| {
        (0..2).flat_map(move |c| (0..4).flat_map(move |hh| (0..6).map(move |ww| (n, c, hh, ww))))
    }) {
        let (h, i, w, j) = (hh / 2, hh % 2, ww / 2, ww % 2);
        let src = ((n * 8 + 4 * c + 2 * i + j) * 2 + h) * 3 + w;
        assert_eq!(
            y[((n * 2 + c) * 4 + hh) * 6 + ww],
            xs[src],
            "{n} {c} {hh} {ww}"
        );
    }
    // Tile [1, 2, 1] of [N, 8, 6]: the channel axis twice.
    let g = one(
        13,
        &[-1, 8, 6],
        vec![i64_tensor("reps", &[1, 2, 1])],
        ("Tile", &["x", "reps"], vec![]),
    );
    let (shape, y) = run(&g, &[2, 8, 6], &xs[..96]);
    assert_eq!(shape, [2, 16, 6]);
    for (k, &v) in y.iter().enumerate() {
        let (n, c, w) = (k / 96, (k / 6) % 16, k % 6);
        assert_eq!(v, xs[(n * 8 + c % 8) * 6 + w]);
    }
    // ReduceMin over the last axis and ReduceLogSumExp (keepdims 0) against the formulas.
    let g = one(
        13,
        &[-1, 8, 6],
        vec![],
        ("ReduceMin", &["x"], vec![("axes", A::Is(vec![-1]))]),
    );
    let (shape, y) = run(&g, &[2, 8, 6], &xs[..96]);
    assert_eq!(shape, [2, 8, 1]);
    for (r, &v) in y.iter().enumerate() {
        let row = &xs[r * 6..r * 6 + 6];
        assert_eq!(v, row.iter().copied().fold(f32::INFINITY, f32::min));
    }
    let g = one(
        13,
        &[-1, 8, 6],
        vec![],
        (
            "ReduceLogSumExp",
            &["x"],
            vec![("axes", A::Is(vec![2])), ("keepdims", A::I(0))],
        ),
    );
    let big: Vec<f32> = xs[..96].iter().map(|v| v * 40.0).collect();
    let (shape, y) = run(&g, &[2, 8, 6], &big);
    assert_eq!(shape, [2, 8]);
    for (r, &v) in y.iter().enumerate() {
        let row: Vec<f64> = big[r * 6..r * 6 + 6]
            .iter()
            .map(|&v| f64::from(v))
            .collect();
        let m = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let want = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
        // Finite where the spec's literal log(Σ eˣ) overflows (inputs up to 360).
        assert!(v.is_finite() && (f64::from(v) - want).abs() <= 1e-5 * want.abs().max(1.0));
    }
    // Elu: x for x ≥ 0, α(eˣ − 1) below.
    let g = one(
        13,
        &[-1, 6],
        vec![],
        ("Elu", &["x"], vec![("alpha", A::F(0.5))]),
    );
    let (_, y) = run(&g, &[2, 6], &xs[..12]);
    for (&v, &x) in y.iter().zip(&xs[..12]) {
        let want = if x >= 0.0 { x } else { 0.5 * (x.exp() - 1.0) };
        assert!((v - want).abs() <= 1e-6, "elu({x}) = {v}, want {want}");
    }
    // Refusals.
    let err = |opset, x: &[i64], inits, n: (&str, &[&str], Vec<(&str, A)>)| {
        let (op_type, ins, attrs) = n;
        model(
            opset,
            x,
            inits,
            vec![node(op_type, "n", ins, &["y"], attrs)],
            &["y"],
        )
        .import_err()
    };
    match err(
        13,
        &[-1, 8, 6],
        vec![i64_tensor("reps", &[2, 1, 1])],
        ("Tile", &["x", "reps"], vec![]),
    ) {
        OnnxError::BatchDependent { node, .. } => assert_eq!(node, "n"),
        e => panic!("{e}"),
    }
    match err(
        13,
        &[1, 8, 2, 3],
        vec![],
        ("DepthToSpace", &["x"], vec![("blocksize", A::I(3))]),
    ) {
        OnnxError::AttributeOutOfRange { node, attr, .. } => {
            assert_eq!((node.as_str(), attr.as_str()), ("n", "blocksize"))
        }
        e => panic!("{e}"),
    }
    for (opset, op, attr, value) in [
        (13, "Celu", "alpha", A::F(0.0)),
        (13, "LpNormalization", "p", A::I(3)),
        (20, "Gelu", "approximate", A::S("fast".into())),
    ] {
        match err(opset, &[1, 6], vec![], (op, &["x"], vec![(attr, value)])) {
            OnnxError::AttributeOutOfRange { node, attr: a, .. }
            | OnnxError::UnsupportedAttributeValue { node, attr: a, .. } => {
                assert_eq!((node.as_str(), a.as_str()), ("n", attr), "{op}")
            }
            e => panic!("{op}: {e}"),
        }
    }
}

/// Upsample (opsets 7–10) is Resize-10: scales as an attribute before opset 9, as an input
/// from 9; nearest repeats elements (asymmetric coordinates, rounding down), linear
/// interpolates with asymmetric coordinates; the batch stays free.
#[test]
fn upsample_is_resize_10() {
    let xs: Vec<f32> = (0..2 * 2 * 2 * 3).map(|i| i as f32 * 0.5 - 2.0).collect();
    let x = Tensor::from_f32(vec![2, 2, 2, 3], xs.clone()).unwrap();
    let nearest7 = one(
        7,
        &[-1, 2, 2, 3],
        vec![],
        (
            "Upsample",
            &["x"],
            vec![("scales", A::Fs(vec![1.0, 1.0, 2.0, 2.0]))],
        ),
    );
    let nearest9 = one(
        9,
        &[-1, 2, 2, 3],
        vec![f32_tensor("s", &[4], &[1.0, 1.0, 2.0, 2.0])],
        ("Upsample", &["x", "s"], vec![]),
    );
    for g in [&nearest7, &nearest9] {
        assert_eq!(out_ty(g, 0).shape.dims()[0], Dim::Batch);
        let y = strata_runtime::run(g, std::slice::from_ref(&x))
            .unwrap()
            .remove(0);
        assert_eq!(y.shape(), [2, 2, 4, 6]);
        let y = y.as_f32().unwrap();
        for (k, &v) in y.iter().enumerate() {
            let (nc, h, w) = (k / 24, (k / 6) % 4, k % 6);
            assert_eq!(v, xs[nc * 6 + (h / 2) * 3 + w / 2], "element {k}");
        }
    }
    // Linear, asymmetric: output column w samples input column w / 2.
    let linear = one(
        9,
        &[-1, 2, 2, 3],
        vec![f32_tensor("s", &[4], &[1.0, 1.0, 1.0, 2.0])],
        (
            "Upsample",
            &["x", "s"],
            vec![("mode", A::S("linear".into()))],
        ),
    );
    let y = strata_runtime::run(&linear, &[x]).unwrap().remove(0);
    let y = y.as_f32().unwrap();
    for (k, &v) in y.iter().enumerate() {
        let (row, w) = (k / 6, k % 6);
        let (i, f) = (w / 2, (w % 2) as f32 * 0.5);
        let a = xs[row * 3 + i];
        let b = xs[row * 3 + (i + 1).min(2)];
        assert!((v - (a + f * (b - a))).abs() <= 1e-6, "element {k}: {v}");
    }
    match model(
        7,
        &[1, 2, 2, 3],
        vec![],
        vec![node("Upsample", "n", &["x"], &["y"], vec![])],
        &["y"],
    )
    .import_err()
    {
        OnnxError::MissingAttribute { node, attr, .. } => {
            assert_eq!((node.as_str(), attr.as_str()), ("n", "scales"))
        }
        e => panic!("{e}"),
    }
}

/// Sin, Cos, Trilu, CumSum, And, Or and Xor fold on constants (a causal mask, position
/// ids, a sinusoidal encoding added to the input); on a computed input they stop the import
/// naming that input.
#[test]
fn constant_only_ops_fold_and_name_a_computed_input() {
    let nodes = vec![
        node(
            "Trilu",
            "mask",
            &["ones", "k"],
            &["tri"],
            vec![("upper", A::I(0))],
        ),
        node(
            "CumSum",
            "pos",
            &["ones", "axis"],
            &["cum"],
            vec![("exclusive", A::I(1)), ("reverse", A::I(1))],
        ),
        node("Sin", "sin", &["cum"], &["s"], vec![]),
        node("Cos", "cos", &["tri"], &["c"], vec![]),
        node("Add", "a1", &["x", "s"], &["t"], vec![]),
        node("Add", "a2", &["t", "c"], &["y"], vec![]),
    ];
    let inits = vec![
        f32_tensor("ones", &[3, 3], &[1.0; 9]),
        i64_tensor("k", &[-1]),
        i64_tensor("axis", &[1]),
    ];
    let mut m = model(14, &[-1, 3, 3], inits, nodes, &["y"]);
    // `k` is a scalar.
    m.graph.initializer[1].dims.clear();
    let g = m.import();
    let y = strata_runtime::run(
        &g,
        &[Tensor::from_f32(vec![1, 3, 3], vec![0.0; 9]).unwrap()],
    )
    .unwrap()
    .remove(0);
    // Lower triangle below the diagonal (k = −1) → cos(1) there, cos(0) = 1 elsewhere;
    // exclusive reverse cumsum of ones along the rows: 2, 1, 0 → sin of it.
    let y = y.as_f32().unwrap();
    for r in 0..3 {
        for c in 0..3 {
            let tri = if c < r { 1f64 } else { 0.0 };
            let cum = (2 - c) as f64;
            let want = (cum.sin() as f32) + (tri.cos() as f32);
            assert!(
                (y[r * 3 + c] - want).abs() <= 1e-6,
                "({r}, {c}): {}",
                y[r * 3 + c]
            );
        }
    }
    match model(
        14,
        &[-1, 3],
        vec![],
        vec![node("Sin", "n", &["x"], &["y"], vec![])],
        &["y"],
    )
    .import_err()
    {
        OnnxError::NonConstantInput { node, input, .. } => {
            assert_eq!((node.as_str(), input.as_str()), ("n", "x"))
        }
        e => panic!("{e}"),
    }
}
