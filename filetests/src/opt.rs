//! `test opt <pipeline>`: the pass pipeline's printed result (Cranelift's `test optimize`).

use crate::{parse_ir, run_pipeline, ModeResult, TestFile};

pub(crate) fn run(file: &TestFile) -> ModeResult {
    if file.args.is_empty() {
        return Err(("`test opt` needs a pipeline".into(), Some(1)));
    }
    let mut graph = parse_ir(file)?;
    run_pipeline(file, &file.args, &mut graph).map_err(|e| (e, None))?;
    let printed = strata_ir::text::print(&graph);
    // Whatever a pass leaves must print back to the same graph.
    let reparsed = strata_ir::text::parse(&printed)
        .map_err(|e| (format!("the output does not parse: {e}"), None))?;
    if reparsed != graph {
        return Err((
            "the output does not round-trip through the text form".into(),
            None,
        ));
    }
    Ok(printed)
}
