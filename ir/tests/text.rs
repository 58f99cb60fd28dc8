//! Text form: round trips, the printed format, and parse errors.

use strata_test_support::models::{every_op, snapshot_cnn};

use strata_ir::text::{parse, print, print_with, ParseErrorKind, PrintOptions};
use strata_ir::verify;

#[test]
fn every_op_round_trips() {
    let g = every_op();
    verify(&g).expect("builder graph is valid");
    let text = print(&g);
    let back = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(
        back == g,
        "round trip differs:\n{text}\n---\n{}",
        print(&back)
    );
    assert_eq!(print(&back), text);
    verify(&back).expect("re-parsed graph is valid");
}

#[test]
fn small_cnn_snapshot() {
    let g = snapshot_cnn();
    verify(&g).expect("valid");
    let text = print(&g);
    insta::assert_snapshot!(text);
    assert!(parse(&text).unwrap() == g);
}

#[test]
fn elided_constants_do_not_parse() {
    let g = snapshot_cnn();
    let text = print_with(
        &g,
        &PrintOptions {
            elide_constants_over: Some(4),
            ..Default::default()
        },
    );
    assert!(
        text.contains("%\"fc.w\" = const f32[3,8] <elided>")
            || text.contains("%fc.w = const f32[3,8] <elided>"),
        "{text}"
    );
    assert!(
        text.contains("%conv.b = const f32[2] [0.5, -0.0]"),
        "{text}"
    );
    let err = parse(&text).unwrap_err();
    assert!(
        matches!(err.kind, ParseErrorKind::ElidedConstant(ref n) if n == "conv.w"),
        "{err}"
    );
}

#[test]
fn truncation_never_panics() {
    let text = print(&every_op());
    let chars: Vec<char> = text.chars().collect();
    let mut ok = 0;
    for cut in 0..chars.len() {
        let prefix: String = chars[..cut].iter().collect();
        if parse(&prefix).is_ok() {
            ok += 1;
        }
    }
    // Only the complete text (and the text without its final newline) parse.
    assert_eq!(ok, 1);
}

#[test]
fn odd_names_nan_attributes_and_empty_results_round_trip() {
    use strata_ir::ops::{Gemm, Pad, PadMode, Split, UnaryOp};
    use strata_ir::{DType, Graph, Op, TensorType, Value, ValueRef};
    let names = [
        "",
        "a b",
        "ünï",
        "tab\there",
        "nul\u{0}",
        "q\"uote",
        "back\\slash",
        "%pct",
        "@at",
        "1",
        "x:0",
        "-",
        "//c",
    ];
    let mut g = Graph::new("");
    let ty = TensorType::known(DType::F32, &[2, 2]);
    let mut v = g.add_input(names[0], ty.clone());
    for (i, n) in names.iter().enumerate().skip(1) {
        let op = if i % 2 == 0 {
            Op::Unary(UnaryOp::LeakyRelu {
                alpha: f32::from_bits(0xffc0_1234),
            })
        } else {
            Op::Pad(Pad {
                pads: vec![0; 4],
                value: -f64::NAN,
                mode: PadMode::Constant,
            })
        };
        let id = g
            .add_op(
                format!("node {n}"),
                op,
                &[v],
                vec![Value {
                    name: n.to_string(),
                    ty: ty.clone(),
                }],
            )
            .unwrap();
        v = ValueRef::first(id);
    }
    let gemm = Op::Gemm(Gemm {
        alpha: f32::NAN,
        beta: -0.0,
        trans_a: true,
        trans_b: false,
        has_c: false,
    });
    let id = g
        .add_op(
            "g",
            gemm,
            &[v, v],
            vec![Value {
                name: "gm".into(),
                ty: ty.clone(),
            }],
        )
        .unwrap();
    // An op with no results (invalid, but the text must still carry it).
    g.add_op(
        "nothing",
        Op::Split(Split {
            axis: 0,
            sizes: vec![],
        }),
        &[ValueRef::first(id)],
        vec![],
    )
    .unwrap();
    g.set_outputs(vec![ValueRef::first(id), v]);
    let text = print(&g);
    let back = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(back == g, "{text}\n---\n{}", print(&back));
    assert!(
        text.contains("() = split(%gm) {axis=0, sizes=[]} @nothing :"),
        "{text}"
    );
    assert!(text.contains("alpha=0xffc01234"), "{text}");
    assert!(text.contains("value=0xfff8000000000000"), "{text}");
}

#[test]
fn inputs_print_first_even_when_added_after_constants() {
    use strata_ir::{DType, Graph, Tensor, TensorType};
    let mut g = Graph::new("g");
    let c = g.add_constant("c", Tensor::scalar_f32(1.0));
    let b = g.add_input("b", TensorType::known(DType::F32, &[]));
    let a = g.add_input("a", TensorType::known(DType::F32, &[]));
    g.set_outputs(vec![a, c, b]);
    let text = print(&g);
    assert!(
        text.starts_with("graph @g(%b: f32[], %a: f32[]) {\n  %c = const f32[] [1.0]\n"),
        "{text}"
    );
    assert!(parse(&text).unwrap() == g);
}

#[test]
fn single_character_mutations_never_panic() {
    let text = print(&snapshot_cnn());
    let chars: Vec<char> = text.chars().collect();
    for i in 0..chars.len() {
        for r in ['"', '[', ']', '%', '9', '-', '}', '\\', 'N', 'é', ' '] {
            let mut m = chars.clone();
            m[i] = r;
            let s: String = m.into_iter().collect();
            let _ = parse(&s);
        }
        let mut m = chars.clone();
        m.remove(i);
        let _ = parse(&m.into_iter().collect::<String>());
    }
}
