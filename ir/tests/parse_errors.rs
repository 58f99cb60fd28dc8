//! Every parse-error kind, from crafted bad text, with its position.

use strata_ir::text::{parse, ParseErrorKind as K};

/// Parses `body` inside a standard header, expecting an error at `line`.
fn err(text: &str) -> strata_ir::text::ParseError {
    match parse(text) {
        Ok(_) => panic!("parsed unexpectedly:\n{text}"),
        Err(e) => e,
    }
}

fn graph(body: &str) -> String {
    format!("graph @g(%x: f32[N,4]) {{\n{body}\n  return %x\n}}\n")
}

#[test]
fn comments_and_free_attribute_order_are_accepted() {
    let text = "// leading comment\ngraph @g(%x: f32[N,4]) { // trailing\n  %y = softmax(%x) {coerce_2d=false, axis=1} : f32[N,4]\n  return %y\n}";
    let g = parse(text).unwrap();
    strata_ir::verify(&g).unwrap();
}

#[test]
fn unknown_op() {
    let e = err(&graph("  %y = frobnicate(%x) : f32[N,4]"));
    assert_eq!(e.kind, K::UnknownOp("frobnicate".into()));
    assert_eq!((e.line, e.column), (2, 8));
}

#[test]
fn unknown_attribute() {
    let e = err(&graph("  %y = relu(%x) {alpha=0.5} : f32[N,4]"));
    assert_eq!(
        e.kind,
        K::UnknownAttribute {
            op: "relu".into(),
            attr: "alpha".into()
        }
    );
    assert_eq!((e.line, e.column), (2, 18));
}

#[test]
fn missing_attribute() {
    let e = err(&graph("  %y = softmax(%x) {axis=1} : f32[N,4]"));
    assert_eq!(
        e.kind,
        K::MissingAttribute {
            op: "softmax".into(),
            attr: "coerce_2d"
        }
    );
    assert_eq!(e.line, 2);
}

#[test]
fn duplicate_attribute() {
    let e = err(&graph("  %y = flatten(%x) {axis=1, axis=1} : f32[N,4]"));
    assert_eq!(
        e.kind,
        K::DuplicateAttribute {
            op: "flatten".into(),
            attr: "axis".into()
        }
    );
}

#[test]
fn wrong_attribute_type() {
    let e = err(&graph(
        "  %y = softmax(%x) {axis=1, coerce_2d=1} : f32[N,4]",
    ));
    assert!(
        matches!(
            e.kind,
            K::AttributeType {
                attr: "coerce_2d",
                ..
            }
        ),
        "{e}"
    );
    let e = err(&graph("  %y = transpose(%x) {perm=1} : f32[4,N]"));
    assert!(
        matches!(e.kind, K::AttributeType { attr: "perm", .. }),
        "{e}"
    );
    let e = err(&graph("  %y = cast(%x) {to=[1]} : f32[N,4]"));
    assert!(matches!(e.kind, K::AttributeType { attr: "to", .. }), "{e}");
}

#[test]
fn bad_numbers() {
    let e = err(&graph("  %y = flatten(%x) {axis=-1} : f32[N,4]"));
    assert!(
        matches!(e.kind, K::BadNumber { ref text, .. } if text == "-1"),
        "{e}"
    );
    let e = err(&graph("  %y = leaky_relu(%x) {alpha=1.2.3} : f32[N,4]"));
    assert!(matches!(e.kind, K::BadNumber { .. }), "{e}");
    let e = err(&graph("  %y = leaky_relu(%x) {alpha=infinity} : f32[N,4]"));
    assert!(
        matches!(e.kind, K::AttributeType { .. } | K::BadNumber { .. }),
        "{e}"
    );
    let e = err(&graph("  %c = const i8[2] [1, 300]"));
    assert!(
        matches!(e.kind, K::BadNumber { ref text, .. } if text == "300"),
        "{e}"
    );
    assert_eq!((e.line, e.column), (2, 24));
    let e = err(&graph("  %c = const f32[1] [0x7fc000001]"));
    assert!(matches!(e.kind, K::BadNumber { .. }), "{e}");
    let e = err(&graph("  %c = const bool[1] [1]"));
    assert!(matches!(e.kind, K::BadNumber { .. }), "{e}");
    let e = err("graph @g(%x: f32[N,4x]) {\n  return %x\n}");
    assert!(matches!(e.kind, K::BadNumber { .. }), "{e}");
}

#[test]
fn bad_types() {
    let e = err("graph @g(%x: f16[4]) {\n  return %x\n}");
    assert!(matches!(e.kind, K::BadType(_)), "{e}");
    assert_eq!((e.line, e.column), (1, 14));
    let e = err(&graph("  %y = cast(%x) {to=f8} : f32[N,4]"));
    assert!(matches!(e.kind, K::BadType(_)), "{e}");
}

