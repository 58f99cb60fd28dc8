//! Textual pass tests, Cranelift-style: each `filetests/*.sir` file starts with a
//! `// pipeline: …` line followed by Strata IR text. The harness parses the IR, runs the
//! pipeline (verifying after every pass) and snapshots the printed result with `insta`.
//! A header line `// calibration: seed=S samples=N` (anywhere among the leading comment lines)
//! gives the pipeline N pseudo-random calibration samples per graph input, uniform in
//! [-1, 1) from seed S, for passes such as `vl-quantize` that measure activations.
//! Regenerate after an intended change with `INSTA_UPDATE=always cargo test -p strata-passes
//! --test filetests`, then read every changed snapshot before committing it.

use std::path::Path;

use strata_ir::{DType, Graph, Tensor};
use strata_passes::{PassContext, PassManager};
use strata_test_support::values;

/// Parses `seed=S samples=N` and builds one `[N, …]` tensor per (f32) graph input.
fn calibration(path: &Path, spec: &str, graph: &Graph) -> Vec<Tensor> {
    let mut seed = None;
    let mut samples = None;
    for part in spec.split_whitespace() {
        match part.split_once('=') {
            Some(("seed", v)) => seed = v.parse::<u64>().ok(),
            Some(("samples", v)) => samples = v.parse::<usize>().ok(),
            _ => panic!("{}: bad calibration setting `{part}`", path.display()),
        }
    }
    let (Some(seed), Some(samples)) = (seed, samples) else {
        panic!("{}: calibration needs seed=S samples=N", path.display());
    };
    graph
        .inputs()
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            let ty = &graph.node(id).unwrap().outputs[0].ty;
            assert_eq!(
                ty.dtype,
                DType::F32,
                "{}: calibration inputs must be f32",
                path.display()
            );
            let shape = ty.shape.resolve(samples);
            let n = shape.iter().product();
            Tensor::from_f32(shape, values(n, seed + i as u64)).unwrap()
        })
        .collect()
}

fn run_filetest(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("filetest is readable");
    let (header, body) = text.split_once('\n').expect("filetest has a header line");
    let pipeline = header
        .strip_prefix("// pipeline:")
        .unwrap_or_else(|| panic!("{}: first line must be `// pipeline: …`", path.display()))
        .trim();
    let mut graph = strata_ir::text::parse(body)
        .unwrap_or_else(|e| panic!("{}: input does not parse: {e}", path.display()));
    let calib_line = body
        .lines()
        .take_while(|l| l.starts_with("//"))
        .find_map(|l| l.strip_prefix("// calibration:"))
        .map(str::trim);
    let mut ctx = PassContext::default();
    if let Some(spec) = calib_line {
        ctx.calibration = Some(calibration(path, spec, &graph));
    }
    let manager = PassManager::parse(pipeline).expect("pipeline parses");
    manager
        .run(&mut graph, &mut ctx, |_, _| {})
        .unwrap_or_else(|e| panic!("{}: pipeline failed: {e}", path.display()));
    let printed = strata_ir::text::print(&graph);
    let reparsed = strata_ir::text::parse(&printed).expect("output re-parses");
    assert!(
        reparsed == graph,
        "{}: output does not round-trip",
        path.display()
    );
    match calib_line {
        Some(spec) => format!("// pipeline: {pipeline}\n// calibration: {spec}\n{printed}"),
        None => format!("// pipeline: {pipeline}\n{printed}"),
    }
}

#[test]
fn filetests() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/filetests");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("filetests directory exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sir"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no filetests found in {}", dir.display());
    for path in files {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let output = run_filetest(&path);
        insta::with_settings!({ snapshot_path => "filetests/snapshots", prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!(name, output);
        });
    }
}
