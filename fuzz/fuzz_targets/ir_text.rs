//! The IR text parser and verifier. A graph that parses and verifies must print to text that
//! parses back to the same graph (the text form's round-trip promise).
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_ir::text::{parse, print};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(graph) = parse(text) else {
        return;
    };
    if strata_ir::verify(&graph).is_ok() {
        let printed = print(&graph);
        let again = parse(&printed).expect("printed text parses");
        assert!(again == graph, "round trip changed the graph:\n{printed}");
        let _ = strata_compiler::inspect::summarize(&graph);
    }
});
