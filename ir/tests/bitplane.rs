//! Bit-plane ops in whole graphs: text round trip, verifier coverage, parse errors.

use strata_ir::ops::{Bitplane, BitplaneKernel, Conv};
use strata_ir::text::{parse, print, ParseErrorKind};
use strata_ir::{
    verify, DType, Dim, Graph, NodeKind, Op, Shape, Tensor, TensorType, Value, ValueRef,
    VerifyError,
};
use strata_test_support::batch_ty;

use strata_test_support::bitplane::{layer_consts, plane_spec as spec};

fn bp_graph() -> Graph {
    let mut g = Graph::new("bp");
    let x = g.add_input("x", batch_ty(&[4, 6, 6]));
    let conv = Bitplane {
        kernel: BitplaneKernel::Conv(Conv {
            kernel: vec![3, 3],
            strides: vec![2, 2],
            pads: vec![1, 1, 1, 1],
            dilations: vec![1, 1],
            group: 2,
            has_bias: false,
        }),
        spec: spec(6, 18),
    };
    let mut ins = vec![x];
    ins.extend(layer_consts(&mut g, "conv", 6, 18));
    let c = g
        .add_op_inferred("conv", Op::Bitplane(conv), &ins, vec!["conv".into()])
        .unwrap();
    let f = g
        .add_op_inferred(
            "flat",
            Op::Flatten { axis: 1 },
            &[ValueRef::first(c)],
            vec!["flat".into()],
        )
        .unwrap();
    let mut ins = vec![ValueRef::first(f)];
    ins.extend(layer_consts(&mut g, "fc", 3, 54));
    let fc = Op::Bitplane(Bitplane {
        kernel: BitplaneKernel::Linear,
        spec: spec(3, 54),
    });
    let y = g.add_op_inferred("fc", fc, &ins, vec!["y".into()]).unwrap();
    g.set_outputs(vec![ValueRef::first(y)]);
    g
}

#[test]
fn graph_round_trips_through_text() {
    let g = bp_graph();
    verify(&g).unwrap();
    let text = print(&g);
    assert!(text.contains("bitplane_conv("), "{text}");
    assert!(
        text.contains(
            "{kernel=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], dilations=[1, 1], group=2, \
         bits=8, plane_counts=[2, 4, 8], act_bits=8, rows=6, cols=18}"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "bitplane_linear(%flat, %fc.planes, %fc.alpha, %fc.beta, %fc.bias, %fc.act) \
         {bits=8, plane_counts=[2, 4, 8], act_bits=8, rows=3, cols=54} @fc : f32[N,3]"
        ),
        "{text}"
    );
    let back = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(back == g);
    assert_eq!(print(&back), text);
    verify(&back).unwrap();
}

/// `bp_graph` with W k A k activation widths on both layers.
fn wkak_graph() -> Graph {
    let mut g = bp_graph();
    let ids: Vec<_> = g.node_ids().collect();
    for id in ids {
        if let NodeKind::Op(Op::Bitplane(b)) = &mut g.node_mut(id).unwrap().kind {
            b.spec.act_bits_k = vec![2, 4, 8];
        }
    }
    g
}

#[test]
fn per_count_activation_bits_round_trip_and_old_text_loads() {
    let g = wkak_graph();
    verify(&g).unwrap();
    let text = print(&g);
    assert!(
        text.contains(
            "bits=8, plane_counts=[2, 4, 8], act_bits=8, rows=3, cols=54, act_bits_k=[2, 4, 8]}"
        ),
        "{text}"
    );
    let back = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(back == g);
    assert_eq!(print(&back), text);
    // Text without the attribute (every container written before it) reads as A at every k.
    let old = text.replace(", act_bits_k=[2, 4, 8]", "");
    let back = parse(&old).unwrap();
    assert!(back == bp_graph());
    // A wrong-length or out-of-range list is an error naming the attribute.
    for bad in [
        "act_bits_k=[2, 4]",
        "act_bits_k=[2, 4, 9]",
        "act_bits_k=[1, 4, 8]",
    ] {
        let t = text.replace("act_bits_k=[2, 4, 8]", bad);
        let err = match parse(&t) {
            Err(e) => e.to_string(),
            Ok(g) => verify(&g).unwrap_err().to_string(),
        };
        assert!(err.contains("act_bits_k"), "{bad}: {err}");
    }
}

