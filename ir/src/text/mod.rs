//! The textual form of a graph: what `strata compile --emit ir` prints, what pass filetests
//! are written in, and a lossless serialisation (`parse(print(g)) == g`).
//!
//! # Grammar
//!
//! ```text
//! graph    := "graph" "@" name "(" [input ("," input)*] ")" "{" stmt* "return" [value ("," value)*] "}"
//! input    := value ":" type [node]
//! stmt     := value "=" "const" type payload [node]
//!           | results "=" mnemonic "(" [value ("," value)*] ")" [attrs] [node] ":" [type ("," type)*]
//! results  := value ("," value)* | "(" ")"
//! payload  := "[" [literal ("," literal)*] "]"      -- elements in row-major order
//!           | "hex" string                          -- little-endian bytes, two hex digits each
//!           | "extern"                              -- data supplied by the loader (`parse_with`)
//!           | "<elided>"                            -- printed for display only; never parses
//! attrs    := "{" [ident "=" attr ("," ident "=" attr)*] "}"
//! attr     := number | "true" | "false" | ident | "[" [attr ("," attr)*] "]"
//! type     := dtype "[" [dim ("," dim)*] "]"        -- dim is an integer or N (the batch)
//! node     := "@" name                              -- node name, when it differs from the first value
//! value    := "%" name
//! name     := [A-Za-z0-9_.$/-]+ | string
//! string   := '"' (char | "\\" | "\"" | "\n" | "\t" | "\u{" hex+ "}")* '"'
//! ```
//!
//! `//` starts a comment that runs to the end of the line. Graph inputs come first (in the
//! header, in input order), then constants and ops in [`Graph::topo_order`], so a re-parsed
//! graph has the same node order. Attributes are printed in each op's fixed field order and
//! may be given in any order. Floats print in Rust's shortest round-trip form, `inf`, `-inf`,
//! `nan`, or — for NaNs with another payload or sign — as raw bits `0x7fc00001`, so every
//! value is reproduced bit for bit. Constants with at most [`LITERAL_LIMIT`] elements are
//! printed as literal lists, larger ones in hex.
//!
//! [`Graph::topo_order`]: crate::Graph::topo_order

pub(crate) mod fields;
mod parser;
mod printer;

pub(crate) use parser::parse_with_prefix;
pub use parser::{parse, parse_with, ExternResolver, ParseError, ParseErrorKind};
pub use printer::{print, print_with, PrintOptions};

use crate::DType;

/// Constants up to this many elements print as readable literal lists; larger ones as hex,
/// which is compact and exact.
pub const LITERAL_LIMIT: usize = 16;

/// An attribute value as written in the text. Numbers keep their spelling so each op can
/// read them at its own type (`f32`, `f64`, `i64`, `usize`) without an intermediate rounding.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Number(String),
    Bool(bool),
    Ident(String),
    List(Vec<AttrValue>),
}

impl AttrValue {
    /// Helpers for family `text_attrs`: each spells the value the way the parser reads it back.
    pub fn usize(v: usize) -> AttrValue {
        AttrValue::Number(v.to_string())
    }
    pub fn i64(v: i64) -> AttrValue {
        AttrValue::Number(v.to_string())
    }
    pub fn f32(v: f32) -> AttrValue {
        AttrValue::Number(fmt_f32(v))
    }
    pub fn f64(v: f64) -> AttrValue {
        AttrValue::Number(fmt_f64(v))
    }
    pub fn usizes(v: &[usize]) -> AttrValue {
        AttrValue::List(v.iter().map(|&x| AttrValue::usize(x)).collect())
    }
    pub fn u8s(v: &[u8]) -> AttrValue {
        AttrValue::List(v.iter().map(|&x| AttrValue::usize(x as usize)).collect())
    }
    pub fn f32s(v: &[f32]) -> AttrValue {
        AttrValue::List(v.iter().map(|&x| AttrValue::f32(x)).collect())
    }
    pub fn i64s(v: &[i64]) -> AttrValue {
        AttrValue::List(v.iter().map(|&x| AttrValue::i64(x)).collect())
    }
    pub fn dtype(d: DType) -> AttrValue {
        AttrValue::Ident(d.name().to_string())
    }

    /// How the value is spelled, for "found …" in error messages.
    fn describe(&self) -> String {
        match self {
            AttrValue::Number(n) => format!("number {n}"),
            AttrValue::Bool(b) => format!("boolean {b}"),
            AttrValue::Ident(i) => format!("identifier {i}"),
            AttrValue::List(_) => "a list".to_string(),
        }
    }

    fn write(&self, out: &mut String) {
        match self {
            AttrValue::Number(n) | AttrValue::Ident(n) => out.push_str(n),
            AttrValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            AttrValue::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.write(out);
                }
                out.push(']');
            }
        }
    }
}

