//! Pipeline strings: `"fold-batchnorm,calibrate{method=percentile},vl-quantize{bits=8}"`.
//!
//! A pipeline is a comma-separated list of pass names, each optionally followed by options in
//! braces (`key=value` pairs separated by commas). Values may be bare words or quoted strings,
//! so list-valued options such as `planes="2,4,8"` (or `planes=[2,4,8]`) survive the outer split.

use std::collections::BTreeMap;
use std::str::FromStr;

/// A parse error in a pipeline string, with the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PipelineError {
    #[error("pipeline is empty")]
    Empty,
    #[error("at byte {offset}: expected {expected}, found {found}")]
    Syntax {
        offset: usize,
        expected: &'static str,
        found: String,
    },
    #[error("unknown pass `{name}` (known passes: {known})")]
    UnknownPass { name: String, known: String },
    #[error("pass `{pass}`: unknown option `{option}` (accepted: {accepted})")]
    UnknownOption {
        pass: String,
        option: String,
        accepted: String,
    },
    #[error("pass `{pass}`: option `{option}` has invalid value `{value}`: {reason}")]
    InvalidOption {
        pass: String,
        option: String,
        value: String,
        reason: String,
    },
    #[error("pass `{pass}`: option `{option}` given twice")]
    DuplicateOption { pass: String, option: String },
}

/// One pass invocation in a pipeline: its name and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassSpec {
    pub name: String,
    pub options: PassOptions,
}

/// The options of one pass invocation; passes read them through typed getters and must call
/// [`PassOptions::finish`] so that a misspelt option is an error rather than silently ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PassOptions {
    pass: String,
    values: BTreeMap<String, String>,
    taken: std::cell::RefCell<Vec<String>>,
}

impl PassOptions {
    /// Options for `pass` from explicit pairs (used by code that builds pipelines directly).
    pub fn new(pass: &str, pairs: &[(&str, &str)]) -> PassOptions {
        PassOptions {
            pass: pass.to_string(),
            values: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            taken: Default::default(),
        }
    }

