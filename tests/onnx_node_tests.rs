//! ONNX backend node-test conformance.
//!
//! Runs every official ONNX node test (from the pinned `onnx==1.22.0` wheel, copied to
//! `.cache/onnx-node-tests` by `scripts/setup-python.sh`) whose model uses only the op set
//! Strata supports, through the real frontend → IR → reference runtime path, and compares
//! the outputs with the expected `output_K.pb` tensors.
//!
//! `tests/onnx_node_exclusions.txt` names every selected test that is known not to pass and
//! why. The test fails when a non-excluded case fails, when an excluded case passes (stale
//! exclusion) or when an exclusion names an unknown or unselected test, so the list can
//! only shrink honestly.
//!
//! Environment:
//! - `STRATA_ONNX_NODE_TESTS`: the node-test directory (default `.cache/onnx-node-tests`).
//! - `STRATA_ONNX_NODE_FILTER`: only run tests whose name contains this string.
//! - `STRATA_ONNX_NODE_REPORT`: write `name<TAB>error` for every non-passing case to this file
//!   (handy for maintaining the exclusion list).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use onnx_protobuf::{Message, ModelProto};
use strata_compiler::onnx::{
    import_file, supported_ops, tensor_from_proto_bytes, ImportOptions, OnnxError,
};
use strata_ir::{Graph, Tensor, TensorData};
use strata_test_support::repo_root;

const RTOL: f64 = 1e-3;
const ATOL: f64 = 1e-5;

fn node_test_dir() -> PathBuf {
    match std::env::var_os("STRATA_ONNX_NODE_TESTS") {
        Some(p) => PathBuf::from(p),
        None => repo_root().join(".cache").join("onnx-node-tests"),
    }
}

/// Reads `tests/onnx_node_exclusions.txt`.
fn load_exclusions() -> BTreeMap<String, String> {
    let path = repo_root().join("tests").join("onnx_node_exclusions.txt");
    let text =
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    parse_exclusions(&text).unwrap_or_else(|e| panic!("{}:{e}", path.display()))
}

/// Parses `name<TAB>reason` lines (`#` comments, blank lines allowed); every exclusion
/// must give a reason and name a test once.
fn parse_exclusions(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (lineno, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let n = lineno + 1;
        let (name, reason) = line
            .split_once('\t')
            .ok_or_else(|| format!("{n}: expected `name<TAB>reason`, got {line:?}"))?;
        let (name, reason) = (name.trim(), reason.trim());
        if name.is_empty() || reason.is_empty() {
            return Err(format!(
                "{n}: exclusion needs both a test name and a reason: {line:?}"
            ));
        }
        if out.insert(name.to_string(), reason.to_string()).is_some() {
            return Err(format!("{n}: {name} is excluded twice"));
        }
    }
    Ok(out)
}

/// Reads the model and tells whether every node is a default-domain op the frontend
/// registers ([`supported_ops`]).
fn is_selected(model_path: &Path) -> Result<bool, String> {
    let bytes = fs::read(model_path).map_err(|e| format!("{}: {e}", model_path.display()))?;
    let model = ModelProto::parse_from_bytes(&bytes)
        .map_err(|e| format!("{}: not a ModelProto: {e}", model_path.display()))?;
    Ok(model.graph.node.iter().all(|n| {
        (n.domain.is_empty() || n.domain == "ai.onnx")
            && supported_ops().any(|op| op.op_type == n.op_type)
    }))
}

/// Graph input names of the ONNX model that are real inputs (not initializers), in order;
/// used to name `.pb` tensors whose proto carries no name.
fn model_input_names(model_path: &Path) -> Result<Vec<String>, String> {
    let bytes = fs::read(model_path).map_err(|e| format!("{}: {e}", model_path.display()))?;
    let model = ModelProto::parse_from_bytes(&bytes)
        .map_err(|e| format!("{}: not a ModelProto: {e}", model_path.display()))?;
    let inits: BTreeSet<&str> = model
        .graph
        .initializer
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    Ok(model
        .graph
        .input
        .iter()
        .map(|i| i.name.clone())
        .filter(|n| !inits.contains(n.as_str()))
        .collect())
}