/// A source position (1-based line and column, in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// The attributes of one op being parsed. Family modules take the attributes they know;
/// whatever remains afterwards is reported as unknown.
#[derive(Debug)]
pub struct Attrs {
    op: String,
    op_pos: Pos,
    entries: Vec<(String, AttrValue, Pos)>,
}

impl Attrs {
    pub(crate) fn new(op: &str, op_pos: Pos, entries: Vec<(String, AttrValue, Pos)>) -> Attrs {
        Attrs {
            op: op.to_string(),
            op_pos,
            entries,
        }
    }

    fn err(&self, pos: Pos, kind: ParseErrorKind) -> ParseError {
        ParseError {
            line: pos.line,
            column: pos.column,
            kind,
        }
    }

    fn take(&mut self, name: &'static str) -> Result<(AttrValue, Pos), ParseError> {
        match self.entries.iter().position(|(n, _, _)| n == name) {
            Some(i) => {
                let (_, v, p) = self.entries.remove(i);
                Ok((v, p))
            }
            None => Err(self.err(
                self.op_pos,
                ParseErrorKind::MissingAttribute {
                    op: self.op.clone(),
                    attr: name,
                },
            )),
        }
    }

    fn wrong_type(
        &self,
        name: &'static str,
        expected: &'static str,
        v: &AttrValue,
        p: Pos,
    ) -> ParseError {
        self.err(
            p,
            ParseErrorKind::AttributeType {
                op: self.op.clone(),
                attr: name,
                expected,
                found: v.describe(),
            },
        )
    }

    fn number<T>(
        &self,
        name: &'static str,
        expected: &'static str,
        v: &AttrValue,
        p: Pos,
        conv: impl Fn(&str) -> Option<T>,
    ) -> Result<T, ParseError> {
        match v {
            AttrValue::Number(s) => conv(s).ok_or_else(|| {
                self.err(
                    p,
                    ParseErrorKind::BadNumber {
                        text: s.clone(),
                        expected,
                    },
                )
            }),
            other => Err(self.wrong_type(name, expected, other, p)),
        }
    }

    fn list<T>(
        &mut self,
        name: &'static str,
        expected: &'static str,
        conv: impl Fn(&str) -> Option<T>,
    ) -> Result<Vec<T>, ParseError> {
        let (v, p) = self.take(name)?;
        match &v {
            AttrValue::List(items) => items
                .iter()
                .map(|item| self.number(name, expected, item, p, &conv))
                .collect(),
            other => Err(self.wrong_type(name, "a list", other, p)),
        }
    }

    /// Takes attribute `name` as a non-negative integer (missing, wrong kind or bad number are errors).
    pub fn usize(&mut self, name: &'static str) -> Result<usize, ParseError> {
        let (v, p) = self.take(name)?;
        self.number(name, "a non-negative integer", &v, p, |s| s.parse().ok())
    }

    /// Takes an f32 attribute; accepts `nan`, `inf`, `-inf` and raw bits `0x…` besides decimals.
    pub fn f32(&mut self, name: &'static str) -> Result<f32, ParseError> {
        let (v, p) = self.take(name)?;
        self.number(name, "an f32", &v, p, parse_f32)
    }

    /// Takes an f64 attribute (same spellings as [`Attrs::f32`]).
    pub fn f64(&mut self, name: &'static str) -> Result<f64, ParseError> {
        let (v, p) = self.take(name)?;
        self.number(name, "an f64", &v, p, parse_f64)
    }

    /// Takes a `true`/`false` attribute.
    pub fn bool(&mut self, name: &'static str) -> Result<bool, ParseError> {
        let (v, p) = self.take(name)?;
        match v {
            AttrValue::Bool(b) => Ok(b),
            other => Err(self.wrong_type(name, "true or false", &other, p)),
        }
    }

    /// Takes a list of non-negative integers (axes, sizes, strides).
    pub fn usizes(&mut self, name: &'static str) -> Result<Vec<usize>, ParseError> {
        self.list(name, "a non-negative integer", |s| s.parse().ok())
    }

    /// Takes a small non-negative integer (bit widths and plane counts of bit-plane ops).
    pub fn u8(&mut self, name: &'static str) -> Result<u8, ParseError> {
        let (v, p) = self.take(name)?;
        self.number(name, "an integer in 0..=255", &v, p, |s| s.parse().ok())
    }

    /// Takes a list of small non-negative integers (the plane counts of bit-plane ops).
    pub fn u8s(&mut self, name: &'static str) -> Result<Vec<u8>, ParseError> {
        self.list(name, "an integer in 0..=255", |s| s.parse().ok())
    }

