//! The `.strata` reader on raw bytes: every header, length, offset and checksum case. A file
//! that loads is summarized and stripped to one plane, as `strata inspect` and `strip` would.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_ir::container::{read_container, strip_container};

fuzz_target!(|data: &[u8]| {
    let Ok(loaded) = read_container(data) else {
        return;
    };
    let _ = strata_compiler::inspect::summarize(&loaded.graph);
    if loaded.available_planes > 0 {
        let prefix = strip_container(data, 1).expect("a loadable container strips to 1 plane");
        read_container(prefix).expect("a stripped container loads");
    }
});
