//! The MLIR backend through the JIT against the reference runtime's integer path: the
//! bundled MNIST CNN at every plane count, compared as f32 bits (no tolerance).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use strata_backend_mlir::{emit, Dot, Jit, MlirError, MlirOptions, Stage};
use strata_ir::container::read_container;
use strata_ir::{Graph, NodeKind, Op, Tensor};
use strata_runtime::{run_with, QuantPath, RunOptions};
use strata_test_support::c::port_sizes;
use strata_test_support::{mnist, rows};

/// The MNIST CNN compiled to bit-planes (32 calibration rows), through the container.
fn mnist() -> &'static Graph {
    static G: OnceLock<Graph> = OnceLock::new();
    G.get_or_init(|| {
        let bytes = mnist::container(mnist::fp32(), rows(&mnist::fixture("calib"), 0..32));
        read_container(&bytes).unwrap().graph
    })
}

fn layer_names(g: &Graph) -> Vec<String> {
    g.topo_order()
        .unwrap()
        .into_iter()
        .filter_map(|id| {
            let n = g.node(id).unwrap();
            matches!(n.kind, NodeKind::Op(Op::Bitplane(_))).then(|| n.name.clone())
        })
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn options(k: u8) -> MlirOptions {
    MlirOptions {
        planes: k,
        name: "mnist".into(),
        ..Default::default()
    }
}

#[test]
fn mnist_jit_matches_runtime_bit_for_bit_for_every_plane_count() {
    let g = mnist();
    let images = rows(&mnist::fixture("images"), 0..20);
    let x = images.as_f32().unwrap();
    let names = layer_names(g);
    assert_eq!(names.len(), 4);
    // Both product kernels where this CPU runs both (`Dot::Vnni`: AVX-512 VNNI).
    let mut dots = vec![Dot::Pairs];
    if Dot::host() != Dot::Pairs {
        dots.push(Dot::host());
    }
    eprintln!("product kernels checked: {dots:?}");
    for (dot, k) in dots
        .into_iter()
        .flat_map(|d| (2..=8u8).map(move |k| (d, k)))
    {
        let jit = Jit::compile(g, &MlirOptions { dot, ..options(k) }).unwrap();
        assert_eq!(
            (jit.input_sizes(), jit.output_sizes()),
            (&[784][..], &[10][..])
        );
        let opts = RunOptions {
            planes: Some(k),
            path: QuantPath::Integer,
            ..Default::default()
        };
        let want = run_with(g, std::slice::from_ref(&images), &opts).unwrap();
        let got = jit.run(&[x], None).unwrap().remove(0);
        assert_eq!(bits(&got), bits(want[0].as_f32().unwrap()), "{dot:?} K={k}");
        // Mixed per-layer plane counts, all ≤ K, against the runtime's per-layer mode.
        let ppl: Vec<u8> = (0..names.len())
            .map(|i| 2 + ((i as u8 + k) % (k - 1)))
            .collect();
        let per_layer: BTreeMap<String, u8> =
            names.iter().cloned().zip(ppl.iter().copied()).collect();
        let opts = RunOptions {
            planes: Some(k),
            per_layer,
            path: QuantPath::Integer,
        };
        let want = run_with(g, std::slice::from_ref(&images), &opts).unwrap();
        let got = jit.run(&[x], Some(&ppl)).unwrap().remove(0);
        assert_eq!(
            bits(&got),
            bits(want[0].as_f32().unwrap()),
            "{dot:?} K={k} ppl={ppl:?}"
        );
    }
}

#[test]
fn plane_counts_without_a_side_table_are_refused() {
    let jit = Jit::compile(mnist(), &options(4)).unwrap();
    let x = vec![0.5f32; 784];
    // 5 > K = 4, and 1 has no side table.
    for bad in [[5u8, 4, 4, 4], [4, 4, 1, 4]] {
        let err = jit.run(&[&x], Some(&bad)).unwrap_err();
        assert!(matches!(err, MlirError::PlaneCounts { .. }), "{err}");
    }
    let err = jit.run(&[&x], Some(&[4, 4])).unwrap_err();
    assert!(
        matches!(
            err,
            MlirError::LayerPlanes {
                expected: 4,
                got: 2
            }
        ),
        "{err}"
    );
    let err = jit.run(&[&x[..100]], None).unwrap_err();
    assert!(
        matches!(
            err,
            MlirError::InputSize {
                input: 0,
                got: 100,
                sample: 784
            }
        ),
        "{err}"
    );
    let err = jit.run(&[&x, &x], None).unwrap_err();
    assert!(
        matches!(
            err,
            MlirError::Inputs {
                expected: 1,
                got: 2
            }
        ),
        "{err}"
    );
}

#[test]
fn emitted_module_is_verified_high_level_and_lowers_to_llvm() {
    let high = emit(mnist(), &options(3), Stage::High).unwrap();
    // Both convolutions and both linear layers go through the tiled product kernel, not
    // the named ops (which remain for grouped convolutions and wide activations).
    assert!(!high.contains("linalg.conv_2d"));
    assert!(!high.contains("linalg.matvec"));
    for op in [
        "bufferization.to_buffer",
        "vector.shuffle",
        "scf.for",
        "math.roundeven",
        "func.func @mnist_run(",
    ] {
        assert!(high.contains(op), "{op} missing");
    }
    assert!(!high.contains("llvm.func"));
    let llvm = emit(mnist(), &options(3), Stage::Llvm).unwrap();
    assert!(llvm.contains("llvm.func @mnist_run_planes("));
    assert!(!llvm.contains("linalg."));
    assert!(!llvm.contains("vector."));
    let err = emit(
        mnist(),
        &MlirOptions {
            name: "9bad".into(),
            ..options(3)
        },
        Stage::High,
    )
    .unwrap_err();
    assert!(matches!(err, MlirError::BadName { .. }), "{err}");
}

#[test]
fn mixed_precision_lowering_keeps_each_layers_own_planes() {
    // Layer i stores only planes 0..k_i; NAME_run runs those counts, NAME_run_planes lower
    // ones, each as the runtime's per-layer mode computes them.
    let g = mnist();
    let images = rows(&mnist::fixture("images"), 0..8);
    let x = images.as_f32().unwrap();
    let names = layer_names(g);
    let stored = vec![3u8, 8, 2, 5];
    let jit = Jit::compile(
        g,
        &MlirOptions {
            planes: 8,
            layer_planes: Some(stored.clone()),
            name: "mixed".into(),
            dot: Dot::host(),
            ..Default::default()
        },
    )
    .unwrap();
    for ppl in [None, Some(vec![2u8, 4, 2, 3])] {
        let counts = ppl.clone().unwrap_or_else(|| stored.clone());
        let opts = RunOptions {
            planes: Some(8),
            per_layer: names.iter().cloned().zip(counts).collect(),
            path: QuantPath::Integer,
        };
        let want = run_with(g, std::slice::from_ref(&images), &opts).unwrap();
        let got = jit.run(&[x], ppl.as_deref()).unwrap().remove(0);
        assert_eq!(bits(&got), bits(want[0].as_f32().unwrap()), "{ppl:?}");
    }
    // A count above a layer's stored planes has no side table there.
    let err = jit.run(&[x], Some(&[4, 8, 2, 5])).unwrap_err();
    assert!(matches!(err, MlirError::PlaneCounts { .. }), "{err}");
}

/// Two inputs and three outputs (an intermediate value and an input among them): the
/// array form of the API, at the default and per-layer counts, against the runtime.
#[test]
fn several_inputs_and_outputs_match_runtime_bit_for_bit() {
    let g = mnist::two_in_three_out(mnist());
    let n = 6;
    let images = rows(&mnist::fixture("images"), 0..n);
    let bias: Vec<f32> = (0..n * 10).map(|i| (i as f32 * 0.61).cos() * 3.0).collect();
    let bias_t = Tensor::from_f32(vec![n, 10], bias.clone()).unwrap();
    let x = images.as_f32().unwrap();
    let names = layer_names(&g);
    for k in [2u8, 5, 8] {
        let jit = Jit::compile(&g, &options(k)).unwrap();
        let (ins, outs) = port_sizes(&g);
        assert_eq!(jit.input_sizes(), [784, 10]);
        assert_eq!(
            (jit.input_sizes(), jit.output_sizes()),
            (&ins[..], &outs[..])
        );
        for ppl in [None, Some(vec![2u8, k.min(3), 2, k])] {
            let counts = ppl.clone().unwrap_or_else(|| vec![k; names.len()]);
            let opts = RunOptions {
                planes: Some(k),
                per_layer: names.iter().cloned().zip(counts).collect(),
                path: QuantPath::Integer,
            };
            let want = run_with(&g, &[images.clone(), bias_t.clone()], &opts).unwrap();
            let got = jit.run(&[x, &bias], ppl.as_deref()).unwrap();
            assert_eq!(got.len(), 3);
            for (j, (gv, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    bits(gv),
                    bits(w.as_f32().unwrap()),
                    "K={k} output {j} {ppl:?}"
                );
            }
            // The third output is the second input, copied through.
            assert_eq!(bits(&got[2]), bits(&bias));
        }
    }
    let jit = Jit::compile(&g, &options(4)).unwrap();
    let err = jit.run(&[x, &bias[..50]], None).unwrap_err();
    assert!(
        matches!(err, MlirError::InputBatches { ref batches } if batches == &[6, 5]),
        "{err}"
    );
    let err = jit.run(&[x], None).unwrap_err();
    assert!(
        matches!(
            err,
            MlirError::Inputs {
                expected: 2,
                got: 1
            }
        ),
        "{err}"
    );
    // The exported functions take the arrays of pointers the C header declares.
    let high = emit(&g, &options(4), Stage::High).unwrap();
    let head = high
        .lines()
        .find(|l| l.contains("func.func @mnist_run("))
        .unwrap_or_default();
    assert!(
        head.contains("(%arg0: !llvm.ptr, %arg1: !llvm.ptr) -> i32"),
        "{head}"
    );
}

/// `Dot::Vnni` compiles only where the CPU has AVX-512 VNNI (LLVM would abort selecting
/// `vpdpbusd` elsewhere): a typed error otherwise; `Pairs` everywhere.
#[test]
fn vnni_is_refused_where_the_cpu_lacks_it() {
    assert_eq!(Dot::Pairs.for_this_machine().unwrap(), Dot::Pairs);
    let vnni = MlirOptions {
        dot: Dot::Vnni,
        ..options(4)
    };
    match Dot::host() {
        Dot::Vnni => {
            assert_eq!(Dot::Vnni.for_this_machine().unwrap(), Dot::Vnni);
            Jit::compile(mnist(), &vnni).unwrap();
        }
        Dot::Pairs => {
            let err = Jit::compile(mnist(), &vnni).err().unwrap();
            assert!(matches!(err, MlirError::Target(_)), "{err}");
        }
    }
}
