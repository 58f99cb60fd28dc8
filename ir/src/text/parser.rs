//! Text → graph. A small hand-written lexer and recursive-descent parser; every error carries
//! the line and column of the offending token. See [`crate::text`] for the grammar.

use std::collections::HashMap;

use super::{parse_f32, parse_f64, AttrValue, Attrs, Pos};
use crate::{
    DType, Dim, Graph, GraphError, Op, Shape, Tensor, TensorData, TensorType, Value, ValueRef,
};

/// A parse failure at a source position.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub kind: ParseErrorKind,
}

/// What went wrong while parsing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("expected {expected}, found {found}")]
    Unexpected { expected: String, found: String },
    #[error("unexpected character {0:?}")]
    UnexpectedChar(char),
    #[error("unterminated string")]
    UnterminatedString,
    #[error("invalid escape sequence `{0}` in string")]
    BadEscape(String),
    #[error("unknown op `{0}`")]
    UnknownOp(String),
    #[error("op `{op}`: unknown attribute `{attr}`")]
    UnknownAttribute { op: String, attr: String },
    #[error("op `{op}`: missing attribute `{attr}`")]
    MissingAttribute { op: String, attr: &'static str },
    #[error("op `{op}`: attribute `{attr}` given twice")]
    DuplicateAttribute { op: String, attr: String },
    #[error("op `{op}`: attribute `{attr}` must be {expected}, found {found}")]
    AttributeType {
        op: String,
        attr: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error("invalid number `{text}` (expected {expected})")]
    BadNumber {
        text: String,
        expected: &'static str,
    },
    #[error("invalid type: {0}")]
    BadType(String),
    #[error("value %{0} is not defined")]
    UndefinedValue(String),
    #[error("value %{0} is defined twice")]
    RedefinedValue(String),
    #[error("constant %{0} was elided when printed; its data is not in the text")]
    ElidedConstant(String),
    #[error("constant %{name}: {reason}")]
    BadConstant { name: String, reason: String },
    #[error("constant %{0} is extern: its data is not in the text (load it with `parse_with` or from its container)")]
    ExternConstant(String),
    #[error("extern constant %{0} was not supplied")]
    MissingExtern(String),
    #[error(
        "extern constant %{name} is declared {declared} but the supplied tensor is {supplied}"
    )]
    ExternType {
        name: String,
        declared: TensorType,
        supplied: TensorType,
    },
    #[error("op `{op}` declares {declared} results but {types} types")]
    ResultCount {
        op: String,
        declared: usize,
        types: usize,
    },
    #[error("nesting deeper than {0} levels")]
    TooDeep(usize),
    #[error("unexpected {0} after the end of the graph")]
    TrailingInput(String),
    #[error("{0}")]
    Graph(GraphError),
}

/// Parses the text form into a graph, exactly as printed (no inference: types are taken as
/// written; run [`crate::verify`] to check them).
/// `extern` constants are rejected: their data lives outside the text (see [`parse_with`]).
pub fn parse(text: &str) -> Result<Graph, ParseError> {
    parse_graph(text, None, false)
}

/// Parses text whose constants may be `extern` (printed with
/// [`PrintOptions::extern_constants`](super::PrintOptions)), asking `resolver` for each one's
/// tensor by value name and declared type. This is how the `.strata` container keeps weights
/// out of the graph text: the tensor directory holds the bytes, the text holds the structure.
/// A resolver that returns `None`, or a tensor of another type, is a typed error naming the
/// constant.
pub fn parse_with(text: &str, resolver: &mut ExternResolver<'_>) -> Result<Graph, ParseError> {
    parse_graph(text, Some(resolver), false)
}

/// [`parse_with`] for the container reader: a supplied tensor may have fewer entries along
/// its first axis than declared (planes missing from a prefix of the file).
pub(crate) fn parse_with_prefix(
    text: &str,
    resolver: &mut ExternResolver<'_>,
) -> Result<Graph, ParseError> {
    parse_graph(text, Some(resolver), true)
}

/// Lexes and parses one graph; the entry points differ only in how `extern` constants are
/// treated (rejected without a resolver; `allow_prefix` for truncated plane tensors).
fn parse_graph<'r>(
    text: &str,
    resolver: Option<&'r mut ExternResolver<'r>>,
    allow_prefix: bool,
) -> Result<Graph, ParseError> {
    Parser {
        tokens: lex(text)?,
        at: 0,
        values: HashMap::new(),
        resolver,
        allow_prefix,
    }
    .graph()
}

