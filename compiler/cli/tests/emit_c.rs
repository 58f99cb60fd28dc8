//! The C backend against the reference runtime: emit the MNIST CNN for every plane count,
//! build it with gcc in strict C99 and compare outputs bit for bit with the integer path.

use strata_test_support::c::{
    bits, build, build_with_driver_default_mode, deinterleave, host_has_avx2, interleave, main_c,
    port_sizes, run_c,
};
use strata_test_support::{batch_ty, mnist, op, rows};

use std::collections::BTreeMap;
use std::sync::OnceLock;

use strata_compiler::backend::c::{emit, write_c, EmitError, EmitOptions, LowerError, Target};
use strata_ir::container::read_container;
use strata_ir::ops::elementwise::{BinaryOp, UnaryOp};
use strata_ir::ops::pool::{GlobalPoolKind, Pool};
use strata_ir::{DType, Graph, NodeKind, Op, Tensor, TensorType, ValueRef};
use strata_runtime::{run_with, QuantPath, RunOptions};

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

#[test]
fn mnist_matches_runtime_bit_for_bit_for_every_plane_count() {
    let g = mnist();
    let images = rows(&mnist::fixture("images"), 0..20);
    let x = images.as_f32().unwrap();
    let names = layer_names(g);
    assert_eq!(names.len(), 4);
    for k in 2..=8u8 {
        let exe = build(g, k, &format!("mnist{k}"));
        let opts = RunOptions {
            planes: Some(k),
            path: QuantPath::Integer,
            ..Default::default()
        };
        let want = run_with(g, std::slice::from_ref(&images), &opts).unwrap();
        let got = run_c(&exe, x, 20, None).unwrap();
        assert_eq!(bits(&got), bits(want[0].as_f32().unwrap()), "K={k}");
        // Mixed per-layer plane counts, all ≤ K, against the runtime's per-layer mode.
        let ppl: Vec<u8> = (0..names.len())
            .map(|i| 2 + ((i as u8 + k) % (k - 1)))
            .collect();
        let per_layer: BTreeMap<String, u8> =
            names.iter().cloned().zip(ppl.iter().copied()).collect();
        let opts = RunOptions {
            per_layer,
            path: QuantPath::Integer,
            ..Default::default()
        };
        let want = run_with(g, std::slice::from_ref(&images), &opts).unwrap();
        let got = run_c(&exe, x, 20, Some(&ppl)).unwrap();
        assert_eq!(
            bits(&got),
            bits(want[0].as_f32().unwrap()),
            "K={k} per layer {ppl:?}"
        );
        // A count above K, or 0, is refused with return code 1.
        let mut bad = vec![k; names.len()];
        if k < 8 {
            bad[2] = k + 1;
            assert_eq!(run_c(&exe, x, 1, Some(&bad)), Err(11), "K={k}");
        }
        bad[2] = 0;
        assert_eq!(run_c(&exe, x, 1, Some(&bad)), Err(11), "K={k}");
    }
}

