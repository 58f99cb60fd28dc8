//! Tests of `calibrate`, `vl-quantize`, `bitplane-rewrite` and the baselines on graphs built
//! here with seeded pseudo-random weights and inputs: values of the estimators and the fit,
//! accuracy ordering across plane counts and schemes, and every error path.

use std::collections::BTreeMap;
use std::sync::Arc;

use strata_ir::quant::{act_params, ActQuantizer};
use strata_ir::{Graph, NodeKind, Op, Tensor, TensorType, ValueRef};
use strata_passes::baselines::{dedicated_ptq, naive_truncation};
use strata_passes::{
    minmax_range, Calibration, CalibrationMethod, PassContext, PassError, PassManager,
    VlQuantization,
};
use strata_runtime::{run_with, QuantPath, RunOptions};

use strata_test_support::models::{images, small_cnn};
use strata_test_support::*;

fn run_at(g: &Graph, x: &Tensor, k: Option<u8>, path: QuantPath) -> Vec<f32> {
    let options = RunOptions {
        planes: k,
        path,
        ..RunOptions::default()
    };
    let out = run_with(g, std::slice::from_ref(x), &options).unwrap();
    out[0].as_f32().unwrap().to_vec()
}

/// (max, mean) |a − b|.
fn errors(a: &[f32], b: &[f32]) -> (f32, f32) {
    assert_eq!(a.len(), b.len());
    let mut max = 0f32;
    let mut sum = 0f64;
    for (x, y) in a.iter().zip(b) {
        let d = (x - y).abs();
        max = max.max(d);
        sum += d as f64;
    }
    (max, (sum / a.len() as f64) as f32)
}

/// Runs `pipeline` on `g`, which must succeed.
fn run_pipeline(pipeline: &str, g: &mut Graph, ctx: &mut PassContext) {
    PassManager::parse(pipeline)
        .unwrap()
        .run(g, ctx, |_, _| {})
        .unwrap();
}

/// Runs `pipeline` on `g`, which must fail; the error.
fn pipeline_err(pipeline: &str, g: &mut Graph, ctx: &mut PassContext) -> PassError {
    PassManager::parse(pipeline)
        .unwrap()
        .run(g, ctx, |_, _| {})
        .unwrap_err()
}

/// Graph `name` computing `y = x · w` (one MatMul node `mm`), `w` added by `weight`.
fn matmul_graph(name: &str, x: TensorType, weight: impl FnOnce(&mut Graph) -> ValueRef) -> Graph {
    let mut g = Graph::new(name);
    let x = g.add_input("x", x);
    let w = weight(&mut g);
    let y = op(&mut g, "mm", Op::MatMul, &[x, w]);
    g.set_outputs(vec![y]);
    g
}

/// The small CNN with bit-plane ops for `planes` (a plane list), calibrated on `calib`.
fn bitplane_cnn(planes: &str, calib: Tensor) -> Graph {
    let pipeline = format!("vl-quantize{{planes=\"{planes}\"}},bitplane-rewrite");
    quantize(&small_cnn(), &pipeline, calib).0
}

fn quantize(g: &Graph, pipeline: &str, calib: Tensor) -> (Graph, PassContext) {
    let mut g = g.clone();
    let mut ctx = PassContext::with_calibration(vec![calib]);
    run_pipeline(pipeline, &mut g, &mut ctx);
    (g, ctx)
}