#[test]
fn verifier_checks_bitplane_nodes() {
    // Wrong declared output type.
    let mut g = bp_graph();
    let fc = g
        .node_ids()
        .find(|&id| g.node(id).unwrap().name == "fc")
        .unwrap();
    g.node_mut(fc).unwrap().outputs[0].ty =
        TensorType::new(DType::F32, Shape(vec![Dim::Batch, Dim::Known(4)]));
    assert!(matches!(
        verify(&g),
        Err(VerifyError::TypeMismatch { ref node, .. }) if node == "fc"
    ));

    // Five inputs instead of six.
    let mut g = Graph::new("g");
    let x = g.add_input("x", TensorType::known(DType::F32, &[1, 8]));
    let mut ins = vec![x];
    ins.extend(layer_consts(&mut g, "fc", 2, 8));
    ins.pop();
    let op = Op::Bitplane(Bitplane {
        kernel: BitplaneKernel::Linear,
        spec: spec(2, 8),
    });
    let id = g
        .add_op(
            "fc",
            op.clone(),
            &ins,
            vec![Value {
                name: "y".into(),
                ty: TensorType::known(DType::F32, &[1, 2]),
            }],
        )
        .unwrap();
    g.set_outputs(vec![ValueRef::first(id)]);
    assert!(matches!(
        verify(&g),
        Err(VerifyError::InputArity { ref node, got: 5, .. }) if node == "fc"
    ));

    // Planes with more planes than bits.
    let mut g = Graph::new("g");
    let x = g.add_input("x", TensorType::known(DType::F32, &[1, 8]));
    let mut ins = vec![x];
    ins.extend(layer_consts(&mut g, "fc", 2, 8));
    ins[1] = g.add_constant("big", Tensor::zeros(DType::U8, vec![9, 2, 8]));
    assert!(g.add_op_inferred("fc", op, &ins, vec!["y".into()]).is_err());
}

#[test]
fn parse_errors_in_bitplane_attributes() {
    use ParseErrorKind as K;
    let text = print(&bp_graph());
    // (printed text, its replacement, the error the edited text must give)
    type Check = fn(&K) -> bool;
    let cases: [(&str, &str, Check); 4] = [
        (
            "plane_counts=[2, 4, 8], act_bits=8, rows=3",
            "plane_counts=[2, 4, 300], act_bits=8, rows=3",
            |k| matches!(k, K::BadNumber { text, .. } if text == "300"),
        ),
        (", act_bits=8, rows=3", ", rows=3", |k| {
            matches!(
                k,
                K::MissingAttribute {
                    attr: "act_bits",
                    ..
                }
            )
        }),
        (
            "group=2, bits",
            "group=2, has_bias=true, bits",
            |k| matches!(k, K::UnknownAttribute { attr, .. } if attr == "has_bias"),
        ),
        (
            "bits=8, plane_counts=[2, 4, 8], act_bits=8, rows=3",
            "bits=8, plane_counts=2, act_bits=8, rows=3",
            |k| {
                matches!(
                    k,
                    K::AttributeType {
                        attr: "plane_counts",
                        ..
                    }
                )
            },
        ),
    ];
    for (printed, edited, expected) in cases {
        let bad = text.replace(printed, edited);
        assert_ne!(bad, text, "{printed} is not in the printed graph");
        let err = parse(&bad).unwrap_err();
        assert!(expected(&err.kind), "{edited}: {err}");
    }
}
