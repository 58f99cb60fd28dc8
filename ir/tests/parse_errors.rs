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

/// `assert_kinds!(text => pattern, …)`: parsing each text fails with an error whose kind
/// matches the pattern (one row per bad text).
macro_rules! assert_kinds {
    ($($text:expr => $kind:pat $(if $guard:expr)?),+ $(,)?) => {$(
        let e = err(&$text);
        assert!(matches!(e.kind, $kind $(if $guard)?), "{}: {e}", $text);
    )+};
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
fn unknown_missing_and_duplicate_attributes() {
    assert_kinds!(
        graph("  %y = relu(%x) {alpha=0.5} : f32[N,4]") => K::UnknownAttribute { ref op, ref attr } if op == "relu" && attr == "alpha",
        graph("  %y = softmax(%x) {axis=1} : f32[N,4]") => K::MissingAttribute { ref op, attr: "coerce_2d" } if op == "softmax",
        graph("  %y = flatten(%x) {axis=1, axis=1} : f32[N,4]") => K::DuplicateAttribute { ref op, ref attr } if op == "flatten" && attr == "axis",
    );
    // An unknown attribute is reported at its name, a missing one at its op's line.
    let unknown = err(&graph("  %y = relu(%x) {alpha=0.5} : f32[N,4]"));
    assert_eq!((unknown.line, unknown.column), (2, 18));
    assert_eq!(
        err(&graph("  %y = softmax(%x) {axis=1} : f32[N,4]")).line,
        2
    );
}

#[test]
fn wrong_attribute_type() {
    assert_kinds!(
        graph("  %y = softmax(%x) {axis=1, coerce_2d=1} : f32[N,4]") => K::AttributeType { attr: "coerce_2d", .. },
        graph("  %y = transpose(%x) {perm=1} : f32[4,N]") => K::AttributeType { attr: "perm", .. },
        graph("  %y = cast(%x) {to=[1]} : f32[N,4]") => K::AttributeType { attr: "to", .. },
    );
}

#[test]
fn bad_numbers() {
    assert_kinds!(
        graph("  %y = flatten(%x) {axis=-1} : f32[N,4]") => K::BadNumber { ref text, .. } if text == "-1",
        graph("  %y = leaky_relu(%x) {alpha=1.2.3} : f32[N,4]") => K::BadNumber { .. },
        graph("  %y = leaky_relu(%x) {alpha=infinity} : f32[N,4]") => K::AttributeType { .. } | K::BadNumber { .. },
        graph("  %c = const f32[1] [0x7fc000001]") => K::BadNumber { .. },
        graph("  %c = const bool[1] [1]") => K::BadNumber { .. },
        "graph @g(%x: f32[N,4x]) {\n  return %x\n}" => K::BadNumber { .. },
    );
    let e = err(&graph("  %c = const i8[2] [1, 300]"));
    assert!(
        matches!(e.kind, K::BadNumber { ref text, .. } if text == "300"),
        "{e}"
    );
    assert_eq!((e.line, e.column), (2, 24));
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
    assert_kinds!(
        "graph g(%x: f32[1]) {}" => K::Unexpected { .. },
        "graph @g(%x f32[1]) {}" => K::Unexpected { ref expected, .. } if expected == "`:`",
        "graph @g(%x: f32[1]) {\n  return %x\n" => K::Unexpected { ref found, .. } if found == "end of input",
        "graph @g(% x: f32[1]) {}" => K::Unexpected { .. },
    );
    let e = err("graph @g(%x: f32[1]) { ; }");
    assert_eq!(e.kind, K::UnexpectedChar(';'));
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
    assert_kinds!(
        graph("  %c = const f32[2,2] [1.0, 2.0, 3.0]") => K::BadConstant { .. },
        graph("  %c = const f32[N] [1.0]") => K::BadConstant { .. },
        graph("  %c = const i32[2] hex\"0100000002\"") => K::BadConstant { .. },
        graph("  %c = const u8[2] hex\"zz00\"") => K::BadConstant { .. },
        // A huge declared shape is rejected before anything is allocated.
        graph("  %c = const f32[4294967296,4294967296,4294967296] hex\"00\"") => K::BadConstant { .. },
        graph("  %c = const f32[1000000000000] hex\"00\"") => K::BadConstant { .. },
        graph("  %a, %b = const f32[1] [1.0]") => K::Unexpected { .. },
    );
    let e = err(&graph("  %c = const f32[2] <elided>"));
    assert_eq!(e.kind, K::ElidedConstant("c".into()));
}

#[test]
fn result_type_count() {
    assert_kinds!(
        graph("  %a, %b = split(%x) {axis=1, sizes=[2, 2]} : f32[N,2]") => K::ResultCount { declared: 2, types: 1, .. },
        graph("  %a = relu(%x) : f32[N,4], f32[N,4]") => K::ResultCount { declared: 1, types: 2, .. },
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