#[test]
fn nested_model_improves_with_planes_and_beats_naive_truncation() {
    let g = small_cnn();
    let calib = images(256, 100);
    let test = images(200, 200);
    let fp32 = strata_runtime::run(&g, std::slice::from_ref(&test)).unwrap()[0]
        .as_f32()
        .unwrap()
        .to_vec();
    let (q, ctx) = quantize(
        &g,
        "calibrate{method=minmax},vl-quantize{bits=8,planes=2-8},bitplane-rewrite",
        calib,
    );
    let bitplane_ops = q
        .node_ids()
        .filter(|&id| matches!(q.node(id).unwrap().op(), Some(Op::Bitplane(_))))
        .count();
    assert_eq!(bitplane_ops, 4, "every layer is rewritten");
    let mut report = String::new();
    let mut previous = (f32::INFINITY, f32::INFINITY);
    for k in 2..=8u8 {
        let (nmax, nmean) = errors(&run_at(&q, &test, Some(k), QuantPath::Integer), &fp32);
        let naive = naive_truncation(&g, 8, k, &ctx).unwrap();
        let (tmax, tmean) = errors(&run_at(&naive, &test, None, QuantPath::Integer), &fp32);
        let dedicated = dedicated_ptq(&g, k, 8, &ctx).unwrap();
        let (dmax, dmean) = errors(&run_at(&dedicated, &test, None, QuantPath::Integer), &fp32);
        report.push_str(&format!(
            "k={k}: nested max {nmax:.4} mean {nmean:.4} | naive max {tmax:.4} mean {tmean:.4} \
             | dedicated max {dmax:.4} mean {dmean:.4}\n"
        ));
        assert!(nmean < previous.1, "mean error must fall with k:\n{report}");
        if k <= 4 {
            assert!(
                nmean < tmean,
                "nested beats naive (mean) at k={k}:\n{report}"
            );
            assert!(nmax < tmax, "nested beats naive (max) at k={k}:\n{report}");
        }
        previous = (nmax, nmean);
    }
    eprintln!("{report}");
    // At 8 planes the model is a plain 8-bit model: close to FP32.
    let out_scale = fp32.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert!(previous.1 < 0.02 * out_scale, "{report}");
}

#[test]
fn integer_and_float_paths_agree_on_the_rewritten_graph() {
    let q = bitplane_cnn("2,5,8", images(64, 11));
    let test = images(20, 12);
    for k in [2u8, 5, 8] {
        let int = run_at(&q, &test, Some(k), QuantPath::Integer);
        let flt = run_at(&q, &test, Some(k), QuantPath::Float);
        let scale = flt.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        let (max, _) = errors(&int, &flt);
        assert!(max <= 1e-4 * scale, "k={k}: paths differ by {max}");
    }
    // A plane count without a side table is a typed error naming it.
    let options = RunOptions {
        planes: Some(3),
        ..RunOptions::default()
    };
    let err = run_with(&q, &[test], &options).unwrap_err().to_string();
    assert!(err.contains('3'), "{err}");
}

