//! Text form: round trips, the printed format, and parse errors.

mod common;

use strata_ir::text::{parse, print, print_with, ParseErrorKind, PrintOptions};
use strata_ir::verify;

#[test]
fn every_op_round_trips() {
    let g = common::every_op();
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
    let g = common::small_cnn();
    verify(&g).expect("valid");
    let text = print(&g);
    insta::assert_snapshot!(text);
    assert!(parse(&text).unwrap() == g);
}

#[test]
fn elided_constants_do_not_parse() {
    let g = common::small_cnn();
    let text = print_with(
        &g,
        &PrintOptions {
            elide_constants_over: Some(4),
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
    let text = print(&common::every_op());
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
#[ignore = "prints the every-op graph for reading"]
fn show_every_op() {
    println!("{}", print(&common::every_op()));
}
