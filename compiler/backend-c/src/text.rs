//! C lexical helpers shared by the printers.

use std::fmt::Write as _;

use strata_lower::{Loc, Lowered};

/// A node name made safe inside a C comment.
pub(crate) fn comment_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect::<String>()
        .replace("*/", "*_/")
}

/// A C float literal that parses back to exactly `v` (shortest round-trip decimal).
pub(crate) fn c_float(v: f32) -> String {
    if v.is_nan() {
        "NAN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "INFINITY" } else { "-INFINITY" }.into()
    } else {
        format!("{v:?}f")
    }
}

/// `static const float NAME[n] = {…};`, eight values a line.
pub(crate) fn float_array(out: &mut String, name: &str, vals: &[f32]) {
    let _ = write!(out, "static const float {name}[{}] = {{", vals.len().max(1));
    for (i, v) in vals.iter().enumerate() {
        out.push_str(if i % 8 == 0 { "\n    " } else { " " });
        out.push_str(&c_float(*v));
        out.push(',');
    }
    if vals.is_empty() {
        out.push_str("0.0f");
    }
    out.push_str("\n};\n");
}

/// `{a, b, …}` of unsigned literals, for a kernel struct initializer.
pub(crate) fn unsigned_init(vals: &[usize]) -> String {
    let fields: Vec<String> = vals.iter().map(|d| format!("{d}u")).collect();
    format!("{{{}}}", fields.join(", "))
}

/// The C expression for a value's storage: one of the caller's inputs or an arena slice.
pub(crate) fn at(l: &Lowered, loc: Loc) -> String {
    match loc {
        Loc::Input(i) => format!("inputs[{i}]"),
        Loc::Buf(b) => buf(l, b),
    }
}

/// The C expression for arena buffer `b`.
pub(crate) fn buf(l: &Lowered, b: usize) -> String {
    format!("(A + {})", l.offset(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_comments() {
        assert_eq!(c_float(0.1), "0.1f");
        assert_eq!(c_float(-3.0), "-3.0f");
        assert_eq!(c_float(f32::NAN), "NAN");
        assert_eq!(c_float(f32::NEG_INFINITY), "-INFINITY");
        assert_eq!(comment_safe("a*/b\nc"), "a*_/b?c");
        assert_eq!(unsigned_init(&[1, 20]), "{1u, 20u}");
        let mut s = String::new();
        float_array(&mut s, "E", &[]);
        assert_eq!(s, "static const float E[1] = {0.0f\n};\n");
    }
}
