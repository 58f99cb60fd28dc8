//! The MLIR backend's exactness matrix on the C matrix's synthetic nets (`new_ops::nets`):
//! `small` (every convolution form, odd fully connected sizes) and the `op_*` nets (every
//! other op, behind bit-plane layers, `op_lstm` the LSTMs), through the JIT, K = 2..8, for the default counts and
//! mixed per-layer counts, bit for bit against the runtime's integer path.
#![cfg(feature = "mlir")]

mod new_ops;

use std::collections::BTreeMap;

use new_ops::nets::{edge_net, op_nets, small_net};
use strata_compiler::backend::mlir::{Dot, Jit, MlirError, MlirOptions};
use strata_compiler::compile::{compile_to_container, CompileOptions};
use strata_ir::container::read_container;
use strata_ir::{Graph, NodeKind, Op, Tensor};
use strata_runtime::{run_with, QuantPath, RunOptions};
use strata_test_support::{batch_ty, conv_attrs, op, values};

fn quantized(fp32: Graph, calib: Tensor) -> Graph {
    let bytes = compile_to_container(
        fp32,
        vec![calib],
        &CompileOptions::default(),
        Default::default(),
        |_| {},
    )
    .unwrap();
    read_container(&bytes).unwrap().graph
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

/// The bits of every output.
fn all_bits(outputs: &[Vec<f32>]) -> Vec<Vec<u32>> {
    outputs
        .iter()
        .map(|v| v.iter().map(|x| x.to_bits()).collect())
        .collect()
}

/// The bits of every output the runtime computed.
fn want_bits(outputs: &[Tensor]) -> Vec<Vec<u32>> {
    let values: Vec<Vec<f32>> = outputs
        .iter()
        .map(|t| t.as_f32().expect("f32 outputs").to_vec())
        .collect();
    all_bits(&values)
}

/// The product kernels this CPU runs: the portable one, and AVX-512 VNNI's where present.
fn dots() -> Vec<Dot> {
    let mut dots = vec![Dot::Pairs];
    if Dot::host() != Dot::Pairs {
        dots.push(Dot::host());
    }
    dots
}

/// Every plane count through the JIT against the runtime, with every product kernel.
fn check(name: &str, g: &Graph, x: &Tensor) -> Result<(), MlirError> {
    let names = layer_names(g);
    for (dot, k) in dots()
        .into_iter()
        .flat_map(|d| (2..=8u8).map(move |k| (d, k)))
    {
        let options = MlirOptions {
            planes: k,
            name: name.into(),
            dot,
            ..Default::default()
        };
        let jit = Jit::compile(g, &options)?;
        let opts = RunOptions {
            planes: Some(k),
            path: QuantPath::Integer,
            ..Default::default()
        };
        let want = run_with(g, std::slice::from_ref(x), &opts).unwrap();
        let got = jit.run(&[x.as_f32().unwrap()], None).unwrap();
        assert_eq!(all_bits(&got), want_bits(&want), "{name} {dot:?} K={k}");
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
        let want = run_with(g, std::slice::from_ref(x), &opts).unwrap();
        let got = jit.run(&[x.as_f32().unwrap()], Some(&ppl)).unwrap();
        assert_eq!(
            all_bits(&got),
            want_bits(&want),
            "{name} {dot:?} K={k} ppl={ppl:?}"
        );
    }
    Ok(())
}

#[test]
fn small_and_op_nets_match_the_runtime_through_the_jit() {
    let mut nets = vec![("small", small_net(), 24usize, 99u64)];
    for (i, (name, g)) in op_nets().into_iter().enumerate() {
        nets.push((name, g, 16, 200 + i as u64));
    }
    let x = Tensor::from_f32(vec![6, 3, 9, 9], values(6 * 243, 7)).unwrap();
    for (name, fp32, rows, seed) in nets {
        let calib = Tensor::from_f32(vec![rows, 3, 9, 9], values(rows * 243, seed)).unwrap();
        let g = quantized(fp32, calib);
        check(name, &g, &x).unwrap_or_else(|e| panic!("{name}: {e}"));
        eprintln!("{name}: K=2..8 bit-exact with {:?}", dots());
    }
}

/// The product kernel's edges: `edges` (extreme codes at every count, 37 channels — odd,
/// padded to pairs — reductions of 333 and 2,997, saturating inputs) and a convolution
/// whose output map has fewer positions than a tile (3×3 stride 2 on 3×3: one position;
/// 17 outputs: a partial vector of outputs).
#[test]
fn product_kernel_edges_match_the_runtime_through_the_jit() {
    let calib = Tensor::from_f32(vec![8, 37, 9, 9], values(8 * 37 * 81, 41)).unwrap();
    let g = quantized(edge_net(), calib);
    let n = 37 * 81;
    let mut x = vec![4.0f32; n];
    x.extend(vec![-4.0f32; n]);
    x.extend(values(2 * n, 43));
    let x = Tensor::from_f32(vec![4, 37, 9, 9], x).unwrap();
    check("edges", &g, &x).unwrap();

    let mut t = Graph::new("tiny_map");
    let input = t.add_input("x", batch_ty(&[5, 3, 3]));
    let w = t.add_constant(
        "w",
        Tensor::from_f32(vec![17, 5, 3, 3], values(17 * 45, 5)).unwrap(),
    );
    let conv = Op::Conv(conv_attrs(&[3, 3], &[2, 2], &[0; 4], &[1, 1], 1, false));
    let y = op(&mut t, "c", conv, &[input, w]);
    t.set_outputs(vec![y]);
    let calib = Tensor::from_f32(vec![8, 5, 3, 3], values(8 * 45, 6)).unwrap();
    let g = quantized(t, calib);
    let x = Tensor::from_f32(vec![3, 5, 3, 3], values(3 * 45, 7)).unwrap();
    check("tiny_map", &g, &x).unwrap();
}

/// Pools whose windows tile their input exactly take the vectorised row kernel: average
/// 2×2/2 (6×6 → 3×3: a partial vector of outputs) and max 3×3/3 (kernel rows of 3 taps),
/// after a convolution, both outputs compared.
#[test]
fn exactly_tiling_pools_match_the_runtime_through_the_jit() {
    use strata_ir::ops::Pool;
    let pool = |k: usize| Pool {
        kernel: vec![k, k],
        strides: vec![k, k],
        pads: vec![0; 4],
        dilations: vec![1, 1],
        ceil_mode: false,
        count_include_pad: false,
    };
    let mut t = Graph::new("pools");
    let input = t.add_input("x", batch_ty(&[3, 6, 6]));
    let w = t.add_constant(
        "w",
        Tensor::from_f32(vec![8, 3, 3, 3], values(8 * 27, 11)).unwrap(),
    );
    let conv = Op::Conv(conv_attrs(&[3, 3], &[1, 1], &[1; 4], &[1, 1], 1, false));
    let c = op(&mut t, "c", conv, &[input, w]);
    let avg = op(&mut t, "avg", Op::AveragePool(pool(2)), &[c]);
    let max = op(&mut t, "max", Op::MaxPool(pool(3)), &[c]);
    t.set_outputs(vec![avg, max]);
    let calib = Tensor::from_f32(vec![8, 3, 6, 6], values(8 * 108, 12)).unwrap();
    let g = quantized(t, calib);
    let x = Tensor::from_f32(vec![3, 3, 6, 6], values(3 * 108, 13)).unwrap();
    check("pools", &g, &x).unwrap();
}

/// A bit-plane linear layer over 4 vectors per sample (a Gemm reading a sequence, no batch
/// axis): applied to every vector, as the C backend and the runtime do.
#[test]
fn linear_layer_over_several_vectors_matches_the_runtime_through_the_jit() {
    let calib: Vec<f32> = (0..32 * 8).map(|i| (i as f32 * 0.37).cos() * 2.0).collect();
    let calib = Tensor::from_f32(vec![32, 8], calib).unwrap();
    let g = quantized(strata_test_support::graphs::sequence_gemm(), calib);
    assert_eq!(layer_names(&g), ["fc"], "the Gemm became a bit-plane layer");
    let xs: Vec<f32> = (0..32).map(|i| (i as f32 * 0.53).sin() * 1.5).collect();
    let x = Tensor::from_f32(vec![4, 8], xs).unwrap();
    check("steps", &g, &x).unwrap();
    // The vectors differ, so a kernel that computed only the first would not match.
    let jit = Jit::compile(
        &g,
        &MlirOptions {
            planes: 8,
            name: "steps".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let y = jit.run(&[x.as_f32().unwrap()], None).unwrap().remove(0);
    assert_eq!(y.len(), 20);
    assert_ne!(y[..5], y[15..]);
}