    /// Takes a list of f32 (resize scales); same spellings as [`Attrs::f32`].
    pub fn f32s(&mut self, name: &'static str) -> Result<Vec<f32>, ParseError> {
        self.list(name, "an f32", parse_f32)
    }

    /// Takes a list of signed integers (reshape targets, slice bounds, pads).
    pub fn i64s(&mut self, name: &'static str) -> Result<Vec<i64>, ParseError> {
        self.list(name, "an i64", |s| s.parse().ok())
    }

    /// Whether attribute `name` is present (for attributes added later with a default, so
    /// text written before them still parses).
    pub fn has(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, _, _)| n == name)
    }

    /// Takes an identifier attribute that must be one of `names` (an enum-valued attribute
    /// such as a resize mode); returns its index in `names`.
    pub fn choice(
        &mut self,
        name: &'static str,
        names: &[&'static str],
        expected: &'static str,
    ) -> Result<usize, ParseError> {
        let (v, p) = self.take(name)?;
        match &v {
            AttrValue::Ident(s) => names
                .iter()
                .position(|n| n == s)
                .ok_or_else(|| self.wrong_type(name, expected, &v, p)),
            other => Err(self.wrong_type(name, expected, other, p)),
        }
    }

    /// Takes an element-type name (`f32`, `i8`, …).
    pub fn dtype(&mut self, name: &'static str) -> Result<DType, ParseError> {
        let (v, p) = self.take(name)?;
        match &v {
            AttrValue::Ident(s) => s
                .parse()
                .map_err(|_| self.err(p, ParseErrorKind::BadType(s.clone()))),
            other => Err(self.wrong_type(name, "an element type", other, p)),
        }
    }

    /// Fails on the first attribute nobody took.
    pub(crate) fn finish(self) -> Result<(), ParseError> {
        match self.entries.into_iter().next() {
            None => Ok(()),
            Some((name, _, p)) => Err(ParseError {
                line: p.line,
                column: p.column,
                kind: ParseErrorKind::UnknownAttribute {
                    op: self.op,
                    attr: name,
                },
            }),
        }
    }
}

/// f32 in its shortest exact spelling; NaNs other than the canonical one as raw bits.
pub(crate) fn fmt_f32(v: f32) -> String {
    let nan = v
        .is_nan()
        .then(|| (v.to_bits().into(), f32::NAN.to_bits().into(), 8));
    fmt_float(format!("{v:?}"), nan)
}

/// f64 counterpart of [`fmt_f32`].
pub(crate) fn fmt_f64(v: f64) -> String {
    let nan = v.is_nan().then(|| (v.to_bits(), f64::NAN.to_bits(), 16));
    fmt_float(format!("{v:?}"), nan)
}

/// The spelling [`fmt_f32`] and [`fmt_f64`] share. `debug` is the value's `{:?}`: shortest
/// exact for finite values, `inf` / `-inf` for infinities. A NaN comes as `(bits, canonical
/// NaN bits, hex digits)`: `nan` when canonical, else its raw bits.
fn fmt_float(debug: String, nan: Option<(u64, u64, usize)>) -> String {
    match nan {
        None => debug,
        Some((bits, canonical, _)) if bits == canonical => "nan".into(),
        Some((bits, _, digits)) => format!("0x{bits:0digits$x}"),
    }
}

fn hex_bits(s: &str, max_digits: usize) -> Option<u64> {
    let h = s.strip_prefix("0x")?;
    if h.is_empty() || h.len() > max_digits {
        return None;
    }
    u64::from_str_radix(h, 16).ok()
}

fn plain_float(s: &str) -> bool {
    // Rust's float parser also takes "infinity" and mixed case; the text form is stricter.
    s.bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && s.bytes().any(|b| b.is_ascii_digit())
}

pub(crate) fn parse_f32(s: &str) -> Option<f32> {
    match s {
        "nan" => Some(f32::NAN),
        "inf" => Some(f32::INFINITY),
        "-inf" => Some(f32::NEG_INFINITY),
        _ if s.starts_with("0x") => hex_bits(s, 8).map(|b| f32::from_bits(b as u32)),
        _ if plain_float(s) => s.parse().ok(),
        _ => None,
    }
}

pub(crate) fn parse_f64(s: &str) -> Option<f64> {
    match s {
        "nan" => Some(f64::NAN),
        "inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        _ if s.starts_with("0x") => hex_bits(s, 16).map(f64::from_bits),
        _ if plain_float(s) => s.parse().ok(),
        _ => None,
    }
}

/// True when a name can be printed without quotes.
pub(crate) fn is_bare_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$' | '/' | '-'))
}

/// A name, quoted and escaped when it is not a bare identifier.
pub(crate) fn fmt_name(s: &str) -> String {
    if is_bare_name(s) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