    /// The raw value of an option, if given.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.taken.borrow_mut().push(key.to_string());
        self.values.get(key).map(String::as_str)
    }

    /// A typed option with a default.
    pub fn get<T: FromStr>(&self, key: &str, default: T) -> Result<T, PipelineError>
    where
        T::Err: std::fmt::Display,
    {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|e: T::Err| PipelineError::InvalidOption {
                pass: self.pass.clone(),
                option: key.to_string(),
                value: v.to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// An error for an option value that parsed but is out of range.
    pub fn invalid(&self, key: &str, reason: impl Into<String>) -> PipelineError {
        PipelineError::InvalidOption {
            pass: self.pass.clone(),
            option: key.to_string(),
            value: self.values.get(key).cloned().unwrap_or_default(),
            reason: reason.into(),
        }
    }

    /// Fails on any option the pass did not read.
    pub fn finish(&self) -> Result<(), PipelineError> {
        let taken = self.taken.borrow();
        match self.values.keys().find(|k| !taken.contains(k)) {
            None => Ok(()),
            Some(k) => Err(PipelineError::UnknownOption {
                pass: self.pass.clone(),
                option: k.clone(),
                accepted: if taken.is_empty() {
                    "none".to_string()
                } else {
                    taken.join(", ")
                },
            }),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Sets (or replaces) an option: how code derives one pipeline from another (e.g. the
    /// dedicated per-k QAT baseline from a recorded compile pipeline).
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        self.values.insert(key.to_string(), value.into());
    }

    /// Removes an option if it is given.
    pub fn remove(&mut self, key: &str) {
        self.values.remove(key);
    }

    /// `{key=value, …}` as printed in pipeline strings (empty string when there are none).
    pub fn render(&self) -> String {
        if self.values.is_empty() {
            return String::new();
        }
        let body: Vec<String> = self
            .values
            .iter()
            .map(|(k, v)| {
                if v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c))
                    && !v.is_empty()
                {
                    format!("{k}={v}")
                } else {
                    format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
                }
            })
            .collect();
        format!("{{{}}}", body.join(","))
    }
}

impl PassSpec {
    /// `name{key=value, …}`, as in pipeline strings: [`parse_pipeline`] reads it back.
    pub fn render(&self) -> String {
        format!("{}{}", self.name, self.options.render())
    }
}

/// The pipeline string of `specs`, which [`parse_pipeline`] reads back to the same specs.
pub fn render_pipeline(specs: &[PassSpec]) -> String {
    let parts: Vec<String> = specs.iter().map(PassSpec::render).collect();
    parts.join(",")
}

/// Parses a pipeline string into pass invocations (names are not checked here).
pub fn parse_pipeline(text: &str) -> Result<Vec<PassSpec>, PipelineError> {
    let mut p = Cursor { s: text, pos: 0 };
    let mut specs = Vec::new();
    p.skip_ws();
    if p.at_end() {
        return Err(PipelineError::Empty);
    }
    loop {
        p.skip_ws();
        let name = p.ident("a pass name")?;
        p.skip_ws();
        let mut options = PassOptions {
            pass: name.clone(),
            ..PassOptions::default()
        };
        if p.eat('{') {
            p.skip_ws();
            if !p.eat('}') {
                loop {
                    p.skip_ws();
                    let key = p.ident("an option name")?;
                    p.skip_ws();
                    p.expect('=', "`=`")?;
                    p.skip_ws();
                    let value = p.value()?;
                    if options.values.insert(key.clone(), value).is_some() {
                        return Err(PipelineError::DuplicateOption {
                            pass: name,
                            option: key,
                        });
                    }
                    p.skip_ws();
                    if p.eat(',') {
                        continue;
                    }
                    p.expect('}', "`,` or `}`")?;
                    break;
                }
            }
        }
        specs.push(PassSpec { name, options });
        p.skip_ws();
        if p.at_end() {
            return Ok(specs);
        }
        p.expect(',', "`,` between passes")?;
    }
}

struct Cursor<'a> {
    s: &'a str,
    pos: usize,
}

impl Cursor<'_> {
    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }
    fn peek(&self) -> Option<char> {
        self.s[self.pos..].chars().next()
    }
    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if !c.is_whitespace() {
                break;
            }
            self.pos += c.len_utf8();
        }
    }
    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }
    fn found(&self) -> String {
        match self.peek() {
            None => "end of input".to_string(),
            Some(c) => format!("`{c}`"),
        }
    }
    fn expect(&mut self, c: char, what: &'static str) -> Result<(), PipelineError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(PipelineError::Syntax {
                offset: self.pos,
                expected: what,
                found: self.found(),
            })
        }
    }
    fn ident(&mut self, what: &'static str) -> Result<String, PipelineError> {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                self.pos += 1;
            } else {
                break;
            }
        }
        if self.pos == start {
            return Err(PipelineError::Syntax {
                offset: self.pos,
                expected: what,
                found: self.found(),
            });
        }
        Ok(self.s[start..self.pos].to_string())
    }
    fn value(&mut self) -> Result<String, PipelineError> {
        if self.eat('"') {
            let mut out = String::new();
            loop {
                match self.peek() {
                    None => {
                        return Err(PipelineError::Syntax {
                            offset: self.pos,
                            expected: "closing `\"`",
                            found: "end of input".to_string(),
                        })
                    }
                    Some('"') => {
                        self.pos += 1;
                        return Ok(out);
                    }
                    Some('\\') => {
                        self.pos += 1;
                        match self.peek() {
                            Some(c) => {
                                out.push(c);
                                self.pos += c.len_utf8();
                            }
                            None => continue,
                        }
                    }
                    Some(c) => {
                        out.push(c);
                        self.pos += c.len_utf8();
                    }
                }
            }
        }
        if self.eat('[') {
            let start = self.pos;
            while let Some(c) = self.peek() {
                if c == ']' {
                    let v = self.s[start..self.pos].trim().to_string();
                    self.pos += 1;
                    return Ok(v);
                }
                self.pos += c.len_utf8();
            }
            return Err(PipelineError::Syntax {
                offset: self.pos,
                expected: "closing `]`",
                found: "end of input".to_string(),
            });
        }
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c == ',' || c == '}' || c.is_whitespace() {
                break;
            }
            self.pos += c.len_utf8();
        }
        if self.pos == start {
            return Err(PipelineError::Syntax {
                offset: self.pos,
                expected: "an option value",
                found: self.found(),
            });
        }
        Ok(self.s[start..self.pos].to_string())
    }
}

