//! The README's list of supported ONNX ops is the registry's list: adding an op without
//! documenting it (or documenting one that is not registered) fails here.

use std::collections::BTreeSet;

use strata_onnx::supported_ops;

/// The op names of the README's "Supported ONNX" section: the list after the first `): `
/// and before the first `;` outside parentheses, with the parenthesised notes removed.
fn readme_ops(readme: &str) -> Result<Vec<String>, String> {
    let section = readme
        .split_once("### Supported ONNX")
        .ok_or("no `### Supported ONNX` section")?
        .1;
    let list = section
        .split_once("): ")
        .ok_or("no `): ` before the op list")?
        .1;
    let (mut depth, mut names, mut name) = (0usize, Vec::new(), String::new());
    for c in list.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth
                    .checked_sub(1)
                    .ok_or("unbalanced `)` in the op list")?
            }
            _ if depth > 0 => {}
            ',' | ';' => {
                names.push(name.split_whitespace().collect::<Vec<_>>().join(" "));
                name.clear();
                if c == ';' {
                    return Ok(names);
                }
            }
            c => name.push(c),
        }
    }
    Err("the op list does not end with `;`".into())
}

#[test]
fn readme_lists_exactly_the_registered_ops() {
    let path = strata_test_support::repo_root().join("README.md");
    let readme = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let listed = readme_ops(&readme).unwrap_or_else(|e| panic!("README.md: {e}"));
    let listed_set: BTreeSet<&str> = listed.iter().map(String::as_str).collect();
    assert_eq!(listed_set.len(), listed.len(), "README lists an op twice");
    let registered: BTreeSet<&str> = supported_ops().map(|op| op.op_type).collect();
    let missing: Vec<_> = registered.difference(&listed_set).collect();
    let unknown: Vec<_> = listed_set.difference(&registered).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "README.md's Supported ONNX list is out of date: registered but not listed {missing:?}, \
         listed but not registered {unknown:?}"
    );
}

#[test]
fn list_parser() {
    let text = "### Supported ONNX\n\nOpsets (x): Conv (a, b), Gemm,\nMatMul; rest, (not) ops";
    assert_eq!(readme_ops(text).unwrap(), ["Conv", "Gemm", "MatMul"]);
    assert!(readme_ops("### Supported ONNX\nnone (x): A, B")
        .unwrap_err()
        .contains("end with"));
    assert!(readme_ops("# Other").is_err());
}

#[test]
fn registry_is_consistent() {
    let ops: Vec<_> = supported_ops().collect();
    let names: BTreeSet<&str> = ops.iter().map(|op| op.op_type).collect();
    assert_eq!(names.len(), ops.len(), "an op is registered twice");
    for op in &ops {
        assert!(
            op.since <= op.last_changed && op.last_changed <= strata_onnx::NEWEST_REVIEWED_OPSET,
            "{op:?}: opsets out of order"
        );
    }
}
