//! `strata compile --qat-steps`: the `once-qat` pass inside the compile pipeline produces
//! byte-identical containers for the same seed, and its options are validated.

use strata_test_support::{batch_ty, conv, f32c, op, values};

use std::collections::BTreeMap;

use strata_compiler::compile::{
    compile_to_container, compile_with_context, CompileError, CompileOptions,
};
use strata_ir::ops::{Gemm, UnaryOp};
use strata_ir::{Graph, Op, Tensor};
use strata_passes::OnceQatReport;

/// conv(1→4, 3×3, pad 1) → relu → flatten → gemm(144→10).
fn net() -> Graph {
    let mut g = Graph::new("qat_net");
    let x = g.add_input("x", batch_ty(&[1, 6, 6]));
    let scaled = |n: usize, seed: u64, gain: f32| -> Vec<f32> {
        values(n, seed).into_iter().map(|v| v * gain).collect()
    };
    let (w1, b1) = (scaled(36, 1, 0.6), values(4, 2));
    let (w2, c2) = (scaled(1440, 3, 0.15), values(10, 4));
    let w1 = f32c(&mut g, "w1", &[4, 1, 3, 3], |i| w1[i]);
    let b1 = f32c(&mut g, "b1", &[4], |i| b1[i]);
    let c = op(&mut g, "conv", conv(3, 1, 1), &[x, w1, b1]);
    let r = op(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[c]);
    let f = op(&mut g, "flat", Op::Flatten { axis: 1 }, &[r]);
    let w2 = f32c(&mut g, "w2", &[10, 144], |i| w2[i]);
    let c2 = f32c(&mut g, "c2", &[10], |i| c2[i]);
    let gemm = Op::Gemm(Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: true,
        has_c: true,
    });
    let y = op(&mut g, "y", gemm, &[f, w2, c2]);
    g.set_outputs(vec![y]);
    g
}

fn calib() -> Tensor {
    let v = values(48 * 36, 9)
        .into_iter()
        .map(|v| v.abs() * 4.0)
        .collect();
    Tensor::from_f32(vec![48, 1, 6, 6], v).unwrap()
}

fn options(steps: usize, seed: u64) -> CompileOptions {
    CompileOptions {
        planes: vec![2, 4, 8],
        calib_method: strata_passes::CalibrationKind::MinMax,
        qat_steps: steps,
        qat_batch: 16,
        seed,
        ..CompileOptions::default()
    }
}

fn compile(o: &CompileOptions) -> Result<Vec<u8>, CompileError> {
    compile_to_container(net(), vec![calib()], o, BTreeMap::new(), |_| {})
}

#[test]
fn same_seed_gives_byte_identical_containers() {
    let a = compile(&options(4, 3)).unwrap();
    let b = compile(&options(4, 3)).unwrap();
    let c = compile(&options(4, 4)).unwrap();
    let plain = compile(&options(0, 3)).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_ne!(a, plain);
}

#[test]
fn pipeline_names_once_qat_only_when_training() {
    let p = options(4, 3).pipeline();
    assert!(
        p.contains("vl-quantize{bits=8,planes=\"2,4,8\",act-bits=8},once-qat{steps=4,batch=16,lr=0.001,seed=3},bitplane-rewrite"),
        "{p}"
    );
    assert!(!options(0, 3).pipeline().contains("once-qat"));
    let extra = CompileOptions {
        qat_options: "weight-lr=0.05, tables-only=0.5".to_string(),
        ..options(4, 3)
    };
    assert!(
        extra
            .pipeline()
            .contains("once-qat{steps=4,batch=16,lr=0.001,seed=3,weight-lr=0.05, tables-only=0.5}"),
        "{}",
        extra.pipeline()
    );
}

#[test]
fn qat_options_are_validated() {
    for o in [
        CompileOptions {
            qat_batch: 0,
            ..options(2, 0)
        },
        CompileOptions {
            qat_lr: -1.0,
            ..options(2, 0)
        },
        CompileOptions {
            qat_lr: f32::NAN,
            ..options(2, 0)
        },
    ] {
        assert!(
            matches!(compile(&o), Err(CompileError::Options(_))),
            "{o:?}"
        );
    }
    // Extra pass options go through the pipeline parser: a misspelt one is named.
    let bogus = CompileOptions {
        qat_options: "weight-lr=0.05,tables_only=0.5".to_string(),
        ..options(2, 0)
    };
    let err = compile(&bogus).unwrap_err();
    assert!(
        matches!(err, CompileError::Pipeline(_)) && err.to_string().contains("tables_only"),
        "{err}"
    );
}

#[test]
fn compile_reports_what_once_qat_did() {
    let (_, ctx) = compile_with_context(
        net(),
        vec![calib()],
        &options(4, 3),
        BTreeMap::new(),
        |_| {},
    )
    .unwrap();
    let r = OnceQatReport::from_context(&ctx).unwrap();
    assert_eq!(r.plane_counts, vec![2, 4, 8]);
    assert_eq!((r.steps, r.batch, r.sample_passes), (4, 16, 4 * 16 * 3));
    // 48 samples, 10 % held out.
    assert_eq!((r.train_samples, r.holdout_samples), (44, 4));
    // conv 4·9 MACs × 36 positions + gemm 10·144, forward + two gradients, 2 FLOPs each.
    let macs = (4 * 9 * 36 + 10 * 144) as f64;
    assert_eq!(r.flops, 6.0 * macs * r.sample_passes as f64);
    for (l0, l1) in r.start_loss.iter().zip(&r.final_loss) {
        assert!(l1 <= l0, "{}", r.summary());
    }
    assert!(r.summary().contains("k=8"), "{}", r.summary());
}

/// The residual network (`models/fmnist_resnet8.onnx`): once-QAT trains through the skip
/// connections' Add, GlobalAveragePool, Flatten and Gemm; every convolution, the shortcut
/// ones included, becomes a bit-plane layer; and a few steps already lower every plane
/// count's held-out loss, k = 2 the most.
#[test]
fn once_qat_trains_a_residual_network() {
    use strata_test_support::fmnist;
    let options = CompileOptions {
        planes: vec![2, 4, 8],
        qat_steps: 6,
        qat_batch: 8,
        qat_options: "evals=3".into(),
        ..CompileOptions::default()
    };
    let (bytes, ctx) = compile_with_context(
        fmnist::fp32(),
        vec![fmnist::fixture("calib")],
        &options,
        BTreeMap::new(),
        |_| {},
    )
    .unwrap();
    let graph = strata_ir::container::read_container(&bytes).unwrap().graph;
    let count = |mnemonic: &str| {
        graph
            .node_ids()
            .filter(|&id| {
                let op = graph.node(id).unwrap().op();
                op.is_some_and(|op| op.mnemonic() == mnemonic)
            })
            .count()
    };
    assert_eq!(
        (
            count("bitplane_conv"),
            count("bitplane_linear"),
            count("add")
        ),
        (9, 1, 3)
    );
    let r = OnceQatReport::from_context(&ctx).unwrap();
    assert_eq!(r.plane_counts, vec![2, 4, 8]);
    assert!(
        r.final_loss[0] < r.start_loss[0],
        "k = 2 must improve: {}",
        r.summary()
    );
    for (l0, l1) in r.start_loss.iter().zip(&r.final_loss) {
        assert!(l1 <= l0, "{}", r.summary());
    }
}