/// Test helper: asserts that `create` (a pass constructor) rejects each `(option, value)`
/// on its own as an invalid option.
#[cfg(test)]
pub(crate) fn assert_invalid_options(
    pass: &str,
    create: fn(&PassOptions) -> Result<Box<dyn crate::Pass>, PipelineError>,
    bad: &[(&str, &str)],
) {
    for &(k, v) in bad {
        let got = create(&PassOptions::new(pass, &[(k, v)]));
        let invalid = matches!(got, Err(PipelineError::InvalidOption { .. }));
        assert!(invalid, "{pass}: {k}={v} was not rejected as invalid");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_options() {
        let specs = parse_pipeline(
            " fold-batchnorm , calibrate{method=percentile, p=99.9},vl{planes=\"2,4\",b=[1, 2]}",
        )
        .unwrap();
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[0].name, "fold-batchnorm");
        assert!(specs[0].options.is_empty());
        assert_eq!(specs[1].options.raw("method"), Some("percentile"));
        assert_eq!(specs[1].options.get::<f64>("p", 0.0).unwrap(), 99.9);
        assert_eq!(specs[2].options.raw("planes"), Some("2,4"));
        assert_eq!(specs[2].options.raw("b"), Some("1, 2"));
    }

    #[test]
    fn syntax_errors_carry_offsets() {
        assert_eq!(parse_pipeline("  "), Err(PipelineError::Empty));
        match parse_pipeline("a,,b") {
            Err(PipelineError::Syntax { offset: 2, .. }) => {}
            other => panic!("{other:?}"),
        }
        match parse_pipeline("a{x}") {
            Err(PipelineError::Syntax {
                offset: 3,
                expected: "`=`",
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        match parse_pipeline("a{x=1") {
            Err(PipelineError::Syntax { offset: 5, .. }) => {}
            other => panic!("{other:?}"),
        }
        match parse_pipeline("a{x=\"1") {
            Err(PipelineError::Syntax {
                expected: "closing `\"`",
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_pipeline("a{x=1,x=2}"),
            Err(PipelineError::DuplicateOption { .. })
        ));
        assert!(matches!(
            parse_pipeline("a b"),
            Err(PipelineError::Syntax { offset: 2, .. })
        ));
    }

    #[test]
    fn unread_options_are_rejected() {
        let specs = parse_pipeline("p{used=1,typo=2}").unwrap();
        let o = &specs[0].options;
        assert_eq!(o.get::<u32>("used", 0).unwrap(), 1);
        match o.finish() {
            Err(PipelineError::UnknownOption {
                option, accepted, ..
            }) => {
                assert_eq!(option, "typo");
                assert_eq!(accepted, "used");
            }
            other => panic!("{other:?}"),
        }
        match o.get::<u32>("typo", 0) {
            Err(PipelineError::InvalidOption { .. }) => panic!("2 is a valid u32"),
            Ok(2) => {}
            other => panic!("{other:?}"),
        }
        let bad = parse_pipeline("p{n=abc}").unwrap();
        assert!(matches!(
            bad[0].options.get::<u32>("n", 0),
            Err(PipelineError::InvalidOption { .. })
        ));
    }

    #[test]
    fn render_round_trips() {
        let specs = parse_pipeline("p{a=1,b=\"x, y\"}").unwrap();
        let text = format!("p{}", specs[0].options.render());
        let again = parse_pipeline(&text).unwrap();
        assert_eq!(again[0].options.values, specs[0].options.values);
    }
}
