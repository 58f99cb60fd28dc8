//! `test import [opset=N]`: an ONNX model built from a small script, imported and printed.
//!
//! Script lines (anything else must be a `//` comment or blank):
//!
//! ```text
//! input x: f32[N,3]                      graph input (N: the batch dimension)
//! init w: f32[3] = [0.5, -1, 2]          initializer
//! node Max(x, w) -> y                    node; inputs may be empty (`Clip(x, , hi)`)
//! node LeakyRelu(y) {alpha=0.2} -> z     attributes: ints, floats (with `.`), lists, "strings"
//! output z                               graph output
//! ```
//!
//! Element types are spelled as in the IR (`f32`, `i64`, …). The default opset is 13.

use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::{NodeProto, TensorProto};
use strata_ir::DType;
use strata_test_support::onnx::{node as onnx_node, vi, A, M};

use crate::{ModeResult, TestFile};

pub(crate) fn run(file: &TestFile) -> ModeResult {
    let mut opset = 13;
    for arg in file.args.split_whitespace() {
        opset = arg
            .strip_prefix("opset=")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| (format!("bad import argument `{arg}`"), Some(1)))?;
    }
    let bytes = build(&file.body, opset)?;
    let graph = strata_onnx::import_bytes(&bytes, None, &Default::default())
        .map_err(|e| (e.to_string(), None))?;
    Ok(strata_ir::text::print(&graph))
}

/// Builds the serialized model from the script.
pub fn build(script: &str, opset: i64) -> Result<Vec<u8>, (String, Option<usize>)> {
    let mut model = M::new(opset);
    for (i, line) in script.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default().trim();
        if code.is_empty() {
            continue;
        }
        let at = |e: String| (format!("line {}: {e}", i + 1), Some(i + 1));
        let (word, rest) = code.split_once(' ').unwrap_or((code, ""));
        model = match word {
            "input" => {
                let (name, dtype, dims) = typed(rest).map_err(at)?;
                model.input(vi(&name, dtype, &dims))
            }
            "init" => model.init(initializer(rest).map_err(at)?),
            "node" => model.node(node(rest).map_err(at)?),
            "output" => model.output(rest.trim()),
            other => return Err(at(format!("unknown script word `{other}`"))),
        };
    }
    Ok(model.bytes())
}

/// `name: dtype[dims]` → the name, ONNX element type and dims (`-1` for `N`).
fn typed(s: &str) -> Result<(String, DataType, Vec<i64>), String> {
    let (name, ty) = s.split_once(':').ok_or("expected `name: type`")?;
    let (dtype, dims) = ty.trim().split_once('[').ok_or("expected `dtype[dims]`")?;
    let dtype: DType = dtype.parse().map_err(|e| format!("{e}"))?;
    let dims = dims.strip_suffix(']').ok_or("expected `]`")?;
    let dims = dims
        .split(',')
        .filter(|d| !d.trim().is_empty())
        .map(|d| match d.trim() {
            "N" => Ok(-1),
            n => n
                .parse::<i64>()
                .map_err(|e| format!("dimension `{n}`: {e}")),
        })
        .collect::<Result<_, _>>()?;
    let onnx = match dtype {
        DType::F32 => DataType::FLOAT,
        DType::F64 => DataType::DOUBLE,
        DType::I8 => DataType::INT8,
        DType::U8 => DataType::UINT8,
        DType::I32 => DataType::INT32,
        DType::I64 => DataType::INT64,
        DType::Bool => DataType::BOOL,
    };
    Ok((name.trim().to_string(), onnx, dims))
}

fn initializer(s: &str) -> Result<TensorProto, String> {
    let (decl, values) = s
        .split_once('=')
        .ok_or("expected `name: type = [values]`")?;
    let (name, dtype, dims) = typed(decl)?;
    let values = numbers(values.trim())?;
    let mut t = TensorProto {
        name,
        dims,
        data_type: dtype as i32,
        ..Default::default()
    };
    match dtype {
        DataType::FLOAT => t.float_data = values.iter().map(|&v| v as f32).collect(),
        DataType::DOUBLE => t.double_data = values,
        DataType::INT64 => t.int64_data = values.iter().map(|&v| v as i64).collect(),
        _ => t.int32_data = values.iter().map(|&v| v as i32).collect(),
    }
    Ok(t)
}

