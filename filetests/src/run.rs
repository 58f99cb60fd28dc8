//! `test run`: the graph's outputs on the reference runtime.
//!
//! One `// input:` line per graph input, in order: a literal list (`[1, 2.5, -3]`, its
//! length fixing the batch size) or `seed=S batch=B` (seeded values in [-1, 1)).

use std::fmt::Write;

use strata_ir::{DType, Tensor, TensorData};

use crate::{parse_ir, ModeResult, TestFile};

pub(crate) fn run(file: &TestFile) -> ModeResult {
    let graph = parse_ir(file)?;
    strata_ir::verify(&graph).map_err(|e| (e.to_string(), None))?;
    let specs = file.options("input");
    if specs.len() != graph.inputs().len() {
        return Err((
            format!(
                "{} `// input:` lines for {} graph inputs",
                specs.len(),
                graph.inputs().len()
            ),
            None,
        ));
    }
    let mut inputs = Vec::new();
    for (i, (&id, spec)) in graph.inputs().iter().zip(specs).enumerate() {
        let ty = &graph.node(id).map_err(|e| (e.to_string(), None))?.outputs[0].ty;
        inputs.push(input(spec, ty).map_err(|e| (format!("input {i}: {e}"), None))?);
    }
    let outputs = strata_runtime::run(&graph, &inputs).map_err(|e| (e.to_string(), None))?;
    let mut out = String::new();
    for (&v, t) in graph.outputs().iter().zip(&outputs) {
        let name = &graph.value(v).map_err(|e| (e.to_string(), None))?.name;
        let _ = writeln!(out, "%{name} = {}", show(t));
    }
    Ok(out)
}

fn input(spec: &str, ty: &strata_ir::TensorType) -> Result<Tensor, String> {
    let per_sample = ty.shape.known_product();
    if let Some(list) = spec.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        let vals: Vec<f64> = list
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse::<f64>().map_err(|e| format!("`{s}`: {e}")))
            .collect::<Result<_, _>>()?;
        let batch = if ty.shape.has_batch() {
            vals.len() / per_sample.max(1)
        } else {
            1
        };
        let shape = ty.shape.resolve(batch);
        if shape.iter().product::<usize>() != vals.len() {
            return Err(format!("{} values do not fill {ty}", vals.len()));
        }
        let data = match ty.dtype {
            DType::F32 => TensorData::F32(vals.iter().map(|&v| v as f32).collect()),
            DType::F64 => TensorData::F64(vals),
            DType::I8 => TensorData::I8(vals.iter().map(|&v| v as i8).collect()),
            DType::U8 => TensorData::U8(vals.iter().map(|&v| v as u8).collect()),
            DType::I32 => TensorData::I32(vals.iter().map(|&v| v as i32).collect()),
            DType::I64 => TensorData::I64(vals.iter().map(|&v| v as i64).collect()),
            DType::Bool => TensorData::Bool(vals.iter().map(|&v| v != 0.0).collect()),
        };
        return Tensor::new(shape, data).map_err(|e| e.to_string());
    }
    let (mut seed, mut batch) = (None, 1);
    for part in spec.split_whitespace() {
        match part.split_once('=') {
            Some(("seed", v)) => seed = v.parse::<u64>().ok(),
            Some(("batch", v)) => batch = v.parse::<usize>().map_err(|e| e.to_string())?,
            _ => return Err(format!("bad input setting `{part}`")),
        }
    }
    let seed = seed.ok_or("an input is `[values…]` or `seed=S [batch=B]`")?;
    if ty.dtype != DType::F32 {
        return Err(format!("seeded inputs are f32, this one is {}", ty.dtype));
    }
    Ok(strata_test_support::rand_tensor(
        &ty.shape.resolve(batch),
        seed,
    ))
}

/// `f32[2,3] [v, …]`, floats in their shortest round-trip form.
fn show(t: &Tensor) -> String {
    fn list<T>(v: &[T], f: impl Fn(&T) -> String) -> String {
        v.iter().map(f).collect::<Vec<_>>().join(", ")
    }
    let values = match t.data() {
        TensorData::F32(v) => list(v, |x| format!("{x:?}")),
        TensorData::F64(v) => list(v, |x| format!("{x:?}")),
        TensorData::I8(v) => list(v, i8::to_string),
        TensorData::U8(v) => list(v, u8::to_string),
        TensorData::I32(v) => list(v, i32::to_string),
        TensorData::I64(v) => list(v, i64::to_string),
        TensorData::Bool(v) => list(v, bool::to_string),
    };
    let dims: Vec<String> = t.shape().iter().map(usize::to_string).collect();
    format!("{}[{}] [{values}]", t.dtype(), dims.join(","))
}
