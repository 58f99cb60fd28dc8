//! File-driven tests with modes, after Cranelift's filetests: each `cases/**/*.sir` file
//! starts with a header line `test <mode> [arguments]` that chooses what runs on the input
//! below it, and states the expected result inline, so a test is one readable file:
//!
//! - `test opt <pipeline>`: parse the IR, run the pass pipeline (verifying after every pass),
//!   print the result. `// calibration: seed=S samples=N` feeds passes that measure
//!   activations N seeded samples per graph input.
//! - `test verify`: parse and verify the IR; a `// error: TEXT` marker says it must fail with
//!   an error containing TEXT, and when the marker ends a statement, on that statement.
//! - `test import [opset=N]`: build an ONNX model from the script lines below (`input`,
//!   `init`, `node`, `output`; see [`import`]), import it and print the IR.
//! - `test run`: run the graph on the reference runtime with the `// input:` lines (a literal
//!   list, or `seed=S batch=B`), print every output.
//! - `test emit-c [target=T] [planes=K]`: quantize with the `// pipeline:` and
//!   `// calibration:` lines, emit C and print the header.
//!
//! The expected output follows the input as `// expect:` lines; `STRATA_BLESS=1` rewrites
//! them from the actual output. In every mode, `// error:` markers expect a failure instead.

mod emit_c;
pub mod import;
mod opt;
mod run;
mod verify;

use std::path::Path;

use strata_ir::{DType, Graph, Tensor};

/// One parsed test file.
#[derive(Debug)]
pub struct TestFile {
    /// The mode named by the header.
    pub mode: String,
    /// The rest of the header line.
    pub args: String,
    /// The file with the header line blanked, so parser line numbers are file line numbers.
    pub body: String,
    lines: Vec<String>,
}

/// A `// error:` marker: the text the error must contain and, for a marker that ends a
/// statement, the value names that statement defines.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorMarker {
    pub line: usize,
    pub text: String,
    pub defines: Vec<String>,
}

const EXPECT: &str = "// expect:";
const ERROR: &str = "// error:";

impl TestFile {
    pub fn parse(text: &str) -> Result<TestFile, String> {
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        let header = lines.first().map(String::as_str).unwrap_or_default();
        let rest = header
            .strip_prefix("test ")
            .ok_or("the first line must be `test <mode> [arguments]`")?;
        let (mode, args) = rest.trim().split_once(' ').unwrap_or((rest.trim(), ""));
        let mut body = String::from("\n");
        for l in lines.iter().skip(1) {
            body.push_str(l);
            body.push('\n');
        }
        Ok(TestFile {
            mode: mode.to_string(),
            args: args.trim().to_string(),
            body,
            lines,
        })
    }

    /// The values of every `// key: value` comment line, in order.
    pub fn options(&self, key: &str) -> Vec<&str> {
        let prefix = format!("// {key}:");
        self.lines
            .iter()
            .filter_map(|l| l.trim_start().strip_prefix(&prefix))
            .map(str::trim)
            .collect()
    }

