//! `test verify`: the verifier accepts the graph, or rejects it where a `// error:` marker
//! says (Cranelift's `test verifier`). Parse errors count too: they carry their line.

use crate::{parse_ir, ModeResult, TestFile};

pub(crate) fn run(file: &TestFile) -> ModeResult {
    let graph = parse_ir(file)?;
    strata_ir::verify(&graph).map_err(|e| (e.to_string(), None))?;
    Ok("verified".to_string())
}