/// Same element type and shape, except that the first dimension may be smaller.
fn is_leading_prefix(declared: &TensorType, supplied: &TensorType) -> bool {
    let (d, s) = (&declared.shape.0, &supplied.shape.0);
    declared.dtype == supplied.dtype
        && !d.is_empty()
        && d.len() == s.len()
        && d[1..] == s[1..]
        && match (d[0], s[0]) {
            (Dim::Known(a), Dim::Known(b)) => b <= a,
            _ => false,
        }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A bare word: keyword, mnemonic, element type, number, `N`.
    Word(String),
    /// `%name`
    Value(String),
    /// `@name`
    At(String),
    Str(String),
    Punct(char),
    Eof,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Word(w) => format!("`{w}`"),
        Tok::Value(v) => format!("value %{v}"),
        Tok::At(v) => format!("@{v}"),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Punct(c) => format!("`{c}`"),
        Tok::Eof => "end of input".into(),
    }
}

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-')
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '$' | '/' | '-')
}

fn lex(text: &str) -> Result<Vec<(Tok, Pos)>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    let err = |pos: Pos, kind| ParseError {
        line: pos.line,
        column: pos.column,
        kind,
    };
    while i < chars.len() {
        let c = chars[i];
        let pos = Pos { line, column: col };
        if c == '\n' {
            i += 1;
            line += 1;
            col = 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            col += 1;
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        let tok = match c {
            '%' | '@' => {
                i += 1;
                let name = if chars.get(i) == Some(&'"') {
                    lex_string(&chars, &mut i, pos, &mut line)?
                } else {
                    let s = i;
                    while i < chars.len() && is_name_char(chars[i]) {
                        i += 1;
                    }
                    if s == i {
                        return Err(err(
                            pos,
                            ParseErrorKind::Unexpected {
                                expected: format!("a name after `{c}`"),
                                found: chars
                                    .get(i)
                                    .map(|c| format!("{c:?}"))
                                    .unwrap_or_else(|| "end of input".into()),
                            },
                        ));
                    }
                    chars[s..i].iter().collect()
                };
                if c == '%' {
                    Tok::Value(name)
                } else {
                    Tok::At(name)
                }
            }
            '"' => Tok::Str(lex_string(&chars, &mut i, pos, &mut line)?),
            '(' | ')' | '{' | '}' | '[' | ']' | ',' | '=' | ':' | '<' | '>' => {
                i += 1;
                Tok::Punct(c)
            }
            c if is_word_char(c) => {
                while i < chars.len() && is_word_char(chars[i]) {
                    i += 1;
                }
                Tok::Word(chars[start..i].iter().collect())
            }
            other => return Err(err(pos, ParseErrorKind::UnexpectedChar(other))),
        };
        // Strings may span lines; recompute the column from the last newline.
        col = match chars[start..i].iter().rposition(|&c| c == '\n') {
            Some(nl) => i - (start + nl),
            None => col + (i - start),
        };
        out.push((tok, pos));
    }
    out.push((Tok::Eof, Pos { line, column: col }));
    Ok(out)
}

/// Lexes a quoted string starting at `chars[*i] == '"'`, leaving `*i` after the closing quote.
fn lex_string(
    chars: &[char],
    i: &mut usize,
    pos: Pos,
    line: &mut usize,
) -> Result<String, ParseError> {
    let err = |kind| ParseError {
        line: pos.line,
        column: pos.column,
        kind,
    };
    *i += 1;
    let mut s = String::new();
    loop {
        let Some(&c) = chars.get(*i) else {
            return Err(err(ParseErrorKind::UnterminatedString));
        };
        *i += 1;
        match c {
            '"' => return Ok(s),
            '\n' => {
                *line += 1;
                s.push(c);
            }
            '\\' => {
                let Some(&e) = chars.get(*i) else {
                    return Err(err(ParseErrorKind::UnterminatedString));
                };
                *i += 1;
                match e {
                    '"' => s.push('"'),
                    '\\' => s.push('\\'),
                    'n' => s.push('\n'),
                    't' => s.push('\t'),
                    'u' => {
                        if chars.get(*i) != Some(&'{') {
                            return Err(err(ParseErrorKind::BadEscape("\\u".into())));
                        }
                        let close = chars[*i..].iter().take(10).position(|&c| c == '}');
                        let Some(close) = close else {
                            return Err(err(ParseErrorKind::BadEscape("\\u{".into())));
                        };
                        let hex: String = chars[*i + 1..*i + close].iter().collect();
                        *i += close + 1;
                        let ch = u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32);
                        match ch {
                            Some(ch) => s.push(ch),
                            None => {
                                return Err(err(ParseErrorKind::BadEscape(format!("\\u{{{hex}}}"))))
                            }
                        }
                    }
                    other => return Err(err(ParseErrorKind::BadEscape(format!("\\{other}")))),
                }
            }
            c => s.push(c),
        }
    }
}