    /// The single value of `// key: value`, if present.
    pub fn option(&self, key: &str) -> Result<Option<&str>, String> {
        match self.options(key).as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            _ => Err(format!("`// {key}:` is given more than once")),
        }
    }

    /// The `// expect:` lines joined, `None` when there are none.
    pub fn expected(&self) -> Option<String> {
        let lines: Vec<&str> = self
            .lines
            .iter()
            .filter_map(|l| l.strip_prefix(EXPECT))
            .map(|l| l.strip_prefix(' ').unwrap_or(l))
            .collect();
        (!lines.is_empty()).then(|| lines.join("\n"))
    }

    /// Every `// error:` marker.
    pub fn error_markers(&self) -> Vec<ErrorMarker> {
        let mut out = Vec::new();
        for (i, l) in self.lines.iter().enumerate() {
            let Some(pos) = l.find(ERROR) else { continue };
            let code = &l[..pos];
            let defines = match code.split_once('=') {
                Some((lhs, _)) if !code.trim().is_empty() => lhs
                    .split([',', '(', ')', ' '])
                    .filter_map(|w| w.strip_prefix('%'))
                    .map(str::to_string)
                    .collect(),
                _ => vec![],
            };
            out.push(ErrorMarker {
                line: i + 1,
                text: l[pos + ERROR.len()..].trim().to_string(),
                defines,
            });
        }
        out
    }

    /// The file with its `// expect:` lines replaced by `actual`, placed after the input.
    pub fn blessed(&self, actual: &str) -> String {
        let mut kept: Vec<&str> = self
            .lines
            .iter()
            .map(String::as_str)
            .filter(|l| !l.starts_with(EXPECT))
            .collect();
        while kept.last().is_some_and(|l| l.trim().is_empty()) {
            kept.pop();
        }
        let mut out = kept.join("\n");
        out.push('\n');
        for l in actual.lines() {
            out.push_str(EXPECT);
            if !l.is_empty() {
                out.push(' ');
                out.push_str(l);
            }
            out.push('\n');
        }
        out
    }
}

/// What a mode produced: its printed output, or an error message and the file line it
/// points at (when the error knows one).
pub type ModeResult = Result<String, (String, Option<usize>)>;

/// Runs one test file; with `bless`, rewrites its expectations instead of comparing them.
pub fn run_file(path: &Path, bless: bool) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read: {e}"))?;
    let file = TestFile::parse(&text)?;
    let result = match file.mode.as_str() {
        "opt" => opt::run(&file),
        "verify" => verify::run(&file),
        "import" => import::run(&file),
        "run" => run::run(&file),
        "emit-c" => emit_c::run(&file),
        other => {
            return Err(format!(
                "unknown mode `{other}` (opt, verify, import, run, emit-c)"
            ))
        }
    };
    let markers = file.error_markers();
    if !markers.is_empty() {
        return check_errors(&markers, result);
    }
    let actual = result.map_err(|(e, _)| format!("failed: {e}"))?;
    if bless {
        if file.expected().as_deref() != Some(actual.trim_end()) {
            std::fs::write(path, file.blessed(actual.trim_end()))
                .map_err(|e| format!("cannot bless: {e}"))?;
        }
        return Ok(());
    }
    match file.expected() {
        None => Err(format!(
            "no `// expect:` lines; STRATA_BLESS=1 records this output:\n{actual}"
        )),
        Some(expected) if expected == actual.trim_end() => Ok(()),
        Some(expected) => Err(format!(
            "output differs from the `// expect:` lines (STRATA_BLESS=1 rewrites them)\n\
             --- expected\n{expected}\n--- actual\n{}",
            actual.trim_end()
        )),
    }
}

/// A run with error markers must fail: with a message containing the marker's text and,
/// when the marker ends a statement, on that statement (its line, or a value it defines).
fn check_errors(markers: &[ErrorMarker], result: ModeResult) -> Result<(), String> {
    let [marker] = markers else {
        return Err("more than one `// error:` marker; the checks stop at the first".into());
    };
    let (message, line) = match result {
        Ok(out) => {
            return Err(format!(
                "expected an error containing {:?} (line {}), but it succeeded:\n{out}",
                marker.text, marker.line
            ))
        }
        Err(e) => e,
    };
    if !message.contains(&marker.text) {
        return Err(format!(
            "line {}: expected an error containing {:?}, got: {message}",
            marker.line, marker.text
        ));
    }
    if marker.defines.is_empty() {
        return Ok(());
    }
    let on_line = line == Some(marker.line);
    let names_value = marker
        .defines
        .iter()
        .any(|v| message.contains(&format!("`{v}`")));
    if on_line || names_value {
        Ok(())
    } else {
        Err(format!(
            "line {}: the error is not about this statement (defines {:?}): {message}",
            marker.line, marker.defines
        ))
    }
}

