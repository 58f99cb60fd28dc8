//! The `.npz` reader and the QAT tables sidecar parser (`strata compile --qat-tables`):
//! archive structure, member sizes, inflation, `.npy` members, the sidecar's entries. Small
//! caps keep every input cheap; what parses must describe a consistent table set.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_compiler::npy::npz::{decode_npz, NpzLimits};
use strata_compiler::qat_tables::from_members;

fuzz_target!(|data: &[u8]| {
    let caps = NpzLimits {
        max_members: 256,
        max_member_bytes: 1 << 20,
        max_total_bytes: 4 << 20,
    };
    if let Ok(members) = decode_npz(data, &caps) {
        if let Ok(t) = from_members(members) {
            t.check_globals().expect("a parsed sidecar has valid globals");
            for layer in t.layers.values() {
                let ks: Vec<u8> = layer.tables.iter().map(|s| s.k).collect();
                assert_eq!(ks, t.planes);
            }
        }
    }
});
