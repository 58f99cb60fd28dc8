//! The C backend on the ops of `new_ops` (data movement, reductions, Max/Min, BatchNorm, IEEE
//! unary functions, Resize), one net per chain behind a bit-plane convolution: emitted for
//! the generic target at K = 8, run at 2, 5 and 8 planes, built with gcc in strict C99 and compared bit for bit
//! with the runtime's integer path, for `PREFIX_run` and for `PREFIX_run_planes`. (The
//! cross-ISA matrix runs all chains as one net: `emit_c_targets`.)

mod new_ops;

use strata_compiler::backend::c::{emit, EmitOptions};
use strata_ir::container::read_container;
use strata_ir::{Graph, Tensor};
use strata_runtime::{run_with, QuantPath, RunOptions};
use strata_test_support::c::{bits, build, run_c};
use strata_test_support::{mnist, values};

/// The number of bit-plane layers (the length of a `planes_per_layer` array).
fn num_layers(g: &Graph) -> usize {
    strata_compiler::backend::c::layer_names(g).unwrap().len()
}

#[test]
fn new_ops_match_the_runtime_bit_for_bit() {
    let n = 6;
    for (i, (name, fp32)) in new_ops::nets().into_iter().enumerate() {
        let calib = Tensor::from_f32(vec![16, 3, 9, 9], values(16 * 243, 700 + i as u64)).unwrap();
        let g = read_container(&mnist::container(fp32, calib))
            .unwrap()
            .graph;
        let x: Vec<f32> = values(n * 243, 800 + i as u64)
            .into_iter()
            .map(|v| 2.0 * v)
            .collect();
        let xt = Tensor::from_f32(vec![n, 3, 9, 9], x.clone()).unwrap();
        let exe = build(&g, 8, &format!("ops-{name}"));
        let layers = num_layers(&g);
        for k in [2u8, 5, 8] {
            let opts = RunOptions {
                planes: Some(k),
                path: QuantPath::Integer,
                ..Default::default()
            };
            let want = bits(
                run_with(&g, std::slice::from_ref(&xt), &opts).unwrap()[0]
                    .as_f32()
                    .unwrap(),
            );
            let got = bits(&run_c(&exe, &x, n, Some(&vec![k; layers])).unwrap());
            let differ = got.iter().zip(&want).filter(|(a, b)| a != b).count();
            assert_eq!(got.len(), want.len(), "{name} K={k}");
            assert_eq!(differ, 0, "{name} K={k}: {differ} of {} differ", want.len());
            if k == 8 {
                let plain = bits(&run_c(&exe, &x, n, None).unwrap());
                assert_eq!(plain, want, "{name} model_run");
            }
        }
    }
}

/// The index tables and interpolation taps count in the weight bytes the header reports.
#[test]
fn tables_count_in_the_weight_bytes() {
    let (_, fp32) = new_ops::nets().swap_remove(2);
    let calib = Tensor::from_f32(vec![16, 3, 9, 9], values(16 * 243, 702)).unwrap();
    let g = read_container(&mnist::container(fp32, calib))
        .unwrap()
        .graph;
    let opts = EmitOptions {
        planes: 4,
        name: "m".into(),
        ..Default::default()
    };
    let out = emit(&g, &opts).unwrap();
    let lowered = strata_compiler::backend::c::lower(&g, &opts).unwrap();
    assert!(!lowered.tables.is_empty() && !lowered.taps.is_empty());
    let tables: usize = lowered.tables.iter().map(|t| 4 * t.indices.len()).sum();
    let taps: usize = lowered.taps.iter().map(|t| t.bytes()).sum();
    assert!(out.stats.weight_bytes as usize > tables + taps);
    assert!(out.header.contains(&format!(
        "#define M_WEIGHT_BYTES {}\n",
        out.stats.weight_bytes
    )));
}