/// Reads `prefix_0.pb, prefix_1.pb, ...` in numeric order.
fn read_pb_series(dir: &Path, prefix: &str) -> Result<Vec<(String, Tensor)>, String> {
    let mut files: Vec<(usize, PathBuf)> = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("{}: {e}", dir.display()))?.path();
        let Some(stem) = path.file_name().and_then(|f| f.to_str()) else {
            continue;
        };
        let Some(idx) = stem
            .strip_prefix(prefix)
            .and_then(|s| s.strip_prefix('_'))
            .and_then(|s| s.strip_suffix(".pb"))
            .and_then(|s| s.parse::<usize>().ok())
        else {
            continue;
        };
        files.push((idx, path));
    }
    files.sort();
    for (pos, (idx, path)) in files.iter().enumerate() {
        if pos != *idx {
            return Err(format!("{}: {prefix}_{pos}.pb is missing", path.display()));
        }
    }
    files
        .into_iter()
        .map(|(_, path)| {
            let bytes = fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            tensor_from_proto_bytes(&bytes).map_err(|e| format!("reading {}: {e}", path.display()))
        })
        .collect()
}

/// Imports the model, binding graph inputs that the frontend needs as constants (a
/// Reshape's `shape`, a Slice's `starts`, ...) from the test data, until it succeeds.
fn import_with_binding(
    model: &Path,
    inputs: &BTreeMap<String, Tensor>,
) -> Result<(Graph, BTreeSet<String>), String> {
    let mut opts = ImportOptions::default();
    loop {
        match import_file(model, &opts) {
            Ok(g) => return Ok((g, opts.bind.keys().cloned().collect())),
            Err(OnnxError::NonConstantInput {
                node,
                op_type,
                input,
            }) => {
                let input = input.to_string();
                if opts.bind.contains_key(&input) {
                    return Err(format!(
                        "import: node `{node}` ({op_type}) still reports `{input}` as non-constant after binding it"
                    ));
                }
                if let Some(t) = inputs.get(&input) {
                    opts.bind.insert(input, t.clone());
                    continue;
                }
                // Computed from graph inputs (e.g. a target shape clamped with Max): bind
                // every integer graph input, the ones that can decide shapes, once.
                let unbound: Vec<(&String, &Tensor)> = inputs
                    .iter()
                    .filter(|(n, t)| t.dtype().is_integer() && !opts.bind.contains_key(*n))
                    .collect();
                if unbound.is_empty() {
                    return Err(format!(
                        "import: node `{node}` ({op_type}) needs `{input}` constant, and it is not a graph input of the test"
                    ));
                }
                for (n, t) in unbound {
                    opts.bind.insert(n.clone(), t.clone());
                }
            }
            Err(e) => return Err(format!("import: {e}")),
        }
    }
}

/// One node test: import, verify, text round-trip, run and compare every test data set.
/// Returns how many graph inputs had to be bound as constants.
fn run_case(dir: &Path) -> Result<usize, String> {
    let model = dir.join("model.onnx");
    let names = model_input_names(&model)?;
    let mut data_sets: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|f| f.to_str())
                    .is_some_and(|f| f.starts_with("test_data_set_"))
        })
        .collect();
    data_sets.sort();
    if data_sets.is_empty() {
        return Err("no test_data_set_* directory".into());
    }

    let mut bound_count = 0;
    for set in &data_sets {
        let raw_inputs = read_pb_series(set, "input")?;
        let expected = read_pb_series(set, "output")?;
        let mut inputs = BTreeMap::new();
        for (k, (name, t)) in raw_inputs.into_iter().enumerate() {
            let name = if name.is_empty() {
                names.get(k).cloned().ok_or_else(|| {
                    format!("input_{k}.pb has no name and the model has no input {k}")
                })?
            } else {
                name
            };
            inputs.insert(name, t);
        }

        let (g, bound) = import_with_binding(&model, &inputs)?;
        bound_count = bound_count.max(bound.len());
        strata_ir::verify(&g).map_err(|e| format!("verify: {e}"))?;
        let text = strata_ir::text::print(&g);
        let reparsed = strata_ir::text::parse(&text)
            .map_err(|e| format!("text round-trip: parse(print(g)) failed: {e}\n{text}"))?;
        if reparsed != g {
            return Err(format!(
                "text round-trip: parse(print(g)) != g\n--- printed ---\n{text}\n--- reprinted ---\n{}",
                strata_ir::text::print(&reparsed)
            ));
        }

        let mut args = Vec::new();
        for &id in g.inputs() {
            let name = &g
                .node(id)
                .map_err(|e| format!("graph input {id:?}: {e}"))?
                .name;
            if bound.contains(name) {
                return Err(format!(
                    "input `{name}` was bound but is still a graph input"
                ));
            }
            let t = inputs
                .get(name)
                .ok_or_else(|| format!("graph input `{name}` has no input_K.pb"))?;
            args.push(t.clone());
        }
        let got = strata_runtime::run(&g, &args).map_err(|e| format!("run: {e}"))?;
        if got.len() != expected.len() {
            return Err(format!(
                "{} outputs, expected {}",
                got.len(),
                expected.len()
            ));
        }
        for (k, (g_t, (name, e_t))) in got.iter().zip(&expected).enumerate() {
            compare(g_t, e_t).map_err(|e| format!("output {k} `{name}`: {e}"))?;
        }
    }
    Ok(bound_count)
}

