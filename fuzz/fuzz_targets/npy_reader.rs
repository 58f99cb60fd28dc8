//! The `.npy` reader: header parsing, size checks, decoding. What decodes must encode and
//! decode back to the same tensor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_compiler::npy::{decode, encode};

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = decode(data) {
        let again = decode(&encode(&t)).expect("an encoded tensor decodes");
        assert_eq!(again, t);
    }
});