#[test]
fn undefined_and_redefined_values() {
    let e = err(&graph("  %y = relu(%z) : f32[N,4]"));
    assert_eq!(e.kind, K::UndefinedValue("z".into()));
    assert_eq!((e.line, e.column), (2, 13));
    let e = err(&graph("  %x = relu(%x) : f32[N,4]"));
    assert_eq!(e.kind, K::RedefinedValue("x".into()));
    let e = err("graph @g(%x: f32[1], %x: f32[1]) {\n  return %x\n}");
    assert_eq!(e.kind, K::RedefinedValue("x".into()));
    let e = err(&graph(
        "  %a, %a = split(%x) {axis=1, sizes=[2, 2]} : f32[N,2], f32[N,2]",
    ));
    assert_eq!(e.kind, K::RedefinedValue("a".into()));
    let e = err("graph @g(%x: f32[1]) {\n  return %nope\n}");
    assert_eq!(e.kind, K::UndefinedValue("nope".into()));
}

#[test]
fn trailing_garbage() {
    let e = err("graph @g(%x: f32[1]) {\n  return %x\n} extra");
    assert_eq!(e.kind, K::TrailingInput("`extra`".into()));
    assert_eq!((e.line, e.column), (3, 3));
}

#[test]
fn unexpected_tokens_and_characters() {
    let e = err("graph g(%x: f32[1]) {}");
    assert!(matches!(e.kind, K::Unexpected { .. }), "{e}");
    let e = err("graph @g(%x f32[1]) {}");
    assert!(
        matches!(e.kind, K::Unexpected { ref expected, .. } if expected == "`:`"),
        "{e}"
    );
    let e = err("graph @g(%x: f32[1]) {\n  return %x\n");
    assert!(
        matches!(e.kind, K::Unexpected { ref found, .. } if found == "end of input"),
        "{e}"
    );
    let e = err("graph @g(%x: f32[1]) { ; }");
    assert_eq!(e.kind, K::UnexpectedChar(';'));
    let e = err("graph @g(% x: f32[1]) {}");
    assert!(matches!(e.kind, K::Unexpected { .. }), "{e}");
}

#[test]
fn strings() {
    let e = err("graph @\"g(%x: f32[1]) {}");
    assert_eq!(e.kind, K::UnterminatedString);
    let e = err("graph @\"a\\qb\"() {\n return\n}");
    assert_eq!(e.kind, K::BadEscape("\\q".into()));
    let e = err("graph @\"a\\u{110000}\"() {\n return\n}");
    assert!(matches!(e.kind, K::BadEscape(_)), "{e}");
    let g = parse("graph @\"a\\u{e9}\\n\\\"\"() {\n return\n}").unwrap();
    assert_eq!(g.name, "aé\n\"");
}

#[test]
fn constants() {
    let e = err(&graph("  %c = const f32[2,2] [1.0, 2.0, 3.0]"));
    assert!(matches!(e.kind, K::BadConstant { .. }), "{e}");
    let e = err(&graph("  %c = const f32[N] [1.0]"));
    assert!(matches!(e.kind, K::BadConstant { .. }), "{e}");
    let e = err(&graph("  %c = const i32[2] hex\"0100000002\""));
    assert!(matches!(e.kind, K::BadConstant { .. }), "{e}");
    let e = err(&graph("  %c = const u8[2] hex\"zz00\""));
    assert!(matches!(e.kind, K::BadConstant { .. }), "{e}");
    // A huge declared shape is rejected before anything is allocated.
    let e = err(&graph(
        "  %c = const f32[4294967296,4294967296,4294967296] hex\"00\"",
    ));
    assert!(matches!(e.kind, K::BadConstant { .. }), "{e}");
    let e = err(&graph("  %c = const f32[1000000000000] hex\"00\""));
    assert!(matches!(e.kind, K::BadConstant { .. }), "{e}");
    let e = err(&graph("  %c = const f32[2] <elided>"));
    assert_eq!(e.kind, K::ElidedConstant("c".into()));
    let e = err(&graph("  %a, %b = const f32[1] [1.0]"));
    assert!(matches!(e.kind, K::Unexpected { .. }), "{e}");
}

#[test]
fn result_type_count() {
    let e = err(&graph(
        "  %a, %b = split(%x) {axis=1, sizes=[2, 2]} : f32[N,2]",
    ));
    assert!(
        matches!(
            e.kind,
            K::ResultCount {
                declared: 2,
                types: 1,
                ..
            }
        ),
        "{e}"
    );
    let e = err(&graph("  %a = relu(%x) : f32[N,4], f32[N,4]"));
    assert!(
        matches!(
            e.kind,
            K::ResultCount {
                declared: 1,
                types: 2,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn deep_nesting_is_bounded() {
    let deep = format!(
        "  %y = transpose(%x) {{perm={}1{}}} : f32[4,N]",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let e = err(&graph(&deep));
    assert!(matches!(e.kind, K::TooDeep(_)), "{e}");
}

#[test]
fn parse_does_not_infer() {
    // Types are taken as written; the verifier is what checks them.
    let g = parse(&graph("  %y = relu(%x) : f32[7]")).unwrap();
    assert!(strata_ir::verify(&g).is_err());
}
