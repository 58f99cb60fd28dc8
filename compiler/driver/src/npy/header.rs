//! The `.npy` header: a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }`.
//!
//! Parsed by one forward pass over at most [`MAX_NPY_HEADER_BYTES`] bytes that accepts only
//! what numpy writes for a plain array (string keys; a string, `True`/`False` or a tuple of
//! integers as values) and never backtracks, so no header (nested braces, huge numbers, a
//! megabyte of junk) costs more than a linear scan. The general-purpose parser this replaces
//! backtracked exponentially on nested braces. Errors give the byte offset and quote at most
//! [`strata_ir::limits::MAX_QUOTED_BYTES`] of the header.

use strata_ir::limits::{excerpt, MAX_NPY_HEADER_BYTES};

/// Most dimensions of an array (numpy's own `NPY_MAXDIMS`).
pub const MAX_RANK: usize = 64;

/// What the header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The numpy type string, e.g. `<f4`.
    pub descr: String,
    pub fortran_order: bool,
    pub shape: Vec<u64>,
}

/// Parses a header's text (the bytes after the length field, `len` of them).
pub fn parse(text: &[u8]) -> Result<Header, String> {
    if text.len() > MAX_NPY_HEADER_BYTES {
        return Err(format!(
            "the header is {} bytes, more than the limit of {MAX_NPY_HEADER_BYTES}",
            text.len()
        ));
    }
    let mut p = Cursor { text, at: 0 };
    p.skip_ws();
    p.expect(b'{', "`{` opening the header dict")?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        p.skip_ws();
        if p.eat(b'}') {
            break;
        }
        let key_at = p.at;
        let key = p.string()?;
        p.skip_ws();
        p.expect(b':', "`:` after a key")?;
        p.skip_ws();
        let slot_taken = match key.as_str() {
            "descr" => {
                if p.peek() == Some(b'[') {
                    return Err("structured arrays (a list `descr`) are not supported".into());
                }
                descr.replace(p.string()?).is_some()
            }
            "fortran_order" => fortran.replace(p.boolean()?).is_some(),
            "shape" => shape.replace(p.tuple()?).is_some(),
            other => {
                return Err(format!(
                "header byte {key_at}: unexpected key {:?} (expected descr, fortran_order, shape)",
                excerpt(other)
            ))
            }
        };
        if slot_taken {
            return Err(format!("header byte {key_at}: key `{key}` given twice"));
        }
        p.skip_ws();
        if p.eat(b',') {
            continue;
        }
        p.skip_ws();
        p.expect(b'}', "`,` or `}` after a value")?;
        break;
    }
    // numpy pads with spaces and ends with a newline; nothing else may follow the dict.
    p.skip_ws();
    if p.at != text.len() {
        return Err(p.unexpected("the end of the header after `}`"));
    }
    let missing = |k| format!("the header has no `{k}` key");
    Ok(Header {
        descr: descr.ok_or_else(|| missing("descr"))?,
        fortran_order: fortran.ok_or_else(|| missing("fortran_order"))?,
        shape: shape.ok_or_else(|| missing("shape"))?,
    })
}

/// The header text numpy would write for a C-ordered array (format 1.0 layout, without the
/// padding, which [`super::write_npy`] adds).
pub fn format(descr: &str, shape: &[u64]) -> String {
    let dims = match shape {
        [d] => format!("{d},"),
        _ => shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}")
}