#[test]
fn side_tables_match_a_reference_least_squares_fit() {
    // One Linear layer; the fit is recomputed here from the public formulas.
    let (n, k_in, r) = (300usize, 20usize, 3usize);
    let mut g = Graph::new("lin");
    let x = g.add_input("x", batch_ty(&[k_in]));
    let w = weight(&mut g, "w", &[k_in, r], 21);
    let y = op(&mut g, "mm", Op::MatMul, &[x, w]);
    g.set_outputs(vec![y]);
    let wt = g.constant_value(w).unwrap().as_f32().unwrap().to_vec();
    let xs = Tensor::from_f32(vec![n, k_in], values(n * k_in, 22)).unwrap();
    let xv = xs.as_f32().unwrap().to_vec();
    let (_, ctx) = quantize(&g, "vl-quantize{planes=\"3,8\"}", xs);
    let q = VlQuantization::from_context(&ctx).unwrap();
    assert_eq!(q.layers.len(), 1);
    let layer = &q.layers[0];
    assert_eq!((layer.rows, layer.cols), (r, k_in));
    // W [R, K] = Bᵀ.
    let w_rk: Vec<f32> = (0..r * k_in)
        .map(|i| wt[(i % k_in) * r + i / k_in])
        .collect();
    let (codes, scales) = strata_ir::quant::quantize_rows(&w_rk, r, k_in, 8).unwrap();
    assert_eq!(layer.scales, scales);
    let act = act_params(minmax_range(&xv).unwrap(), 8).unwrap();
    let quantizer = ActQuantizer::new(act, 8).unwrap();
    for table in &layer.tables {
        assert_eq!((table.act_scale, table.act_zero), (act.scale, act.zero));
        let qk = strata_ir::quant::prefix_codes(&layer.planes, r, k_in, table.k).unwrap();
        // The prefix property: planes 0..k give q_B >> (B − k).
        let shifted: Vec<i32> = codes.iter().map(|c| c >> (8 - table.k)).collect();
        assert_eq!(qk, shifted);
        for c in 0..r {
            let (mut aa, mut ab, mut bb, mut at, mut bt) = (0f64, 0f64, 0f64, 0f64, 0f64);
            for i in 0..n {
                let (mut a, mut b, mut t) = (0f64, 0f64, 0f64);
                for j in 0..k_in {
                    let xh = quantizer.fake_quant(xv[i * k_in + j]) as f64;
                    a += qk[c * k_in + j] as f64 * xh;
                    b += xh;
                    t += w_rk[c * k_in + j] as f64 * xh;
                }
                aa += a * a;
                ab += a * b;
                bb += b * b;
                at += a * t;
                bt += b * t;
            }
            let det = aa * bb - ab * ab;
            let alpha = (at * bb - bt * ab) / det;
            let beta = (aa * bt - ab * at) / det;
            let (ga, gb) = (table.alpha[c] as f64, table.beta[c] as f64);
            assert!(
                (ga - alpha).abs() <= 1e-3 * alpha.abs(),
                "k={} c={c}: {ga} vs {alpha}",
                table.k
            );
            assert!(
                (gb - beta).abs() <= 1e-3 * alpha.abs(),
                "k={} c={c}: {gb} vs {beta}",
                table.k
            );
            assert_eq!(table.bias[c], 0.0);
        }
    }
}

#[test]
fn calibrate_records_fp32_ranges_of_layer_inputs() {
    let g = small_cnn();
    let calib = images(40, 31);
    let (_, ctx) = quantize(&g, "calibrate{samples=30}", calib.clone());
    let c = Calibration::from_context(&ctx).unwrap();
    assert_eq!(c.method, CalibrationMethod::MinMax);
    assert_eq!(c.samples, 30);
    let ranges = c.fp32_ranges(&g, std::slice::from_ref(&calib)).unwrap();
    assert_eq!(
        ranges.keys().cloned().collect::<Vec<_>>(),
        ["conv1", "conv2", "fc", "mm"]
    );
    // conv1's input is the graph input: its range is that of the first 30 samples.
    let first30 = &calib.as_f32().unwrap()[..30 * 64];
    assert_eq!(ranges["conv1"], minmax_range(first30).unwrap());
    // The inputs of later layers are post-ReLU/pool: never negative.
    assert_eq!(ranges["conv2"].lo, 0.0);
    assert!(ranges["conv2"].hi > 0.0);

    let (_, ctx) = quantize(
        &g,
        "calibrate{method=percentile,percentile=99}",
        calib.clone(),
    );
    let p = Calibration::from_context(&ctx).unwrap();
    assert_eq!(p.method, CalibrationMethod::Percentile { percentile: 99.0 });
    let p_ranges = p.fp32_ranges(&g, std::slice::from_ref(&calib)).unwrap();
    assert!(p_ranges["conv1"].hi < ranges["conv1"].hi + 1e-6);
    let (_, ctx) = quantize(&g, "calibrate{method=mse}", calib);
    assert_eq!(
        Calibration::from_context(&ctx).unwrap().method,
        CalibrationMethod::Mse
    );
}