/// Parses the IR text of a file, mapping a parse error to its message and line.
fn parse_ir(file: &TestFile) -> Result<Graph, (String, Option<usize>)> {
    strata_ir::text::parse(&file.body).map_err(|e| (e.to_string(), Some(e.line)))
}

/// Calibration tensors from `seed=S samples=N`: one `[N, …]` f32 tensor of seeded values in
/// [-1, 1) per graph input (input `i` uses seed `S + i`).
fn calibration(spec: &str, graph: &Graph) -> Result<Vec<Tensor>, String> {
    let (mut seed, mut samples) = (None, None);
    for part in spec.split_whitespace() {
        match part.split_once('=') {
            Some(("seed", v)) => seed = v.parse::<u64>().ok(),
            Some(("samples", v)) => samples = v.parse::<usize>().ok(),
            _ => return Err(format!("bad calibration setting `{part}`")),
        }
    }
    let (Some(seed), Some(samples)) = (seed, samples) else {
        return Err("calibration needs seed=S samples=N".into());
    };
    let mut out = Vec::new();
    for (i, &id) in graph.inputs().iter().enumerate() {
        let ty = &graph.node(id).map_err(|e| e.to_string())?.outputs[0].ty;
        if ty.dtype != DType::F32 {
            return Err(format!("calibration input {i} is {}, not f32", ty.dtype));
        }
        out.push(strata_test_support::rand_tensor(
            &ty.shape.resolve(samples),
            seed + i as u64,
        ));
    }
    Ok(out)
}

/// Runs the `// pipeline:` of a file (with its `// calibration:`) on `graph`.
fn run_pipeline(file: &TestFile, pipeline: &str, graph: &mut Graph) -> Result<(), String> {
    let mut ctx = strata_passes::PassContext::default();
    if let Some(spec) = file.option("calibration")? {
        ctx.calibration = Some(calibration(spec, graph)?);
    }
    let manager = strata_passes::PassManager::parse(pipeline).map_err(|e| e.to_string())?;
    manager
        .run(graph, &mut ctx, |_, _| {})
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_options_expectations_and_bless() {
        let f = TestFile::parse(
            "test opt a,b\n// calibration: seed=1 samples=2\ngraph\n// expect: x\n// expect:\n",
        )
        .unwrap();
        assert_eq!((f.mode.as_str(), f.args.as_str()), ("opt", "a,b"));
        assert_eq!(f.option("calibration").unwrap(), Some("seed=1 samples=2"));
        assert_eq!(f.expected().as_deref(), Some("x\n"));
        assert!(f.body.starts_with("\n// calibration"));
        assert_eq!(
            f.blessed("y\n\nz"),
            "test opt a,b\n// calibration: seed=1 samples=2\ngraph\n// expect: y\n// expect:\n// expect: z\n"
        );
        assert!(TestFile::parse("graph").is_err());
    }

    #[test]
    fn error_markers_know_their_statement() {
        let f = TestFile::parse(
            "test verify\n  %a, %b = split(%x) : f32[1] // error: bad\n// error: whole\n",
        )
        .unwrap();
        let m = f.error_markers();
        assert_eq!(m[0].line, 2);
        assert_eq!(m[0].defines, ["a", "b"]);
        assert_eq!(m[1].text, "whole");
        assert!(m[1].defines.is_empty());
        let err = |msg: &str, line| Err((msg.to_string(), line));
        assert!(check_errors(&m[..1], err("node `a`: bad type", None)).is_ok());
        assert!(check_errors(&m[..1], err("bad here", Some(2))).is_ok());
        assert!(check_errors(&m[..1], err("node `c`: bad", Some(3))).is_err());
        assert!(check_errors(&m[..1], err("other", Some(2))).is_err());
        assert!(check_errors(&m[..1], Ok(String::new())).is_err());
        assert!(check_errors(&m, err("bad", None)).is_err());
    }
}