/// Deepest attribute-list nesting accepted (ops use flat lists; this bounds recursion).
const MAX_DEPTH: usize = 4;

/// Supplies the tensor of an `extern` constant from its value name and declared type.
pub type ExternResolver<'r> = dyn FnMut(&str, &TensorType) -> Option<Tensor> + 'r;

struct Parser<'r> {
    tokens: Vec<(Tok, Pos)>,
    at: usize,
    values: HashMap<String, ValueRef>,
    /// `None` for plain [`parse`], which rejects `extern` payloads.
    resolver: Option<&'r mut ExternResolver<'r>>,
    /// Accept an extern tensor whose leading dimension is smaller than declared (a plane
    /// tensor loaded from a truncated container); the resolver checks everything else.
    allow_prefix: bool,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        // `lex` always ends with Eof and `bump` never moves past it.
        &self.tokens[self.at.min(self.tokens.len() - 1)].0
    }

    fn pos(&self) -> Pos {
        self.tokens[self.at.min(self.tokens.len() - 1)].1
    }

    fn bump(&mut self) -> (Tok, Pos) {
        let t = self.tokens[self.at.min(self.tokens.len() - 1)].clone();
        if self.at < self.tokens.len() - 1 {
            self.at += 1;
        }
        t
    }

    fn error_at(&self, pos: Pos, kind: ParseErrorKind) -> ParseError {
        ParseError {
            line: pos.line,
            column: pos.column,
            kind,
        }
    }

    fn unexpected(&self, expected: &str) -> ParseError {
        self.error_at(
            self.pos(),
            ParseErrorKind::Unexpected {
                expected: expected.to_string(),
                found: describe(self.peek()),
            },
        )
    }

    fn eat_punct(&mut self, c: char) -> bool {
        if *self.peek() == Tok::Punct(c) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect_punct(&mut self, c: char) -> Result<(), ParseError> {
        if self.eat_punct(c) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("`{c}`")))
        }
    }

    fn expect_keyword(&mut self, kw: &str) -> Result<(), ParseError> {
        match self.peek() {
            Tok::Word(w) if w == kw => {
                self.bump();
                Ok(())
            }
            _ => Err(self.unexpected(&format!("`{kw}`"))),
        }
    }

    fn word(&mut self, expected: &str) -> Result<(String, Pos), ParseError> {
        match self.peek().clone() {
            Tok::Word(w) => {
                let (_, p) = self.bump();
                Ok((w, p))
            }
            _ => Err(self.unexpected(expected)),
        }
    }

    fn value_name(&mut self) -> Result<(String, Pos), ParseError> {
        match self.peek().clone() {
            Tok::Value(v) => {
                let (_, p) = self.bump();
                Ok((v, p))
            }
            _ => Err(self.unexpected("a value `%name`")),
        }
    }

    fn use_value(&mut self) -> Result<ValueRef, ParseError> {
        let (name, p) = self.value_name()?;
        self.values
            .get(&name)
            .copied()
            .ok_or_else(|| self.error_at(p, ParseErrorKind::UndefinedValue(name)))
    }

    fn define(&mut self, name: &str, pos: Pos, v: ValueRef) -> Result<(), ParseError> {
        if self.values.insert(name.to_string(), v).is_some() {
            return Err(self.error_at(pos, ParseErrorKind::RedefinedValue(name.to_string())));
        }
        Ok(())
    }

    fn check_new(&self, name: &str, pos: Pos) -> Result<(), ParseError> {
        if self.values.contains_key(name) {
            return Err(self.error_at(pos, ParseErrorKind::RedefinedValue(name.to_string())));
        }
        Ok(())
    }

    fn node_name(&mut self) -> Option<String> {
        match self.peek().clone() {
            Tok::At(n) => {
                self.bump();
                Some(n)
            }
            _ => None,
        }
    }

    fn ty(&mut self) -> Result<TensorType, ParseError> {
        let (d, p) = self.word("an element type")?;
        let dtype: DType = d.parse().map_err(|e: crate::UnknownDType| {
            self.error_at(p, ParseErrorKind::BadType(e.to_string()))
        })?;
        self.expect_punct('[')?;
        let mut dims = Vec::new();
        if !self.eat_punct(']') {
            loop {
                let (w, p) = self.word("a dimension (integer or N)")?;
                let dim = if w == "N" {
                    Dim::Batch
                } else {
                    Dim::Known(w.parse().map_err(|_| {
                        self.error_at(
                            p,
                            ParseErrorKind::BadNumber {
                                text: w.clone(),
                                expected: "a dimension (non-negative integer or N)",
                            },
                        )
                    })?)
                };
                dims.push(dim);
                if self.eat_punct(']') {
                    break;
                }
                self.expect_punct(',')?;
            }
        }
        Ok(TensorType::new(dtype, Shape(dims)))
    }

    fn graph(mut self) -> Result<Graph, ParseError> {
        self.expect_keyword("graph")?;
        let name = match self.bump() {
            (Tok::At(n), _) => n,
            (t, p) => {
                return Err(self.error_at(
                    p,
                    ParseErrorKind::Unexpected {
                        expected: "the graph name `@name`".into(),
                        found: describe(&t),
                    },
                ))
            }
        };
        let mut g = Graph::new(name);
        self.expect_punct('(')?;
        if !self.eat_punct(')') {
            loop {
                let (v, p) = self.value_name()?;
                self.expect_punct(':')?;
                let ty = self.ty()?;
                let node = self.node_name();
                self.check_new(&v, p)?;
                let r = g.add_input(v.clone(), ty);
                if let Some(n) = node {
                    g.node_mut(r.node)
                        .map_err(|e| self.error_at(p, ParseErrorKind::Graph(e)))?
                        .name = n;
                }
                self.define(&v, p, r)?;
                if self.eat_punct(')') {
                    break;
                }
                self.expect_punct(',')?;
            }
        }
        self.expect_punct('{')?;
        loop {
            if let Tok::Word(w) = self.peek() {
                if w == "return" {
                    self.bump();
                    break;
                }
            }
            self.statement(&mut g)?;
        }
        let mut outputs = Vec::new();
        if matches!(self.peek(), Tok::Value(_)) {
            loop {
                outputs.push(self.use_value()?);
                if !self.eat_punct(',') {
                    break;
                }
            }
        }
        g.set_outputs(outputs);
        self.expect_punct('}')?;
        match self.peek() {
            Tok::Eof => Ok(g),
            t => Err(self.error_at(self.pos(), ParseErrorKind::TrailingInput(describe(t)))),
        }
    }

    fn statement(&mut self, g: &mut Graph) -> Result<(), ParseError> {
        let mut results: Vec<(String, Pos)> = Vec::new();
        if self.eat_punct('(') {
            self.expect_punct(')')?;
        } else {
            loop {
                let (v, p) = self.value_name()?;
                if results.iter().any(|(r, _)| *r == v) {
                    return Err(self.error_at(p, ParseErrorKind::RedefinedValue(v)));
                }
                self.check_new(&v, p)?;
                results.push((v, p));
                if !self.eat_punct(',') {
                    break;
                }
            }
        }
        self.expect_punct('=')?;
        let (head, head_pos) = self.word("`const` or an op mnemonic")?;
        if head == "const" {
            let [(name, p)] = &results[..] else {
                return Err(self.error_at(
                    head_pos,
                    ParseErrorKind::Unexpected {
                        expected: "exactly one result for a constant".into(),
                        found: format!("{} results", results.len()),
                    },
                ));
            };
            let tensor = self.constant(name)?;
            let node = self.node_name();
            let r = g.add_constant(name.clone(), tensor);
            if let Some(n) = node {
                g.node_mut(r.node)
                    .map_err(|e| self.error_at(*p, ParseErrorKind::Graph(e)))?
                    .name = n;
            }
            return self.define(name, *p, r);
        }
        // An op.
        self.expect_punct('(')?;
        let mut inputs = Vec::new();
        if !self.eat_punct(')') {
            loop {
                inputs.push(self.use_value()?);
                if self.eat_punct(')') {
                    break;
                }
                self.expect_punct(',')?;
            }
        }
        let mut entries: Vec<(String, AttrValue, Pos)> = Vec::new();
        if self.eat_punct('{') && !self.eat_punct('}') {
            loop {
                let (k, kp) = self.word("an attribute name")?;
                if entries.iter().any(|(e, _, _)| *e == k) {
                    return Err(self.error_at(
                        kp,
                        ParseErrorKind::DuplicateAttribute {
                            op: head.clone(),
                            attr: k,
                        },
                    ));
                }
                self.expect_punct('=')?;
                let v = self.attr_value(0)?;
                entries.push((k, v, kp));
                if self.eat_punct('}') {
                    break;
                }
                self.expect_punct(',')?;
            }
        }
        let node = self.node_name();
        self.expect_punct(':')?;
        let mut types = Vec::new();
        for i in 0..results.len() {
            if i > 0 && !self.eat_punct(',') {
                return Err(self.error_at(
                    self.pos(),
                    ParseErrorKind::ResultCount {
                        op: head.clone(),
                        declared: results.len(),
                        types: i,
                    },
                ));
            }
            types.push(self.ty()?);
        }
        if *self.peek() == Tok::Punct(',') {
            return Err(self.error_at(
                self.pos(),
                ParseErrorKind::ResultCount {
                    op: head.clone(),
                    declared: results.len(),
                    types: results.len() + 1,
                },
            ));
        }
        let mut attrs = Attrs::new(&head, head_pos, entries);
        let op: Op = match Op::from_text(&head, &mut attrs) {
            Some(r) => r?,
            None => return Err(self.error_at(head_pos, ParseErrorKind::UnknownOp(head))),
        };
        attrs.finish()?;
        let node_name =
            node.unwrap_or_else(|| results.first().map(|(n, _)| n.clone()).unwrap_or_default());
        let outputs: Vec<Value> = results
            .iter()
            .zip(types)
            .map(|((name, _), ty)| Value {
                name: name.clone(),
                ty,
            })
            .collect();
        let id = g
            .add_op(node_name, op, &inputs, outputs)
            .map_err(|e| self.error_at(head_pos, ParseErrorKind::Graph(e)))?;
        for (i, (name, p)) in results.iter().enumerate() {
            self.define(
                name,
                *p,
                ValueRef {
                    node: id,
                    output: i,
                },
            )?;
        }
        Ok(())
    }

    fn attr_value(&mut self, depth: usize) -> Result<AttrValue, ParseError> {
        if depth > MAX_DEPTH {
            return Err(self.error_at(self.pos(), ParseErrorKind::TooDeep(MAX_DEPTH)));
        }
        if self.eat_punct('[') {
            let mut items = Vec::new();
            if !self.eat_punct(']') {
                loop {
                    items.push(self.attr_value(depth + 1)?);
                    if self.eat_punct(']') {
                        break;
                    }
                    self.expect_punct(',')?;
                }
            }
            return Ok(AttrValue::List(items));
        }
        let (w, _) = self.word("an attribute value")?;
        Ok(match w.as_str() {
            "true" => AttrValue::Bool(true),
            "false" => AttrValue::Bool(false),
            "nan" | "inf" => AttrValue::Number(w),
            _ if w.starts_with(|c: char| c.is_ascii_digit() || matches!(c, '-' | '+' | '.')) => {
                AttrValue::Number(w)
            }
            _ => AttrValue::Ident(w),
        })
    }

    /// `type payload` of a constant; the element count is checked before any allocation.
    fn constant(&mut self, name: &str) -> Result<Tensor, ParseError> {
        let ty_pos = self.pos();
        let ty = self.ty()?;
        let bad = |reason: String| ParseErrorKind::BadConstant {
            name: name.to_string(),
            reason,
        };
        let Some(dims) = ty.shape.as_known() else {
            return Err(self.error_at(
                ty_pos,
                bad("a constant cannot have the batch dimension N".into()),
            ));
        };
        let count = dims
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| self.error_at(ty_pos, bad(format!("shape {:?} is too large", dims))))?;
        let data_pos = self.pos();
        let data = match self.peek().clone() {
            Tok::Punct('<') => {
                self.bump();
                let (w, _) = self.word("`elided`")?;
                if w != "elided" {
                    return Err(self.error_at(data_pos, bad(format!("unknown payload `<{w}>`"))));
                }
                self.expect_punct('>')?;
                return Err(
                    self.error_at(data_pos, ParseErrorKind::ElidedConstant(name.to_string()))
                );
            }
            Tok::Word(w) if w == "extern" => {
                self.bump();
                let Some(resolver) = self.resolver.as_mut() else {
                    return Err(
                        self.error_at(data_pos, ParseErrorKind::ExternConstant(name.to_string()))
                    );
                };
                let Some(tensor) = resolver(name, &ty) else {
                    return Err(
                        self.error_at(data_pos, ParseErrorKind::MissingExtern(name.to_string()))
                    );
                };
                let supplied = tensor.ty();
                if supplied != ty && !(self.allow_prefix && is_leading_prefix(&ty, &supplied)) {
                    return Err(self.error_at(
                        data_pos,
                        ParseErrorKind::ExternType {
                            name: name.to_string(),
                            declared: ty,
                            supplied,
                        },
                    ));
                }
                return Ok(tensor);
            }
            Tok::Word(w) if w == "hex" => {
                self.bump();
                let (hex, hp) = match self.bump() {
                    (Tok::Str(s), p) => (s, p),
                    (t, p) => {
                        return Err(self.error_at(
                            p,
                            ParseErrorKind::Unexpected {
                                expected: "a hex string".into(),
                                found: describe(&t),
                            },
                        ))
                    }
                };
                let need = count.checked_mul(ty.dtype.size_bytes() * 2);
                if need != Some(hex.len()) {
                    return Err(self.error_at(
                        hp,
                        bad(format!(
                            "{} hex digits for {count} {} elements, expected {}",
                            hex.len(),
                            ty.dtype,
                            need.map(|n| n.to_string())
                                .unwrap_or_else(|| "too many".into())
                        )),
                    ));
                }
                let bytes = decode_hex(&hex).ok_or_else(|| {
                    self.error_at(
                        hp,
                        bad("hex data contains a non-hex-digit character".into()),
                    )
                })?;
                TensorData::from_le_bytes(ty.dtype, &bytes)
                    .ok_or_else(|| self.error_at(hp, bad("hex data length".into())))?
            }
            Tok::Punct('[') => {
                self.bump();
                let mut words = Vec::new();
                if !self.eat_punct(']') {
                    loop {
                        words.push(self.word("a literal element")?);
                        if self.eat_punct(']') {
                            break;
                        }
                        self.expect_punct(',')?;
                    }
                }
                if words.len() != count {
                    return Err(self.error_at(
                        data_pos,
                        bad(format!(
                            "{} elements given for shape {:?} ({count})",
                            words.len(),
                            dims
                        )),
                    ));
                }
                self.literals(ty.dtype, &words)?
            }
            _ => {
                return Err(
                    self.unexpected("constant data: `[…]`, `hex\"…\"`, `extern` or `<elided>`")
                )
            }
        };
        Tensor::new(dims, data).map_err(|e| self.error_at(data_pos, bad(e.to_string())))
    }

    fn literals(&self, dtype: DType, words: &[(String, Pos)]) -> Result<TensorData, ParseError> {
        fn all<T>(
            p: &Parser,
            words: &[(String, Pos)],
            expected: &'static str,
            f: impl Fn(&str) -> Option<T>,
        ) -> Result<Vec<T>, ParseError> {
            words
                .iter()
                .map(|(w, pos)| {
                    f(w).ok_or_else(|| {
                        p.error_at(
                            *pos,
                            ParseErrorKind::BadNumber {
                                text: w.clone(),
                                expected,
                            },
                        )
                    })
                })
                .collect()
        }
        Ok(match dtype {
            DType::F32 => TensorData::F32(all(self, words, "an f32", parse_f32)?),
            DType::F64 => TensorData::F64(all(self, words, "an f64", parse_f64)?),
            DType::I8 => TensorData::I8(all(self, words, "an i8", |s| s.parse().ok())?),
            DType::U8 => TensorData::U8(all(self, words, "a u8", |s| s.parse().ok())?),
            DType::I32 => TensorData::I32(all(self, words, "an i32", |s| s.parse().ok())?),
            DType::I64 => TensorData::I64(all(self, words, "an i64", |s| s.parse().ok())?),
            DType::Bool => TensorData::Bool(all(self, words, "true or false", |s| match s {
                "true" => Some(true),
                "false" => Some(false),
                _ => None,
            })?),
        })
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    if b.len() % 2 != 0 {
        return None;
    }
    b.chunks_exact(2)
        .map(|pair| {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            Some((hi * 16 + lo) as u8)
        })
        .collect()
}