struct Cursor<'a> {
    text: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        if hit {
            self.at += 1;
        }
        hit
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// "header byte N: expected X, found `...`", quoting a short excerpt of what follows.
    fn unexpected(&self, expected: &str) -> String {
        let rest = &self.text[self.at.min(self.text.len())..];
        let found = if rest.is_empty() {
            "the end of the header".to_string()
        } else {
            format!("`{}`", excerpt(&String::from_utf8_lossy(rest)))
        };
        format!(
            "header byte {}: expected {expected}, found {found}",
            self.at
        )
    }

    fn expect(&mut self, c: u8, what: &str) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    /// A Python string literal in single or double quotes, without escapes (numpy writes none
    /// in the keys and type strings it emits).
    fn string(&mut self) -> Result<String, String> {
        let quote = match self.peek() {
            Some(q @ (b'\'' | b'"')) => q,
            _ => return Err(self.unexpected("a quoted string")),
        };
        let start = self.at + 1;
        let len = self.text[start..]
            .iter()
            .position(|&c| c == quote || c == b'\\' || c == b'\n')
            .filter(|&n| self.text[start + n] == quote)
            .ok_or_else(|| self.unexpected("a string closed on the same line, without escapes"))?;
        self.at = start + len + 1;
        String::from_utf8(self.text[start..start + len].to_vec())
            .map_err(|_| format!("header byte {start}: a string is not valid UTF-8"))
    }

    fn boolean(&mut self) -> Result<bool, String> {
        for (word, value) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.text[self.at..].starts_with(word) {
                self.at += word.len();
                return Ok(value);
            }
        }
        Err(self.unexpected("True or False"))
    }

    /// `()`, `(n,)`, `(n, m)`, … of non-negative integers (a Python 2 `L` suffix allowed).
    fn tuple(&mut self) -> Result<Vec<u64>, String> {
        self.expect(b'(', "a shape tuple `(…)`")?;
        let mut dims = Vec::new();
        loop {
            self.skip_ws();
            if self.eat(b')') {
                return Ok(dims);
            }
            if dims.len() == MAX_RANK {
                return Err(format!(
                    "header byte {}: more than {MAX_RANK} dimensions",
                    self.at
                ));
            }
            dims.push(self.integer()?);
            self.skip_ws();
            if !self.eat(b',') {
                self.skip_ws();
                self.expect(b')', "`,` or `)` in the shape")?;
                return Ok(dims);
            }
        }
    }

    fn integer(&mut self) -> Result<u64, String> {
        let start = self.at;
        let mut value: u64 = 0;
        while let Some(c @ b'0'..=b'9') = self.peek() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add((c - b'0') as u64))
                .ok_or_else(|| {
                    format!("header byte {start}: a dimension does not fit in 64 bits")
                })?;
            self.at += 1;
        }
        if self.at == start {
            return Err(self.unexpected("a non-negative integer dimension"));
        }
        self.eat(b'L');
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_numpy_writes() {
        let h = parse(b"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }          \n")
            .unwrap();
        assert_eq!(
            h,
            Header {
                descr: "<f4".into(),
                fortran_order: false,
                shape: vec![2, 3]
            }
        );
        assert_eq!(
            parse(b"{\"shape\": (5,), \"descr\": \"|u1\", \"fortran_order\": True}")
                .unwrap()
                .shape,
            vec![5]
        );
        assert_eq!(
            parse(b"{'descr':'<i8','fortran_order':False,'shape':()}")
                .unwrap()
                .shape,
            Vec::<u64>::new()
        );
        assert_eq!(
            parse(b"{'descr':'<i8','fortran_order':False,'shape':(3L, 4L)}")
                .unwrap()
                .shape,
            vec![3, 4]
        );
    }

    #[test]
    fn format_round_trips() {
        for shape in [vec![], vec![7], vec![2, 3, 4]] {
            let h = parse(format("<f4", &shape).as_bytes()).unwrap();
            assert_eq!(
                (h.descr.as_str(), h.fortran_order, h.shape),
                ("<f4", false, shape)
            );
        }
        assert_eq!(
            format("<f4", &[7]),
            "{'descr': '<f4', 'fortran_order': False, 'shape': (7,), }"
        );
    }

    #[test]
    fn nested_braces_fail_at_once() {
        let text = format!("{}{}", "{".repeat(5000), "}".repeat(5000));
        let start = std::time::Instant::now();
        let e = parse(text.as_bytes()).unwrap_err();
        assert!(start.elapsed().as_millis() < 100);
        assert!(
            e.starts_with("header byte 1: expected a quoted string"),
            "{e}"
        );
        assert!(e.len() < 200, "{e}");
    }

    #[test]
    fn rejects_everything_else_with_a_short_message() {
        let cases: &[(&[u8], &str)] = &[
            (b"", "byte 0: expected `{`"),
            (b"{'descr': '<f4', 'fortran_order': False}", "no `shape`"),
            (b"{'descr': '<f4', 'descr': '<f4'}", "given twice"),
            (b"{'descr': [('a', '<f4')]}", "structured"),
            (b"{'shape': (99999999999999999999999,)}", "64 bits"),
            (b"{'shape': (-1,)}", "non-negative integer"),
            (b"{'shape': (1 2)}", "`,` or `)`"),
            (b"{'fortran_order': Tru}", "True or False"),
            (b"{'descr': '<f4\\n'}", "same line"),
            (b"{'evil': 1}", "unexpected key"),
            (b"{} trailing", "end of the header"),
        ];
        for (text, needle) in cases {
            let e = parse(text).unwrap_err();
            assert!(
                e.contains(needle),
                "{:?}: {e}",
                String::from_utf8_lossy(text)
            );
        }
        let rank65 = format!("{{'shape': ({})}}", "1,".repeat(65));
        assert!(parse(rank65.as_bytes())
            .unwrap_err()
            .contains("more than 64"));
        let big = vec![b' '; MAX_NPY_HEADER_BYTES + 1];
        assert!(parse(&big).unwrap_err().contains("limit"));
    }
}