/// Elementwise comparison: floats within `ATOL + RTOL·|expected|` (NaN equals NaN),
/// integers and bools exactly, shapes and element types equal.
fn compare(got: &Tensor, want: &Tensor) -> Result<(), String> {
    if got.shape() != want.shape() {
        return Err(format!(
            "shape {:?}, expected {:?}",
            got.shape(),
            want.shape()
        ));
    }
    if got.dtype() != want.dtype() {
        return Err(format!(
            "element type {}, expected {}",
            got.dtype(),
            want.dtype()
        ));
    }
    let close = |a: f64, b: f64| {
        (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= ATOL + RTOL * b.abs()
    };
    let mismatch = match (got.data(), want.data()) {
        (TensorData::F32(a), TensorData::F32(b)) => a
            .iter()
            .zip(b)
            .position(|(&x, &y)| !close(x as f64, y as f64)),
        (TensorData::F64(a), TensorData::F64(b)) => {
            a.iter().zip(b).position(|(&x, &y)| !close(x, y))
        }
        (a, b) => {
            let (a, b) = (a.to_le_bytes(), b.to_le_bytes());
            let size = got.dtype().size_bytes();
            a.chunks(size).zip(b.chunks(size)).position(|(x, y)| x != y)
        }
    };
    match mismatch {
        None => Ok(()),
        Some(i) => {
            let (a, b) = (got.to_f64_vec(), want.to_f64_vec());
            let bad = a
                .iter()
                .zip(&b)
                .filter(|(&x, &y)| !close(x, y) || (got.dtype().is_integer() && x != y))
                .count();
            Err(format!(
                "element {i}: got {}, expected {} ({bad} of {} elements differ)",
                a[i],
                b[i],
                a.len()
            ))
        }
    }
}

/// Keeps failure listings readable when an error embeds a whole printed graph.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} more bytes]", &s[..end], s.len() - end)
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".into()
    }
}

