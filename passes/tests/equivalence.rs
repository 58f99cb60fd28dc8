//! Semantic tests: a pass must not change what the graph computes. Each test builds a graph,
//! runs it on pseudo-random inputs with the reference runtime, applies the pass, and compares.

use strata_ir::ops::{BatchNorm, Conv, Gemm};
use strata_ir::{DType, Dim, Graph, NodeKind, Op, Shape, Tensor, TensorType, ValueRef};
use strata_passes::PassManager;

use strata_test_support::{batch_ty, values};

fn constant(g: &mut Graph, name: &str, shape: &[usize], seed: u64) -> ValueRef {
    let n = shape.iter().product();
    g.add_constant(
        name,
        Tensor::from_f32(shape.to_vec(), values(n, seed)).unwrap(),
    )
}

fn positive(g: &mut Graph, name: &str, n: usize, seed: u64) -> ValueRef {
    let v = values(n, seed).iter().map(|x| x.abs() + 0.5).collect();
    g.add_constant(name, Tensor::from_f32(vec![n], v).unwrap())
}

fn batchnorm(g: &mut Graph, x: ValueRef, c: usize, name: &str) -> ValueRef {
    let scale = constant(g, &format!("{name}.gamma"), &[c], 11);
    let bias = constant(g, &format!("{name}.beta"), &[c], 12);
    let mean = constant(g, &format!("{name}.mean"), &[c], 13);
    let var = positive(g, &format!("{name}.var"), c, 14);
    let id = g
        .add_op_inferred(
            name,
            Op::BatchNorm(BatchNorm { epsilon: 1e-5 }),
            &[x, scale, bias, mean, var],
            vec![name.to_string()],
        )
        .unwrap();
    ValueRef::first(id)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.as_f32()
        .unwrap()
        .iter()
        .zip(b.as_f32().unwrap())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn count_ops(g: &Graph, mnemonic: &str) -> usize {
    g.node_ids()
        .filter(|&id| matches!(&g.node(id).unwrap().kind, NodeKind::Op(op) if op.mnemonic() == mnemonic))
        .count()
}

fn conv_bn_graph(with_bias: bool) -> Graph {
    let mut g = Graph::new("conv_bn");
    let x = g.add_input("x", batch_ty(&[3, 6, 6]));
    let w = constant(&mut g, "w", &[4, 3, 3, 3], 1);
    let mut ins = vec![x, w];
    if with_bias {
        ins.push(constant(&mut g, "b", &[4], 2));
    }
    let conv = Op::Conv(Conv {
        kernel: vec![3, 3],
        strides: vec![1, 1],
        pads: vec![1, 1, 1, 1],
        dilations: vec![1, 1],
        group: 1,
        has_bias: with_bias,
    });
    let c = ValueRef::first(
        g.add_op_inferred("conv", conv, &ins, vec!["c".into()])
            .unwrap(),
    );
    let y = batchnorm(&mut g, c, 4, "bn");
    g.set_outputs(vec![y]);
    g
}

/// Runs `pipeline` on `g` with an empty context.
fn run_pipeline(g: &mut Graph, pipeline: &str) {
    PassManager::parse(pipeline)
        .unwrap()
        .run(g, &mut Default::default(), |_, _| {})
        .unwrap();
}

fn check_equivalent(mut g: Graph, pipeline: &str, input_shape: &[usize]) -> Graph {
    let n = input_shape.iter().product();
    let x = Tensor::from_f32(input_shape.to_vec(), values(n, 99)).unwrap();
    let before = strata_runtime::run(&g, std::slice::from_ref(&x)).unwrap();
    run_pipeline(&mut g, pipeline);
    let after = strata_runtime::run(&g, &[x]).unwrap();
    for (a, b) in before.iter().zip(&after) {
        let d = max_abs_diff(a, b);
        assert!(d < 1e-5, "{pipeline}: outputs differ by {d}");
    }
    g
}

#[test]
fn fold_batchnorm_into_conv_preserves_outputs() {
    for with_bias in [false, true] {
        let g = check_equivalent(
            conv_bn_graph(with_bias),
            "fold-batchnorm,eliminate-dead-code",
            &[2, 3, 6, 6],
        );
        assert_eq!(count_ops(&g, "batch_norm"), 0);
        assert_eq!(count_ops(&g, "conv"), 1);
        // Only the folded weight and bias remain as constants.
        assert_eq!(g.constants().count(), 2);
        assert_eq!(g.value(g.outputs()[0]).unwrap().name, "bn");
    }
}

#[test]
fn fold_batchnorm_into_gemm_preserves_outputs() {
    for (trans_b, has_c) in [(false, false), (true, true), (false, true)] {
        let mut g = Graph::new("gemm_bn");
        let x = g.add_input(
            "x",
            TensorType::new(DType::F32, Shape(vec![Dim::Batch, Dim::Known(5)])),
        );
        let b_shape: &[usize] = if trans_b { &[3, 5] } else { &[5, 3] };
        let b = constant(&mut g, "b", b_shape, 3);
        let mut ins = vec![x, b];
        if has_c {
            ins.push(constant(&mut g, "c", &[3], 4));
        }
        let gemm = Op::Gemm(Gemm {
            alpha: 0.5,
            beta: 2.0,
            trans_a: false,
            trans_b,
            has_c,
        });
        let y = ValueRef::first(
            g.add_op_inferred("fc", gemm, &ins, vec!["y".into()])
                .unwrap(),
        );
        let z = batchnorm(&mut g, y, 3, "bn");
        g.set_outputs(vec![z]);
        let g = check_equivalent(g, "fold-batchnorm,eliminate-dead-code", &[4, 5]);
        assert_eq!(
            count_ops(&g, "batch_norm"),
            0,
            "trans_b={trans_b} has_c={has_c}"
        );
    }
}

#[test]
fn fold_batchnorm_leaves_shared_producers_alone() {
    // The conv output also feeds a graph output: folding would change that output.
    let mut g = conv_bn_graph(true);
    let conv_out = g.node_inputs(g.outputs()[0].node)[0];
    let y = g.outputs()[0];
    g.set_outputs(vec![y, conv_out]);
    let g = check_equivalent(g, "fold-batchnorm", &[1, 3, 6, 6]);
    assert_eq!(count_ops(&g, "batch_norm"), 1);
}

#[test]
fn fold_constants_and_dce_remove_weight_preprocessing() {
    // y = x · transpose(W)  with W constant: the transpose folds away.
    let mut g = Graph::new("fold");
    let x = g.add_input(
        "x",
        TensorType::new(DType::F32, Shape(vec![Dim::Batch, Dim::Known(4)])),
    );
    let w = constant(&mut g, "w", &[3, 4], 5);
    let wt = ValueRef::first(
        g.add_op_inferred(
            "wt",
            Op::Transpose { perm: vec![1, 0] },
            &[w],
            vec!["wt".into()],
        )
        .unwrap(),
    );
    let y = ValueRef::first(
        g.add_op_inferred("mm", Op::MatMul, &[x, wt], vec!["y".into()])
            .unwrap(),
    );
    g.set_outputs(vec![y]);
    let g = check_equivalent(g, "fold-constants,eliminate-dead-code", &[2, 4]);
    assert_eq!(count_ops(&g, "transpose"), 0);
    let consts: Vec<_> = g.constants().map(|(_, t)| t.shape().to_vec()).collect();
    assert_eq!(consts, vec![vec![4, 3]]);
}

#[test]
fn fold_constants_folds_static_shape_of_non_constant() {
    let mut g = Graph::new("shape");
    let x = g.add_input("x", TensorType::known(DType::F32, &[2, 3, 4]));
    let s = ValueRef::first(
        g.add_op_inferred("s", Op::Shape { start: 1, end: 3 }, &[x], vec!["s".into()])
            .unwrap(),
    );
    g.set_outputs(vec![s]);
    run_pipeline(&mut g, "fold-constants");
    let t = g
        .constant_value(g.outputs()[0])
        .expect("shape folded to a constant");
    assert_eq!(t.as_i64().unwrap(), &[3, 4]);
}

#[test]
fn dead_code_keeps_unused_graph_inputs() {
    let mut g = Graph::new("dce");
    let x = g.add_input("x", TensorType::known(DType::F32, &[2]));
    let _unused = g.add_input("unused", TensorType::known(DType::F32, &[2]));
    let _dead = constant(&mut g, "dead", &[2], 1);
    let y = ValueRef::first(
        g.add_op_inferred(
            "r",
            Op::Unary(strata_ir::ops::UnaryOp::Relu),
            &[x],
            vec!["y".into()],
        )
        .unwrap(),
    );
    g.set_outputs(vec![y]);
    run_pipeline(&mut g, "eliminate-dead-code");
    assert_eq!(g.inputs().len(), 2);
    assert_eq!(g.constants().count(), 0);
    assert_eq!(g.node_count(), 3);
}

#[test]
fn pipeline_errors_name_the_problem() {
    match PassManager::parse("fold-constants,no-such-pass") {
        Err(strata_passes::PipelineError::UnknownPass { name, .. }) => {
            assert_eq!(name, "no-such-pass")
        }
        _ => panic!("unknown pass accepted"),
    }
    match PassManager::parse("fold-constants{max-elemnts=3}") {
        Err(strata_passes::PipelineError::UnknownOption { option, .. }) => {
            assert_eq!(option, "max-elemnts")
        }
        _ => panic!("misspelt option accepted"),
    }
    assert!(PassManager::parse("fold-constants{max-elements=-3}").is_err());
}

/// A graph of one ConvTranspose `[N, ci, spatial…] → y` with constant weights (and bias).
fn conv_transpose_graph(
    ci: usize,
    co: usize,
    spatial: &[usize],
    ct: strata_ir::ops::ConvTranspose,
    seed: u64,
) -> Graph {
    let mut g = Graph::new("ct");
    let x = g.add_input("x", batch_ty(&[&[ci], spatial].concat()));
    let mut wshape = vec![ci, co / ct.group];
    wshape.extend(&ct.kernel);
    let mut ins = vec![x, constant(&mut g, "w", &wshape, seed)];
    if ct.has_bias {
        ins.push(constant(&mut g, "b", &[co], seed + 1));
    }
    let y = g
        .add_op_inferred("up", Op::ConvTranspose(ct), &ins, vec!["y".into()])
        .unwrap();
    g.set_outputs(vec![ValueRef::first(y)]);
    g
}

#[test]
fn conv_transpose_becomes_a_conv_and_a_shuffle_with_the_same_outputs() {
    use strata_ir::ops::ConvTranspose;
    // (spatial, kernel, strides, pads, output_padding, group, bias): 1-, 2- and 3-D; kernel
    // below, equal to and above the stride (zero taps in the sub-kernels), asymmetric pads,
    // pads larger than the kernel overlap, output padding, groups.
    type Case = (
        &'static [usize],
        &'static [usize],
        &'static [usize],
        &'static [usize],
        &'static [usize],
        usize,
        bool,
    );
    let cases: &[Case] = &[
        (&[5], &[3], &[2], &[1, 1], &[1], 1, true),
        (&[4], &[1], &[3], &[0, 0], &[], 1, false),
        (&[4, 3], &[2, 2], &[2, 2], &[0, 0, 0, 0], &[], 1, true),
        (&[4, 5], &[3, 3], &[2, 2], &[1, 1, 1, 1], &[1, 1], 1, true),
        (&[3, 4], &[4, 4], &[2, 2], &[1, 1, 1, 1], &[], 2, true),
        (&[3, 3], &[3, 2], &[1, 3], &[0, 1, 2, 0], &[0, 2], 1, false),
        (&[5, 4], &[5, 3], &[3, 2], &[3, 0, 2, 1], &[1, 0], 2, true),
        (
            &[2, 3, 2],
            &[3, 2, 2],
            &[2, 2, 1],
            &[1, 0, 0, 0, 0, 1],
            &[],
            1,
            true,
        ),
    ];
    for (i, &(spatial, kernel, strides, pads, output_padding, group, has_bias)) in
        cases.iter().enumerate()
    {
        let (ci, co) = (2 * group, 3 * group);
        let ct = ConvTranspose {
            kernel: kernel.to_vec(),
            strides: strides.to_vec(),
            pads: pads.to_vec(),
            dilations: vec![1; kernel.len()],
            output_padding: if output_padding.is_empty() {
                vec![0; kernel.len()]
            } else {
                output_padding.to_vec()
            },
            group,
            has_bias,
        };
        let g = conv_transpose_graph(ci, co, spatial, ct, 40 + i as u64);
        let shape = [&[2, ci], spatial].concat();
        let g = check_equivalent(g, "conv-transpose-to-conv,eliminate-dead-code", &shape);
        assert_eq!(count_ops(&g, "conv_transpose"), 0, "case {i}");
        assert_eq!(count_ops(&g, "conv"), 1, "case {i}");
        // The output keeps its name; only the rewritten weight (and bias) are constants.
        assert_eq!(g.value(g.outputs()[0]).unwrap().name, "y", "case {i}");
        assert_eq!(g.constants().count(), 1 + has_bias as usize, "case {i}");
    }
}

#[test]
fn conv_transpose_with_dilation_or_a_sparse_stride_is_left_alone() {
    let ct = strata_ir::ops::ConvTranspose {
        kernel: vec![3, 3],
        strides: vec![2, 2],
        pads: vec![0; 4],
        dilations: vec![2, 2],
        output_padding: vec![0, 0],
        group: 1,
        has_bias: false,
    };
    let g = conv_transpose_graph(2, 3, &[3, 3], ct.clone(), 7);
    let g = check_equivalent(g, "conv-transpose-to-conv", &[1, 2, 3, 3]);
    assert_eq!(count_ops(&g, "conv_transpose"), 1);
    // Stride 5 over a 1×1 kernel: 25 phases of one tap each, 25× the weight. Left alone.
    let sparse = strata_ir::ops::ConvTranspose {
        kernel: vec![1, 1],
        strides: vec![5, 5],
        dilations: vec![1, 1],
        ..ct
    };
    let g = conv_transpose_graph(2, 3, &[3, 3], sparse, 8);
    let g = check_equivalent(g, "conv-transpose-to-conv", &[1, 2, 3, 3]);
    assert_eq!(count_ops(&g, "conv_transpose"), 1);
}

/// A MatMul on `[N, T, K]` or `[N, H, W, K]` with a constant `[K, R]` weight: Transposes
/// around a 1×1 Conv, the same outputs, the output's name kept; other MatMuls stay.
#[test]
fn matmul_on_sequences_becomes_a_conv() {
    for (i, dims) in [vec![2usize, 5, 6], vec![2, 3, 4, 6]]
        .into_iter()
        .enumerate()
    {
        let mut g = Graph::new("mm");
        let mut shape: Vec<Dim> = vec![Dim::Batch];
        shape.extend(dims[1..].iter().map(|&d| Dim::Known(d)));
        let x = g.add_input("x", TensorType::new(DType::F32, Shape(shape)));
        let w = g.add_constant(
            "w",
            Tensor::from_f32(vec![6, 4], values(24, 7 + i as u64)).unwrap(),
        );
        let y = g
            .add_op_inferred("mm", Op::MatMul, &[x, w], vec!["y".into()])
            .unwrap();
        g.set_outputs(vec![ValueRef::first(y)]);
        let g = check_equivalent(g, "matmul-to-conv,eliminate-dead-code", &dims);
        assert_eq!(count_ops(&g, "matmul"), 0, "{dims:?}");
        assert_eq!(count_ops(&g, "conv"), 1, "{dims:?}");
        assert_eq!(count_ops(&g, "transpose"), 2, "{dims:?}");
        assert_eq!(g.value(g.outputs()[0]).unwrap().name, "y");
    }
    // Rank 2 (vl-quantize's own) and rank 5 stay MatMuls, and so does a leading axis that is
    // neither the free batch nor 1 (`[T, N, C]` with the sequence first: a Conv over T
    // images, which the backends do not lower).
    for (dims, free) in [
        (vec![2usize, 6], true),
        (vec![2, 2, 2, 2, 6], true),
        (vec![16, 1, 6], false),
    ] {
        let mut g = Graph::new("mm");
        let lead = if free {
            Dim::Batch
        } else {
            Dim::Known(dims[0])
        };
        let mut shape: Vec<Dim> = vec![lead];
        shape.extend(dims[1..].iter().map(|&d| Dim::Known(d)));
        let x = g.add_input("x", TensorType::new(DType::F32, Shape(shape)));
        let w = g.add_constant("w", Tensor::from_f32(vec![6, 4], values(24, 9)).unwrap());
        let y = g
            .add_op_inferred("mm", Op::MatMul, &[x, w], vec!["y".into()])
            .unwrap();
        g.set_outputs(vec![ValueRef::first(y)]);
        let g = check_equivalent(g, "matmul-to-conv", &dims);
        assert_eq!(count_ops(&g, "matmul"), 1, "{dims:?}");
    }
}