/// gcc's default (GNU) mode contracts `a*b + c` into a fused multiply-add where the CPU has
/// one (x86-64-v3 does), which rounds the float epilogue differently; the emitted source turns
/// that off itself, so a build with neither `-std=c99` nor `-ffp-contract=off` still matches
/// the runtime bit for bit (without the source's `#pragma GCC optimize` 20 MNIST images
/// differ). On a CPU without AVX2 the portable target is built the same way.
#[test]
fn gnu_mode_build_without_fp_contract_flag_matches_runtime() {
    let g = mnist();
    let images = rows(&mnist::fixture("images"), 0..20);
    let x = images.as_f32().unwrap();
    let (target, flags): (Target, &[&str]) = if host_has_avx2() {
        (Target::X86_64V3, &["-O3", "-march=x86-64-v3"])
    } else {
        (Target::Generic, &["-O3"])
    };
    let dir = std::env::temp_dir().join(format!("strata-emit-c-{}-gnu", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = EmitOptions {
        planes: 8,
        name: "model".into(),
        target,
        ..Default::default()
    };
    write_c(g, &opts, &dir).unwrap();
    let (inputs, outputs) = port_sizes(g);
    std::fs::write(dir.join("main.c"), main_c(&inputs, &outputs)).unwrap();
    let exe = build_with_driver_default_mode(&dir, flags);
    let opts = RunOptions {
        planes: Some(8),
        path: QuantPath::Integer,
        ..Default::default()
    };
    let want = run_with(g, std::slice::from_ref(&images), &opts).unwrap();
    let got = run_c(&exe, x, 20, None).unwrap();
    assert_eq!(bits(&got), bits(want[0].as_f32().unwrap()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn mnist_header_snapshot() {
    let out = emit(
        mnist(),
        &EmitOptions {
            planes: 4,
            name: "mnist_cnn".into(),
            ..Default::default()
        },
    )
    .unwrap();
    insta::assert_snapshot!("mnist_cnn_k4_header", out.header);
    // Only planes 0..K are stored: with packed planes (armv7m) the K=4 source is about half
    // the K=8 one (the code layouts store 4-bit codes at K=4: see emit_c_targets' sizes).
    let packed = |planes: u8| EmitOptions {
        planes,
        name: "m".into(),
        target: strata_compiler::backend::c::Target::Armv7m,
        layer_planes: None,
        adaptive: None,
        code_bits: Default::default(),
    };
    let half = emit(mnist(), &packed(4)).unwrap();
    let full = emit(mnist(), &packed(8)).unwrap();
    assert!(half.source.len() * 10 < full.source.len() * 7);
}

fn pool(kernel: usize, stride: usize, pads: usize, include_pad: bool) -> Pool {
    Pool {
        kernel: vec![kernel; 2],
        strides: vec![stride; 2],
        pads: vec![pads; 4],
        dilations: vec![1, 1],
        ceil_mode: false,
        count_include_pad: include_pad,
    }
}

/// A float-only net exercising the other ops: pools, Relu, Add/Mul with constants and with
/// each other, global average pooling, reshape/flatten/identity aliases.
fn small_net() -> Graph {
    let mut g = Graph::new("small");
    let x = g.add_input("x", batch_ty(&[3, 7, 7]));
    let a = op(&mut g, "avg_a", Op::AveragePool(pool(3, 2, 1, false)), &[x]);
    let b = op(&mut g, "avg_b", Op::AveragePool(pool(3, 2, 1, true)), &[x]);
    let m = op(&mut g, "max", Op::MaxPool(pool(2, 2, 1, false)), &[x]);
    let s = op(&mut g, "sum", Op::Binary(BinaryOp::Add), &[a, b]);
    let n = 3 * 4 * 4;
    let cw: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
    let c = g.add_constant("c", Tensor::from_f32(vec![1, 3, 4, 4], cw).unwrap());
    let t = op(&mut g, "times", Op::Binary(BinaryOp::Mul), &[c, s]);
    let h = g.add_constant("half", Tensor::scalar_f32(-0.3));
    let u = op(&mut g, "shift", Op::Binary(BinaryOp::Add), &[t, h]);
    let v = op(&mut g, "mix", Op::Binary(BinaryOp::Mul), &[u, m]);
    let r = op(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[v]);
    let i = op(&mut g, "id", Op::Identity, &[r]);
    let gp = op(&mut g, "gap", Op::GlobalPool(GlobalPoolKind::Average), &[i]);
    let f = op(&mut g, "flat", Op::Flatten { axis: 1 }, &[gp]);
    let sum2 = op(&mut g, "again", Op::Binary(BinaryOp::Add), &[f, f]);
    g.set_outputs(vec![sum2]);
    strata_ir::verify(&g).unwrap();
    g
}

#[test]
fn small_float_net_matches_runtime() {
    let g = small_net();
    let exe = build(&g, 8, "small");
    let n = 5;
    let x: Vec<f32> = (0..n * 3 * 49)
        .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 97.0)
        .collect();
    let xt = Tensor::from_f32(vec![n, 3, 7, 7], x.clone()).unwrap();
    let want = strata_runtime::run(&g, &[xt]).unwrap();
    let got = run_c(&exe, &x, n, None).unwrap();
    assert_eq!(bits(&got), bits(want[0].as_f32().unwrap()));
    let out = emit(
        &g,
        &EmitOptions {
            planes: 8,
            name: "s".into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(out.header.contains("#define S_NUM_LAYERS 0"));
    assert!(out.header.contains("#define S_OUTPUT_SHAPE {1, 3}"));
}

#[test]
fn errors_name_what_and_where() {
    let opts = |k: u8, name: &str| EmitOptions {
        planes: k,
        name: name.into(),
        ..Default::default()
    };
    let g = mnist();
    assert!(matches!(
        emit(g, &opts(4, "9lives")),
        Err(EmitError::BadName { .. })
    ));
    assert!(matches!(
        emit(g, &opts(4, "a-b")),
        Err(EmitError::BadName { .. })
    ));
    assert!(matches!(
        emit(g, &opts(4, "")),
        Err(EmitError::BadName { .. })
    ));
    assert!(matches!(
        emit(g, &opts(9, "m")),
        Err(EmitError::Lower(LowerError::BadPlanes { planes: 9 }))
    ));
    assert!(matches!(
        emit(g, &opts(0, "m")),
        Err(EmitError::Lower(LowerError::BadPlanes { planes: 0 }))
    ));
    // K = 1 has no side table in the default compile.
    match emit(g, &opts(1, "m")) {
        Err(EmitError::Lower(LowerError::Planes {
            node, planes: 1, ..
        })) => assert_eq!(node, "conv_1"),
        other => panic!("{other:?}"),
    }
    // Unsupported ops and operands are the lowering's errors (unit-tested in strata-lower).
    // An input that is not f32.
    let mut s = Graph::new("s");
    let a = s.add_input("a", TensorType::known(DType::I64, &[1, 2]));
    let y = s
        .add_op_inferred("id", Op::Identity, &[a], vec!["y".into()])
        .unwrap();
    s.set_outputs(vec![ValueRef::first(y)]);
    match emit(&s, &opts(4, "m")) {
        Err(EmitError::Lower(LowerError::Interface(m))) => assert!(m.contains("input `a`"), "{m}"),
        other => panic!("{other:?}"),
    }
    // An unwritable output directory is an I/O error naming the path.
    let file = std::env::temp_dir().join(format!("strata-emit-c-file-{}", std::process::id()));
    std::fs::write(&file, b"x").unwrap();
    match write_c(g, &opts(4, "m"), &file.join("sub")) {
        Err(EmitError::Io { path, .. }) => assert!(path.contains("strata-emit-c-file")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn several_inputs_and_outputs_match_runtime() {
    let g = mnist::two_in_three_out(mnist());
    let n = 6;
    let images = rows(&mnist::fixture("images"), 0..n);
    let bias: Vec<f32> = (0..n * 10).map(|i| (i as f32 * 0.61).cos() * 3.0).collect();
    let bias_t = Tensor::from_f32(vec![n, 10], bias.clone()).unwrap();
    let k = 4;
    let out = emit(
        &g,
        &EmitOptions {
            planes: k,
            name: "model".into(),
            ..Default::default()
        },
    )
    .unwrap();
    // The header describes each port by position, with its ONNX name.
    for want in [
        "#define MODEL_NUM_INPUTS 2",
        "#define MODEL_NUM_OUTPUTS 3",
        "/* input 1: `bias` */",
        "#define MODEL_INPUT1_SIZE 10",
        "#define MODEL_OUTPUT0_SHAPE {1, 10}",
        "#define MODEL_OUTPUT2_SIZE 10",
        "int model_run(const float *const *inputs, float *const *outputs);",
    ] {
        assert!(
            out.header.contains(want),
            "missing {want:?} in\n{}",
            out.header
        );
    }
    assert!(!out.header.contains("MODEL_INPUT_SIZE"));
    let exe = build(&g, k, "multi");
    let (sizes_in, sizes_out) = port_sizes(&g);
    assert_eq!(sizes_in, [784, 10]);
    let x = images.as_f32().unwrap();
    let run_opts = RunOptions {
        planes: Some(k),
        path: QuantPath::Integer,
        ..Default::default()
    };
    let want = run_with(&g, &[images.clone(), bias_t], &run_opts).unwrap();
    assert_eq!(want.len(), 3);
    let check = |ppl: Option<&[u8]>, want: &[Tensor]| {
        let got = run_c(&exe, &interleave(&[x, &bias], &sizes_in, n), n, ppl).unwrap();
        let got = deinterleave(&got, &sizes_out, n).unwrap();
        for (j, (g, w)) in got.iter().zip(want).enumerate() {
            assert_eq!(bits(g), bits(w.as_f32().unwrap()), "output {j}, {ppl:?}");
        }
        got
    };
    let got = check(None, &want);
    // The third output is the second input, copied through.
    assert_eq!(bits(&got[2]), bits(&bias));
    // The logits really moved by the bias (not a copy of the plain model's output).
    let plain = run_with(mnist(), std::slice::from_ref(&images), &run_opts).unwrap();
    assert_ne!(bits(&got[0]), bits(plain[0].as_f32().unwrap()));
    // Per-layer plane counts through the array form too.
    let names = layer_names(&g);
    let ppl: Vec<u8> = (0..names.len()).map(|i| 2 + (i as u8 % 3)).collect();
    let per_layer: BTreeMap<String, u8> = names.into_iter().zip(ppl.iter().copied()).collect();
    let opts = RunOptions {
        per_layer,
        path: QuantPath::Integer,
        ..Default::default()
    };
    let want = run_with(
        &g,
        &[
            images.clone(),
            Tensor::from_f32(vec![n, 10], bias.clone()).unwrap(),
        ],
        &opts,
    )
    .unwrap();
    check(Some(&ppl), &want);
}

/// A bit-plane linear layer over several vectors per sample: the input's leading dimension
/// is fixed (4 vectors, no batch symbol), as after an LSTM whose steps a Gemm reads. The C
/// must apply the layer to every vector, not only the first (it once did).
#[test]
fn linear_layer_over_several_vectors_per_sample_matches_runtime() {
    let g = strata_test_support::graphs::sequence_gemm();
    let calib: Vec<f32> = (0..32 * 8).map(|i| (i as f32 * 0.37).cos() * 2.0).collect();
    let calib = Tensor::from_f32(vec![32, 8], calib).unwrap();
    let q = read_container(&mnist::container(g, calib)).unwrap().graph;
    assert_eq!(layer_names(&q), ["fc"], "the Gemm became a bit-plane layer");
    let xs: Vec<f32> = (0..32).map(|i| (i as f32 * 0.53).sin() * 1.5).collect();
    let xt = Tensor::from_f32(vec![4, 8], xs.clone()).unwrap();
    for k in [2, 8] {
        let opts = RunOptions {
            planes: Some(k),
            path: QuantPath::Integer,
            ..Default::default()
        };
        let want = run_with(&q, std::slice::from_ref(&xt), &opts).unwrap();
        let want = want[0].as_f32().unwrap();
        // The vectors differ, so a C that computed only the first one would not match.
        assert_ne!(bits(&want[..5]), bits(&want[15..20]));
        let exe = build(&q, k, &format!("steps-k{k}"));
        let got = run_c(&exe, &xs, 1, None).unwrap();
        assert_eq!(bits(&got), bits(want), "K = {k}");
    }
}
