//! Textual pass tests, Cranelift-style: each `filetests/*.sir` file starts with a
//! `// pipeline: …` line followed by Strata IR text. The harness parses the IR, runs the
//! pipeline (verifying after every pass) and snapshots the printed result with `insta`.
//! Regenerate after an intended change with `INSTA_UPDATE=always cargo test -p strata-passes
//! --test filetests`, then read every changed snapshot before committing it.

use std::path::Path;

use strata_passes::PassManager;

fn run_filetest(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("filetest is readable");
    let (header, body) = text.split_once('\n').expect("filetest has a header line");
    let pipeline = header
        .strip_prefix("// pipeline:")
        .unwrap_or_else(|| panic!("{}: first line must be `// pipeline: …`", path.display()))
        .trim();
    let mut graph = strata_ir::text::parse(body)
        .unwrap_or_else(|e| panic!("{}: input does not parse: {e}", path.display()));
    let manager = PassManager::parse(pipeline).expect("pipeline parses");
    manager
        .run(&mut graph, &mut Default::default(), |_, _| {})
        .unwrap_or_else(|e| panic!("{}: pipeline failed: {e}", path.display()));
    let printed = strata_ir::text::print(&graph);
    let reparsed = strata_ir::text::parse(&printed).expect("output re-parses");
    assert!(
        reparsed == graph,
        "{}: output does not round-trip",
        path.display()
    );
    format!("// pipeline: {pipeline}\n{printed}")
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