fn numbers(s: &str) -> Result<Vec<f64>, String> {
    let inner = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| format!("expected `[values]`, got `{s}`"))?;
    inner
        .split(',')
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.trim().parse::<f64>().map_err(|e| format!("`{v}`: {e}")))
        .collect()
}

/// `Op(a, b) {k=v, …} -> y, z`
fn node(s: &str) -> Result<NodeProto, String> {
    let (call, outs) = s
        .split_once("->")
        .ok_or("expected `Op(inputs) -> outputs`")?;
    let (op, rest) = call.split_once('(').ok_or("expected `Op(`")?;
    let (ins, attrs) = rest.split_once(')').ok_or("expected `)`")?;
    let list = |s: &str| -> Vec<String> {
        if s.trim().is_empty() {
            return vec![];
        }
        s.split(',').map(|x| x.trim().to_string()).collect()
    };
    let (ins, outs) = (list(ins), list(outs));
    let attrs = attrs.trim();
    let attrs = if attrs.is_empty() {
        vec![]
    } else {
        let inner = attrs
            .strip_prefix('{')
            .and_then(|a| a.strip_suffix('}'))
            .ok_or("attributes are `{name=value, …}`")?;
        split_top(inner)
            .into_iter()
            .map(attribute)
            .collect::<Result<_, _>>()?
    };
    let name = outs.first().cloned().unwrap_or_default();
    let ins: Vec<&str> = ins.iter().map(String::as_str).collect();
    let outs: Vec<&str> = outs.iter().map(String::as_str).collect();
    Ok(onnx_node(op.trim(), &name, &ins, &outs, attrs))
}

/// Splits on commas outside brackets and quotes.
fn split_top(s: &str) -> Vec<&str> {
    let (mut depth, mut quoted, mut start, mut out) = (0i32, false, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '[' if !quoted => depth += 1,
            ']' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !s[start..].trim().is_empty() {
        out.push(&s[start..]);
    }
    out
}

fn attribute(s: &str) -> Result<(&str, A), String> {
    let (name, value) = s.split_once('=').ok_or("expected `name=value`")?;
    let value = value.trim();
    let is_float = |v: &str| v.contains(['.', 'e']) || v.contains("inf");
    let attr = if let Some(text) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        A::S(text.to_string())
    } else if value.starts_with('[') {
        let items: Vec<&str> = value[1..value.len().saturating_sub(1)]
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .collect();
        if items.iter().any(|v| is_float(v)) {
            A::Fs(numbers(value)?.into_iter().map(|v| v as f32).collect())
        } else {
            A::Is(
                items
                    .iter()
                    .map(|v| v.parse::<i64>().map_err(|e| format!("`{v}`: {e}")))
                    .collect::<Result<_, _>>()?,
            )
        }
    } else if is_float(value) {
        A::F(value.parse().map_err(|e| format!("`{value}`: {e}"))?)
    } else {
        A::I(value.parse().map_err(|e| format!("`{value}`: {e}"))?)
    };
    Ok((name.trim(), attr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use onnx_protobuf::{Message, ModelProto};

    #[test]
    fn script_builds_the_model() {
        let bytes = build(
            "input x: f32[N,3]\ninit w: f32[3] = [1, 2, 3]\n\
             node Conv(x, w, ) {kernel_shape=[3, 3], auto_pad=\"SAME_UPPER\", alpha=0.5} -> y\n\
             output y\n",
            11,
        )
        .unwrap();
        let m = ModelProto::parse_from_bytes(&bytes).unwrap();
        assert_eq!(m.opset_import[0].version, 11);
        let g = &m.graph;
        assert_eq!(g.input[0].name, "x");
        assert_eq!(g.initializer[0].float_data, [1.0, 2.0, 3.0]);
        let n = &g.node[0];
        assert_eq!(n.input, ["x", "w", ""]);
        assert_eq!(n.attribute[0].ints, [3, 3]);
        assert_eq!(n.attribute[1].s, b"SAME_UPPER");
        assert_eq!(n.attribute[2].f, 0.5);
        assert_eq!(g.output[0].name, "y");
        assert_eq!(
            build("frobnicate x", 13).unwrap_err(),
            (
                "line 1: unknown script word `frobnicate`".to_string(),
                Some(1)
            )
        );
    }
}