#[test]
fn rewrite_names_constants_and_keeps_value_names() {
    let q = bitplane_cnn("4,8", images(16, 41));
    let mut names = BTreeMap::new();
    for id in q.node_ids() {
        let n = q.node(id).unwrap();
        names.insert(n.outputs[0].name.clone(), n.kind.clone());
    }
    for layer in ["conv1", "conv2", "mm", "fc"] {
        for suffix in ["planes", "alpha", "beta", "bias", "act"] {
            assert!(
                matches!(
                    names.get(&format!("{layer}.{suffix}")),
                    Some(NodeKind::Constant(_))
                ),
                "{layer}.{suffix}"
            );
        }
        assert!(matches!(
            names.get(layer),
            Some(NodeKind::Op(Op::Bitplane(_)))
        ));
    }
    // The float weights are gone.
    for w in ["w1", "b1", "w2", "b2", "w3", "w4", "c4"] {
        assert!(!names.contains_key(w), "{w} should be removed");
    }
    // The text form round-trips.
    let text = strata_ir::text::print(&q);
    assert_eq!(strata_ir::text::parse(&text).unwrap(), q);

    // Names already taken get the next free suffix; the constants holding them are kept.
    let mut g = small_cnn();
    for taken in ["conv1.alpha", "conv1.alpha.1", "fc.act"] {
        g.add_constant(taken, Arc::new(rand_tensor(&[2], 5)));
    }
    let q = quantize(&g, "vl-quantize{planes=8},bitplane-rewrite", images(16, 41)).0;
    let node = |name: &str| {
        q.node_ids()
            .map(|id| q.node(id).unwrap())
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    };
    let inputs = |name: &str| -> Vec<String> {
        let id = q
            .node_ids()
            .find(|&id| q.node(id).unwrap().name == name)
            .unwrap();
        q.node_inputs(id)
            .into_iter()
            .map(|v| q.node(v.node).unwrap().name.clone())
            .collect()
    };
    assert!(matches!(node("conv1").kind, NodeKind::Op(Op::Bitplane(_))));
    assert_eq!(
        inputs("conv1")[1..],
        [
            "conv1.planes",
            "conv1.alpha.2",
            "conv1.beta",
            "conv1.bias",
            "conv1.act"
        ]
    );
    assert_eq!(inputs("fc")[5], "fc.act.1");
    for taken in ["conv1.alpha", "conv1.alpha.1", "fc.act"] {
        assert!(matches!(node(taken).kind, NodeKind::Constant(_)), "{taken}");
    }
}

#[test]
fn missing_or_bad_calibration_is_a_typed_error() {
    let g = small_cnn();
    for pipeline in ["calibrate", "vl-quantize"] {
        let mut h = g.clone();
        let err = pipeline_err(pipeline, &mut h, &mut PassContext::default());
        assert!(
            matches!(err, PassError::MissingCalibration { .. }),
            "{pipeline}: {err}"
        );
        assert!(err.to_string().contains("calibration"), "{err}");
    }
    let cases: Vec<(Vec<Tensor>, &str)> = vec![
        (vec![], "0 tensors given"),
        (vec![images(4, 1), images(4, 2)], "2 tensors given"),
        (
            vec![Tensor::from_i64(vec![4, 1, 8, 8], vec![0; 256]).unwrap()],
            "samples are i64",
        ),
        (
            vec![Tensor::from_f32(vec![4, 64], vec![0.0; 256]).unwrap()],
            "stacked along the leading axis",
        ),
        (vec![images(0, 1)], "no samples"),
    ];
    for (samples, needle) in cases {
        let mut h = g.clone();
        let mut ctx = PassContext::with_calibration(samples);
        let err = pipeline_err("vl-quantize", &mut h, &mut ctx);
        assert!(
            matches!(err, PassError::BadCalibration { .. }),
            "{needle}: {err}"
        );
        assert!(err.to_string().contains(needle), "{needle}: {err}");
    }
    // A graph with a fixed batch of 2 cannot take 5 samples.
    let mut fixed = matmul_graph("fixed", f32_ty(&[2, 3]), |g| weight(g, "w", &[3, 2], 1));
    let mut ctx = PassContext::with_calibration(vec![rand_tensor(&[5, 3], 3)]);
    let err = pipeline_err("calibrate", &mut fixed.clone(), &mut ctx);
    assert!(
        err.to_string().contains("fixed leading dimension 2"),
        "{err}"
    );
    // … but 4 samples run two at a time.
    let mut ctx = PassContext::with_calibration(vec![rand_tensor(&[4, 3], 3)]);
    run_pipeline(
        "vl-quantize{planes=8},bitplane-rewrite",
        &mut fixed,
        &mut ctx,
    );
}