#[test]
fn onnx_node_tests() {
    let dir = node_test_dir();
    assert!(
        dir.is_dir(),
        "ONNX node tests not found at {}.\nRun `scripts/test.sh` (or `scripts/setup-python.sh`) \
         to install them, or point STRATA_ONNX_NODE_TESTS at onnx/backend/test/data/node.",
        dir.display()
    );
    let filter = std::env::var("STRATA_ONNX_NODE_FILTER").unwrap_or_default();
    let exclusions = load_exclusions();

    let mut all_tests = BTreeSet::new();
    let mut selected = Vec::new();
    let mut problems = Vec::new();
    let mut entries: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("model.onnx").is_file())
        .collect();
    entries.sort();
    for path in entries {
        let name = path
            .file_name()
            .and_then(|f| f.to_str())
            .unwrap_or_default()
            .to_string();
        all_tests.insert(name.clone());
        match is_selected(&path.join("model.onnx")) {
            Ok(true) => selected.push((name, path)),
            Ok(false) => {}
            Err(e) => problems.push(format!("{name}: cannot read the model: {e}")),
        }
    }
    assert!(
        !all_tests.is_empty(),
        "{} contains no node tests; re-run `scripts/setup-python.sh`",
        dir.display()
    );

    let selected_names: BTreeSet<&str> = selected.iter().map(|(n, _)| n.as_str()).collect();
    for name in exclusions.keys() {
        if !filter.is_empty() && !name.contains(&filter) {
            continue;
        }
        if !all_tests.contains(name) {
            problems.push(format!("{name}: excluded, but no such node test exists"));
        } else if !selected_names.contains(name.as_str()) {
            problems.push(format!(
                "{name}: excluded, but not selected (it uses ops outside the supported set)"
            ));
        }
    }

    let (mut passed, mut excluded, mut ran, mut with_bound) = (0usize, 0usize, 0usize, 0usize);
    let mut report = String::new();
    for (name, path) in &selected {
        if !filter.is_empty() && !name.contains(&filter) {
            continue;
        }
        ran += 1;
        let result = catch_unwind(AssertUnwindSafe(|| run_case(path)))
            .unwrap_or_else(|p| Err(format!("panicked: {}", panic_message(p.as_ref()))));
        if let Err(e) = &result {
            let first_line = e.lines().next().unwrap_or_default();
            report.push_str(&format!("{name}\t{first_line}\n"));
        }
        match (result, exclusions.get(name)) {
            (Ok(bound), None) => {
                passed += 1;
                with_bound += usize::from(bound > 0);
            }
            (Ok(_), Some(reason)) => problems.push(format!(
                "{name}: passes but is excluded ({reason}); remove it from tests/onnx_node_exclusions.txt"
            )),
            (Err(_), Some(_)) => excluded += 1,
            (Err(e), None) => problems.push(format!("{name}: FAILED: {}", truncate(&e, 3000))),
        }
    }
    if let Some(path) = std::env::var_os("STRATA_ONNX_NODE_REPORT") {
        fs::write(&path, &report)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", Path::new(&path).display()));
    }

    println!(
        "onnx node tests: {passed} passed, {excluded} excluded, {ran} selected \
         ({with_bound} passed with graph inputs bound as constants){}",
        if filter.is_empty() {
            String::new()
        } else {
            format!(" (filter `{filter}`, {} selected in all)", selected.len())
        }
    );
    if !problems.is_empty() {
        panic!(
            "{} problem(s) in the ONNX node tests:\n{}",
            problems.len(),
            problems.join("\n")
        );
    }
}

#[test]
fn exclusion_list_format() {
    let ok = parse_exclusions("# c\n\ntest_a\tbug: x\ntest_b\ttraining mode\n").unwrap();
    assert_eq!(ok.len(), 2);
    assert_eq!(ok["test_a"], "bug: x");
    assert!(parse_exclusions("test_a bug")
        .unwrap_err()
        .contains("1: expected"));
    assert!(parse_exclusions("test_a\t  ")
        .unwrap_err()
        .contains("reason"));
    assert!(parse_exclusions("a\tx\na\ty")
        .unwrap_err()
        .contains("2: a is excluded twice"));
}

#[test]
fn output_comparison() {
    let f = |v: Vec<f32>| Tensor::from_f32(vec![v.len()], v).unwrap();
    assert!(compare(
        &f(vec![1.0, f32::NAN, -0.0]),
        &f(vec![1.0005, f32::NAN, 0.0])
    )
    .is_ok());
    assert!(compare(&f(vec![0.0]), &f(vec![2e-5]))
        .unwrap_err()
        .contains("element 0"));
    assert!(compare(&f(vec![f32::NAN]), &f(vec![1.0])).is_err());
    assert!(compare(&f(vec![f32::INFINITY]), &f(vec![f32::INFINITY])).is_ok());
    assert!(compare(&f(vec![1.0, 2.0]), &f(vec![1.0]))
        .unwrap_err()
        .contains("shape"));
    let i = |v: Vec<i64>| Tensor::from_i64(vec![v.len()], v).unwrap();
    assert!(compare(&i(vec![1, 2]), &i(vec![1, 2])).is_ok());
    assert!(compare(&i(vec![1, 2]), &i(vec![1, 3]))
        .unwrap_err()
        .contains("element 1"));
    assert!(compare(&i(vec![1]), &f(vec![1.0]))
        .unwrap_err()
        .contains("element type"));
}
