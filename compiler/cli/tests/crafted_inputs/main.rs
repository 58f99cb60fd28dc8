//! The crafted-input suite: hostile and careless files of every format Strata reads (ONNX,
//! `.strata`, `.npy`, IR text), each run through the `strata` binary under a memory limit
//! (1 GiB of address space) and a time limit, asserting the typed error's message, exit code 1
//! (no panic, no abort), bounded output and each cause said once. See also the fuzz targets in
//! `fuzz/`, which found or re-check most of these.

mod harness;
mod ir_text;
mod npy;
mod onnx;
mod outputs;
mod strata;

use harness::{check_all, Format};

/// One test per format, each running that format's case list.
macro_rules! crafted {
    ($($test:ident: $format:ident;)*) => {
        $(
            #[test]
            fn $test() {
                check_all(&$format::cases());
            }
        )*
    };
}

crafted! {
    crafted_npy_inputs: npy;
    crafted_onnx_models: onnx;
    crafted_strata_containers: strata;
    crafted_ir_text: ir_text;
}

#[test]
fn at_least_40_crafted_inputs_over_the_four_formats() {
    let all: Vec<_> = [
        npy::cases(),
        onnx::cases(),
        strata::cases(),
        ir_text::cases(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let count = |f: Format| all.iter().filter(|c| c.format == f).count();
    let counts = [Format::Onnx, Format::Strata, Format::Npy, Format::IrText].map(|f| (f, count(f)));
    eprintln!("crafted inputs by format: {counts:?}, total {}", all.len());
    assert!(all.len() >= 40, "{counts:?}");
    assert!(counts.iter().all(|&(_, n)| n >= 10), "{counts:?}");
}