#[test]
fn rewrite_without_or_against_a_changed_graph_fails_cleanly() {
    let g = small_cnn();
    let mut h = g.clone();
    let err = pipeline_err("bitplane-rewrite", &mut h, &mut PassContext::default());
    assert!(
        matches!(
            err,
            PassError::MissingResult {
                needs: "vl-quantize",
                ..
            }
        ),
        "{err}"
    );
    // Quantize, then apply the result to a graph where `mm` was renamed.
    let (_, mut ctx) = quantize(&g, "vl-quantize{planes=8}", images(8, 5));
    let mut renamed = g.clone();
    let id = renamed
        .node_ids()
        .find(|&id| renamed.node(id).unwrap().name == "mm")
        .unwrap();
    renamed.node_mut(id).unwrap().name = "other".to_string();
    let err = pipeline_err("bitplane-rewrite", &mut renamed, &mut ctx);
    match &err {
        PassError::Rewrite { node, .. } => assert_eq!(node, "mm"),
        other => panic!("{other}"),
    }
}

#[test]
fn baselines_validate_arguments_and_need_samples() {
    let g = small_cnn();
    let ctx = PassContext::with_calibration(vec![images(8, 1)]);
    for k in [0u8, 1, 9] {
        assert!(matches!(
            dedicated_ptq(&g, k, 8, &ctx),
            Err(PassError::BadArgument { .. })
        ));
    }
    assert!(matches!(
        naive_truncation(&g, 8, 0, &ctx),
        Err(PassError::BadArgument { .. })
    ));
    assert!(matches!(
        naive_truncation(&g, 4, 5, &ctx),
        Err(PassError::BadArgument { .. })
    ));
    assert!(matches!(
        naive_truncation(&g, 9, 2, &ctx),
        Err(PassError::BadArgument { .. })
    ));
    assert!(matches!(
        dedicated_ptq(&g, 4, 8, &PassContext::default()),
        Err(PassError::MissingCalibration { .. })
    ));
    // The dedicated 4-bit model has 4 planes and a single table for k = 4.
    let d = dedicated_ptq(&g, 4, 8, &ctx).unwrap();
    for id in d.node_ids() {
        if let Some(Op::Bitplane(b)) = d.node(id).unwrap().op() {
            assert_eq!(b.spec.bits, 4);
            assert_eq!(b.spec.plane_counts, vec![4]);
            let planes = d.node_inputs(id)[1];
            assert_eq!(d.constant_value(planes).unwrap().shape()[0], 4);
        }
    }
    // Naive truncation keeps all 8 planes but only k's table, with beta = 0.
    let n = naive_truncation(&g, 8, 3, &ctx).unwrap();
    for id in n.node_ids() {
        if let Some(Op::Bitplane(b)) = n.node(id).unwrap().op() {
            assert_eq!((b.spec.bits, b.spec.plane_counts.clone()), (8, vec![3]));
            let beta = n.constant_value(n.node_inputs(id)[3]).unwrap();
            assert!(beta.as_f32().unwrap().iter().all(|&v| v == 0.0));
        }
    }
}

#[test]
fn non_finite_weights_are_refused() {
    let nan_w = Tensor::from_f32(vec![2, 2], vec![1.0, f32::NAN, 0.5, 0.25]).unwrap();
    let g = matmul_graph("nan", batch_ty(&[2]), |g| g.add_constant("w", nan_w));
    let mut ctx = PassContext::with_calibration(vec![rand_tensor(&[3, 2], 1)]);
    let err = pipeline_err("vl-quantize", &mut g.clone(), &mut ctx);
    assert!(
        err.to_string().contains("`mm`") && err.to_string().contains("row 1, column 0"),
        "{err}"
    );
    assert!(matches!(
        dedicated_ptq(&g, 4, 8, &ctx),
        Err(PassError::Rewrite { .. })
    ));
}

