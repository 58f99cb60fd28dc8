//! ONNX import of arbitrary bytes (as `import_bytes`, so external data is refused: the model
//! has no directory), then what the CLI does next with a graph: verify, print, summarize.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_onnx::{import_bytes, ImportOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(graph) = import_bytes(data, None, &ImportOptions::default()) else {
        return;
    };
    if strata_ir::verify(&graph).is_ok() {
        let _ = strata_ir::text::print(&graph);
        let _ = strata_compiler::inspect::summarize(&graph);
    }
});