#[test]
fn pipeline_options_are_checked() {
    for bad in [
        "calibrate{method=median}",
        "calibrate{percentile=10}",
        "calibrate{samples=0}",
        "vl-quantize{bits=9}",
        "vl-quantize{planes=\"0,2\"}",
        "vl-quantize{bits=4,planes=2-8}",
        "vl-quantize{act-bits=1}",
        "vl-quantize{method=minmax}",
        "bitplane-rewrite{planes=2}",
    ] {
        assert!(PassManager::parse(bad).is_err(), "{bad}");
    }
}

/// `act-bits=planes`: every layer's spec carries `max(k, 2)` activation bits per plane count,
/// each count's activation table was calibrated for that width (its quantizer accepts it and
/// the zero point lies in the k-bit range), and the integer path at k only sees `2^k` input
/// codes; dedicated PTQ at the same activation width quantizes alike.
#[test]
fn wkak_calibrates_each_plane_count_at_its_own_width() {
    let calib = images(16, 5);
    let (g, ctx) = quantize(
        &small_cnn(),
        "calibrate{method=minmax},vl-quantize{planes=\"2,3,4,8\",act-bits=planes},bitplane-rewrite",
        calib.clone(),
    );
    let vlq = VlQuantization::from_context(&ctx).unwrap();
    assert_eq!(vlq.act_bits, strata_ir::quant::ActBits::Planes);
    let mut layers = 0;
    for id in g.node_ids() {
        let n = g.node(id).unwrap();
        let NodeKind::Op(Op::Bitplane(b)) = &n.kind else {
            continue;
        };
        layers += 1;
        assert_eq!(b.spec.act_bits, 8);
        assert_eq!(b.spec.act_bits_k, [2, 3, 4, 8], "{}", n.name);
        let weights: Vec<&Tensor> = g.node_inputs(id)[1..]
            .iter()
            .map(|&v| g.constant_value(v).unwrap().as_ref())
            .collect();
        for k in [2u8, 3, 4, 8] {
            let r = b.resolve(&weights, k).unwrap();
            assert_eq!(r.act.bits(), k);
            let zero = r.act.params().zero;
            let half = (1i32 << (k - 1)) as f32;
            assert!(
                (-half..half).contains(&zero),
                "{} k={k}: zero {zero}",
                n.name
            );
        }
    }
    assert!(layers >= 2);
    // The nested model still works at every k, and k = 2 with 2-bit activations is worse
    // than k = 8 with 8-bit ones (relative to FP32).
    let fp = run_at(&small_cnn(), &calib, None, QuantPath::Integer);
    let e2 = errors(&run_at(&g, &calib, Some(2), QuantPath::Integer), &fp).1;
    let e8 = errors(&run_at(&g, &calib, Some(8), QuantPath::Integer), &fp).1;
    assert!(e8 < e2, "k=8 error {e8} vs k=2 error {e2}");
    // Integer and float paths agree at A = k too.
    let i3 = run_at(&g, &calib, Some(3), QuantPath::Integer);
    let f3 = run_at(&g, &calib, Some(3), QuantPath::Float);
    let (max, _) = errors(&i3, &f3);
    assert!(
        max <= 1e-3 * i3.iter().fold(1e-3f32, |m, v| m.max(v.abs())),
        "{max}"
    );
    // Dedicated PTQ at k = 3 with 3-bit activations.
    let d = dedicated_ptq(&small_cnn(), 3, 3, &ctx).unwrap();
    let specs: Vec<_> = d
        .node_ids()
        .filter_map(|id| match &d.node(id).unwrap().kind {
            NodeKind::Op(Op::Bitplane(b)) => Some(b.spec.clone()),
            _ => None,
        })
        .collect();
    assert!(!specs.is_empty());
    assert!(
        specs.iter().all(|s| s.act_bits_of(3) == Some(3)),
        "{specs:?}"
    );
    assert!(dedicated_ptq(&small_cnn(), 3, 1, &ctx).is_err());
}
