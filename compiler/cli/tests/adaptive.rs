//! Adaptive precision: the fitted policy is deterministic and stored in the container, a
//! stripped file's policy only asks for planes it has, the runtime's cascade gives every
//! sample exactly the output of the stage that answered it, impossible targets are refused,
//! and the CLI (`adapt`, `run --adaptive`, `eval --adaptive`) carries it end to end.

mod new_ops;

use strata_test_support::{mnist, rows};

strata_test_support::strata_cli!();

use std::sync::OnceLock;

use strata_compiler::adaptive::{adapt_container, fit, AdaptiveError, AdaptiveTarget};
use strata_ir::adaptive::AdaptivePolicy;
use strata_ir::container::{read_container, strip_container};
use strata_runtime::{run_with, QuantPath, RunOptions, Session};

/// The bundled MNIST CNN compiled on its 256 calibration images.
fn model() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| mnist::container(mnist::fp32(), mnist::fixture("calib")))
}

/// The model with a policy fitted to `budget=0.5` on the calibration images.
fn adapted() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let target = "budget=0.5".parse().unwrap();
        adapt_container(model(), &mnist::fixture("calib"), target)
            .unwrap()
            .0
    })
}

#[test]
fn the_policy_is_deterministic_and_stored() {
    let calib = mnist::fixture("calib");
    let again = adapt_container(model(), &calib, "budget=0.5".parse().unwrap())
        .unwrap()
        .0;
    assert_eq!(again, adapted(), "the same inputs must give the same file");
    let loaded = read_container(adapted()).unwrap();
    let policy = loaded.adaptive.expect("the policy is stored");
    assert!((1..=3).contains(&policy.stages.len()), "{policy:?}");
    assert_eq!(policy.target, "budget=0.5");
    assert!(loaded.metadata.contains_key("adaptive_fit"));
    // The fit on the same samples, in memory, is the stored policy.
    let original = read_container(model()).unwrap();
    let (fitted, report) = fit(
        &original.graph,
        original.available_planes,
        &calib,
        AdaptiveTarget::Budget(0.5),
    )
    .unwrap();
    assert_eq!(fitted, policy);
    assert!(report.cost <= 0.5, "{report:?}");
    // Everything else survived the rewrite.
    assert_eq!(loaded.graph, original.graph);
    assert_eq!(loaded.available_planes, original.available_planes);
}

#[test]
fn a_stripped_file_keeps_a_policy_over_its_planes() {
    for planes in [5u8, 3, 2] {
        let cut = strip_container(adapted(), planes).unwrap();
        let loaded = read_container(cut).unwrap();
        let policy = loaded
            .adaptive
            .as_ref()
            .unwrap()
            .effective(&loaded.graph, loaded.available_planes)
            .unwrap();
        assert!(!policy.stages.is_empty());
        for stage in &policy.stages {
            for (node, &k) in &stage.layer_planes {
                assert!(
                    k <= planes,
                    "stage asks {node}={k} from a {planes}-plane file"
                );
            }
        }
        // Consecutive stages never repeat the same counts.
        for pair in policy.stages.windows(2) {
            assert_ne!(pair[0].layer_planes, pair[1].layer_planes);
        }
        // And it runs.
        let images = rows(&mnist::fixture("images"), 0..16);
        let run = Session::new(&loaded.graph)
            .run_adaptive(&images, &policy)
            .unwrap();
        assert_eq!(run.output.shape(), &[16, 10]);
    }
}

/// Every sample's output is, bit for bit, what its answering stage computes for it alone,
/// that stage accepted it, and every earlier stage passed it on.
#[test]
fn the_cascade_answers_each_sample_with_its_stage() {
    let loaded = read_container(adapted()).unwrap();
    let policy: AdaptivePolicy = loaded.adaptive.clone().unwrap();
    let images = rows(&mnist::fixture("images"), 0..120);
    let run = Session::new(&loaded.graph)
        .run_adaptive(&images, &policy)
        .unwrap();
    assert_eq!(run.ran[0], 120);
    let out = run.output.as_f32().unwrap();
    let mut escalated = 0;
    for i in 0..120 {
        let x = rows(&images, i..i + 1);
        let answered = run.stages[i] as usize;
        escalated += usize::from(answered > 0);
        for (s, stage) in policy.stages.iter().enumerate().take(answered + 1) {
            let options = RunOptions {
                planes: None,
                per_layer: stage.layer_planes.clone(),
                path: QuantPath::Integer,
            };
            let y = run_with(&loaded.graph, std::slice::from_ref(&x), &options).unwrap();
            let y = y[0].as_f32().unwrap();
            if s == answered {
                let got: Vec<u32> = out[i * 10..(i + 1) * 10]
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                let want: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
                assert_eq!(got, want, "sample {i}, stage {s}");
                assert!(policy.accepts(s, y), "sample {i} answered by stage {s}");
            } else {
                assert!(!policy.accepts(s, y), "sample {i} passed stage {s}");
            }
        }
    }
    // The test only means something if some samples escalate and some do not.
    if policy.stages.len() > 1 {
        assert!(
            escalated > 0 && escalated < 120,
            "{escalated} of 120 escalated"
        );
        assert_eq!(run.ran[1], escalated);
    }
}

/// A policy naming a layer that is not a bit-plane layer, a count without a side table, a
/// bad margin or no stage at all is refused when written, naming the stage and the layer.
#[test]
fn bad_policies_are_refused_by_name() {
    use strata_ir::adaptive::AdaptiveStage;
    use strata_ir::container::{write_container, ContainerOptions};
    let loaded = read_container(model()).unwrap();
    let layer = loaded
        .graph
        .node_ids()
        .filter_map(|id| loaded.graph.node(id).ok())
        .find(|n| matches!(n.kind, strata_ir::NodeKind::Op(strata_ir::Op::Bitplane(_))))
        .expect("the model has bit-plane layers")
        .name
        .clone();
    let stage = |node: &str, k: u8, m: f32| AdaptiveStage {
        layer_planes: [(node.to_string(), k)].into(),
        min_margin: m,
    };
    let cases: Vec<(Vec<AdaptiveStage>, &str)> = vec![
        (vec![], "0 stages"),
        (
            vec![stage("nope", 2, 1.0), stage(&layer, 8, 0.0)],
            "stage 0",
        ),
        (
            vec![stage(&layer, 2, 1.0), stage(&layer, 1, 0.0)],
            "stage 1",
        ),
        (
            vec![stage(&layer, 2, -1.0), stage(&layer, 8, 0.0)],
            "margin -1",
        ),
        (
            vec![stage(&layer, 2, f32::NAN), stage(&layer, 8, 0.0)],
            "margin NaN",
        ),
        (vec![stage(&layer, 8, 0.0); 9], "9 stages"),
    ];
    for (stages, says) in cases {
        let options = ContainerOptions {
            adaptive: Some(AdaptivePolicy {
                stages,
                target: "budget=0.5".into(),
            }),
            ..ContainerOptions::default()
        };
        let e = write_container(&loaded.graph, &options).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("adaptive policy") && msg.contains(says),
            "{msg}"
        );
    }
}

#[test]
fn fitting_refuses_impossible_targets() {
    let e = adapt_container(
        model(),
        &mnist::fixture("calib"),
        AdaptiveTarget::Budget(0.1),
    )
    .unwrap_err();
    assert!(matches!(e, AdaptiveError::Impossible { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.contains("budget=0.1") && msg.contains("already costs"),
        "{msg}"
    );
    for bad in ["budget=0", "max-drop=-1", "fast=1"] {
        let e = bad.parse::<AdaptiveTarget>().unwrap_err();
        assert!(e.to_string().contains(bad), "{e}");
    }
    // No samples.
    let none = rows(&mnist::fixture("calib"), 0..0);
    let e = adapt_container(model(), &none, AdaptiveTarget::Budget(0.5)).unwrap_err();
    assert!(matches!(e, AdaptiveError::Samples(_)), "{e:?}");
}

#[test]
fn cli_adapt_run_and_eval() {
    let dir = std::env::temp_dir().join(format!("strata-adaptive-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let plain = dir.join("m.strata");
    std::fs::write(&plain, model()).unwrap();
    let fixtures = strata_test_support::repo_root().join("tests/fixtures/mnist");
    let (calib, images, labels) = (
        fixtures.join("calib.npy"),
        fixtures.join("images.npy"),
        fixtures.join("labels.npy"),
    );
    let s = |p: &std::path::Path| p.display().to_string();
    let adapted_path = dir.join("a.strata");
    let err = fails(&[
        "adapt",
        &s(&plain),
        "--adaptive",
        "budget=0.1",
        "--data",
        &s(&calib),
        "-o",
        &s(&adapted_path),
    ]);
    assert!(err.contains("cannot be met"), "{err}");
    assert!(!adapted_path.exists(), "a refused fit writes nothing");
    ok(&[
        "adapt",
        &s(&plain),
        "--adaptive",
        "budget=0.5",
        "--data",
        &s(&calib),
        "-o",
        &s(&adapted_path),
    ]);
    assert_eq!(std::fs::read(&adapted_path).unwrap(), adapted());
    let shown = ok(&["inspect", &s(&adapted_path)]);
    assert!(shown.contains("adaptive policy (budget=0.5)"), "{shown}");
    assert!(
        shown.contains("stage 0: ") && shown.contains("always answers"),
        "{shown}"
    );
    let json = ok(&["inspect", &s(&adapted_path), "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["container"]["adaptive"]["target"], "budget=0.5", "{json}");
    let out = dir.join("out");
    let printed = ok(&[
        "run",
        &s(&adapted_path),
        "--adaptive",
        "--input",
        &s(&images),
        "--labels",
        &s(&labels),
        "--out",
        &s(&out),
    ]);
    assert!(printed.contains("top-1: "), "{printed}");
    // `run --adaptive` wrote the cascade's outputs.
    let loaded = read_container(adapted()).unwrap();
    let x = mnist::fixture("images");
    let want = Session::new(&loaded.graph)
        .run_adaptive(&x, loaded.adaptive.as_ref().unwrap())
        .unwrap()
        .output;
    let got = strata_compiler::npy::read_npy(&out.join("output_0.npy")).unwrap();
    assert_eq!(got, want);
    // A file without a policy says how to get one.
    let err = fails(&[
        "run",
        &s(&plain),
        "--adaptive",
        "--input",
        &s(&images),
        "--out",
        &s(&out),
    ]);
    assert!(err.contains("strata adapt"), "{err}");
    // eval --adaptive measures the integer path, and says so before evaluating anything.
    let err = fails(&[
        "eval",
        &s(&adapted_path),
        "--data",
        &s(&images),
        "--labels",
        &s(&labels),
        "--adaptive",
        "--path",
        "float",
    ]);
    assert!(err.contains("integer path"), "{err}");
    // eval --adaptive: uniform rows, the stored policy and a fitted one, with costs.
    let svg = dir.join("pareto.svg");
    let json = ok(&[
        "eval",
        &s(&adapted_path),
        "--data",
        &s(&images),
        "--labels",
        &s(&labels),
        "--adaptive",
        "--fit",
        "max-drop=1",
        "--fit-data",
        &s(&calib),
        "--json",
        "--plot",
        &s(&svg),
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rows = v["cost"]["rows"].as_array().unwrap();
    let adaptive: Vec<_> = rows.iter().filter(|r| r["method"] == "adaptive").collect();
    assert_eq!(adaptive.len(), 2, "{json}");
    let uniform: Vec<_> = rows.iter().filter(|r| r["method"] == "uniform").collect();
    assert_eq!(uniform.len(), 7, "{json}");
    for r in rows {
        let b = r["bit_ops"].as_f64().unwrap();
        assert!(b > 0.0 && b <= 1.0 + 1e-9, "{r}");
    }
    // k=2 costs a quarter of k=8 (both at 8-bit activations).
    let k2 = uniform.iter().find(|r| r["label"] == "k=2").unwrap();
    assert!(
        (k2["bit_ops"].as_f64().unwrap() - 0.25).abs() < 1e-9,
        "{k2}"
    );
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("adaptive") && svg.contains("bit-operations"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The C driver of `PREFIX_run_adaptive`: `main IN OUT N` reads `N` samples of raw f32,
/// writes each output followed by the answering stage and the stages run (as f32).
fn adaptive_main(input: usize, output: usize) -> String {
    format!(
        r#"#include <stdio.h>
#include <stdlib.h>
#include "model.h"
static float in0[{input}];
static float out0[{output}];
int main(int argc, char **argv)
{{
    FILE *fi, *fo;
    long n, i;
    model_adaptive_stats st;
    if (argc < 4) return 2;
    n = atol(argv[3]);
    fi = fopen(argv[1], "rb");
    fo = fopen(argv[2], "wb");
    if (!fi || !fo) return 3;
    for (i = 0; i < n; ++i) {{
        float tail[2];
        int rc;
        if (fread(in0, sizeof(float), {input}, fi) != {input}) return 4;
        rc = model_run_adaptive(in0, out0, &st);
        if (rc != 0) return 10 + rc;
        fwrite(out0, sizeof(float), {output}, fo);
        tail[0] = (float)st.stage;
        tail[1] = (float)st.stages_run;
        fwrite(tail, sizeof(float), 2, fo);
    }}
    fclose(fi);
    fclose(fo);
    return 0;
}}
"#
    )
}

/// Emits `graph` with `policy` for `target`, builds it with the adaptive driver and checks
/// every sample of `x` against the runtime's cascade: the same output bits, the same stage.
/// Returns how many distinct stages answered.
fn c_matches_runtime(
    graph: &strata_ir::Graph,
    policy: &AdaptivePolicy,
    x: &strata_ir::Tensor,
    target: strata_compiler::backend::c::Target,
    tag: &str,
) -> usize {
    use strata_compiler::backend::c::{write_c, EmitOptions};
    use strata_test_support::c::{build_with_driver, port_sizes};
    let dir = std::env::temp_dir().join(format!("strata-adaptive-c-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let planes = read_planes(graph);
    let options = EmitOptions {
        planes,
        name: "model".into(),
        target,
        adaptive: Some(policy.clone()),
        ..Default::default()
    };
    write_c(graph, &options, &dir).unwrap();
    let (ins, outs) = port_sizes(graph);
    std::fs::write(dir.join("main.c"), adaptive_main(ins[0], outs[0])).unwrap();
    let march: &[&str] = if target == strata_compiler::backend::c::Target::X86_64V3 {
        &["-march=x86-64-v3"]
    } else {
        &[]
    };
    let exe = build_with_driver(&dir, march);
    let seen = cascade_matches_runtime(&exe, graph, policy, x, tag);
    let _ = std::fs::remove_dir_all(&dir);
    seen
}

/// Runs the adaptive driver `exe` on every sample of `x` and checks it against the runtime's
/// cascade: the same output bits, the same stage, the stages run. Returns how many distinct
/// stages answered.
fn cascade_matches_runtime(
    exe: &std::path::Path,
    graph: &strata_ir::Graph,
    policy: &AdaptivePolicy,
    x: &strata_ir::Tensor,
    tag: &str,
) -> usize {
    use strata_test_support::c::{port_sizes, run_c};
    let (_, outs) = port_sizes(graph);
    let n = x.shape()[0];
    let got = run_c(exe, x.as_f32().unwrap(), n, None).unwrap();
    let want = Session::new(graph).run_adaptive(x, policy).unwrap();
    let out = want.output.as_f32().unwrap();
    let per = outs[0];
    let mut stages_seen = std::collections::BTreeSet::new();
    for i in 0..n {
        let row = &got[i * (per + 2)..(i + 1) * (per + 2)];
        let expected: Vec<u32> = out[i * per..(i + 1) * per]
            .iter()
            .map(|v| v.to_bits())
            .collect();
        let c_out: Vec<u32> = row[..per].iter().map(|v| v.to_bits()).collect();
        assert_eq!(c_out, expected, "{tag}: sample {i}");
        assert_eq!(row[per] as u8, want.stages[i], "{tag}: stage of sample {i}");
        assert_eq!(
            row[per + 1] as u8,
            want.stages[i] + 1,
            "{tag}: stages run for sample {i}"
        );
        stages_seen.insert(want.stages[i]);
    }
    stages_seen.len()
}

/// `PREFIX_run_adaptive` of the MLIR backend's object for this machine, linked with the same
/// driver: the runtime's cascade, bit for bit, on the MNIST CNN (its fitted policy and a
/// policy escalating half the samples at each gate) and the small net.
#[cfg(feature = "mlir")]
#[test]
fn mlir_run_adaptive_matches_the_runtime() {
    use strata_compiler::backend::mlir::{write_object, Dot, MlirOptions, Target};
    use strata_test_support::c::port_sizes;
    let loaded = read_container(adapted()).unwrap();
    let images = rows(&mnist::fixture("images"), 0..64);
    let fitted = loaded.adaptive.clone().unwrap();
    let halves = median_policy(&loaded.graph, &images);
    let (small, small_x, small_policy) = small_net_with_policy();
    for (graph, policy, x, tag, spread) in [
        (&loaded.graph, &fitted, &images, "mnist-fitted", false),
        (&loaded.graph, &halves, &images, "mnist-halves", true),
        (&small, &small_policy, &small_x, "small", true),
    ] {
        let dir =
            std::env::temp_dir().join(format!("strata-adaptive-mlir-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let options = MlirOptions {
            planes: read_planes(graph),
            name: "model".into(),
            dot: Dot::host(),
            adaptive: Some(policy.clone()),
            ..Default::default()
        };
        write_object(graph, &options, &Target::default(), &dir).unwrap();
        let (ins, outs) = port_sizes(graph);
        std::fs::write(dir.join("main.c"), adaptive_main(ins[0], outs[0])).unwrap();
        let exe = strata_test_support::c::link_object(strata_test_support::c::gcc(), &[], &dir);
        let seen = cascade_matches_runtime(&exe, graph, policy, x, tag);
        if spread {
            assert_eq!(seen, 3, "{tag}: stages answering");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The planes the weights of `graph` hold (the largest count of any layer).
fn read_planes(graph: &strata_ir::Graph) -> u8 {
    graph
        .node_ids()
        .filter_map(|id| match &graph.node(id).ok()?.kind {
            strata_ir::NodeKind::Op(strata_ir::Op::Bitplane(b)) => {
                b.spec.plane_counts.last().copied()
            }
            _ => None,
        })
        .max()
        .unwrap()
}

/// The small net with every convolution form, 40 inputs and its median-gate policy.
fn small_net_with_policy() -> (strata_ir::Graph, strata_ir::Tensor, AdaptivePolicy) {
    let small = read_container(&mnist::container(
        new_ops::nets::small_net(),
        strata_ir::Tensor::from_f32(vec![24, 3, 9, 9], strata_test_support::values(24 * 243, 99))
            .unwrap(),
    ))
    .unwrap()
    .graph;
    let x =
        strata_ir::Tensor::from_f32(vec![40, 3, 9, 9], strata_test_support::values(40 * 243, 7))
            .unwrap();
    let policy = median_policy(&small, &x);
    (small, x, policy)
}

/// A three-stage policy over uniform counts 2, 5, 8 with each gate at the median margin of
/// its stage on `x`, so about half the samples escalate at each gate.
fn median_policy(graph: &strata_ir::Graph, x: &strata_ir::Tensor) -> AdaptivePolicy {
    use strata_compiler::adaptive::uniform;
    gated_policy(
        graph,
        x,
        [2u8, 5, 8].iter().map(|&k| uniform(graph, k)).collect(),
    )
}

/// A policy over `configs` (cheapest first) with each gate at the median margin of its
/// stage on `x`.
fn gated_policy(
    graph: &strata_ir::Graph,
    x: &strata_ir::Tensor,
    configs: Vec<std::collections::BTreeMap<String, u8>>,
) -> AdaptivePolicy {
    use strata_ir::adaptive::{margin, AdaptiveStage};
    let session = Session::new(graph);
    let last = configs.len() - 1;
    let stages = configs
        .into_iter()
        .enumerate()
        .map(|(s, layer_planes)| {
            let options = RunOptions {
                planes: None,
                per_layer: layer_planes.clone(),
                path: QuantPath::Integer,
            };
            let y = session.run_with(std::slice::from_ref(x), &options).unwrap();
            let y = y[0].as_f32().unwrap();
            let per = y.len() / x.shape()[0];
            let mut m: Vec<f32> = y.chunks(per).map(margin).collect();
            m.sort_by(f32::total_cmp);
            AdaptiveStage {
                layer_planes,
                min_margin: if s == last { 0.0 } else { m[m.len() / 2] },
            }
        })
        .collect();
    AdaptivePolicy {
        stages,
        target: "test".into(),
    }
}

/// Stages that raise only the later layers: 2 planes everywhere; then the second half of
/// the layers (in execution order) at 5; then every layer but the first at 8. An escalated
/// sample keeps the values of the layers before the first raised one.
fn tail_configs(graph: &strata_ir::Graph) -> Vec<std::collections::BTreeMap<String, u8>> {
    let layers: Vec<String> = graph
        .topo_order()
        .unwrap()
        .into_iter()
        .filter_map(|id| {
            let node = graph.node(id).unwrap();
            matches!(
                node.kind,
                strata_ir::NodeKind::Op(strata_ir::Op::Bitplane(_))
            )
            .then(|| node.name.clone())
        })
        .collect();
    let config = |f: &dyn Fn(usize) -> u8| -> std::collections::BTreeMap<String, u8> {
        layers
            .iter()
            .enumerate()
            .map(|(i, l)| (l.clone(), f(i)))
            .collect()
    };
    let half = layers.len() / 2;
    vec![
        config(&|_| 2),
        config(&|i| if i >= half { 5 } else { 2 }),
        config(&|i| if i >= 1 { 8 } else { 2 }),
    ]
}

/// An escalated sample reruns only the layers whose count changes and what reads them (the
/// runtime keeps the rest from its previous stage), and still gets exactly `run_with`'s
/// output at the stage that answered it; the bit-operations counted for it are those of the
/// layers rerun.
#[test]
fn escalation_reuses_the_unchanged_layers_exactly() {
    use strata_ir::adaptive::{bit_ops, escalation_bit_ops, rerun_nodes};
    let mnist = read_container(model()).unwrap().graph;
    let (small, small_x, _) = small_net_with_policy();
    let mnist_x = rows(&mnist::fixture("images"), 0..96);
    for (tag, graph, x) in [("mnist", &mnist, &mnist_x), ("small net", &small, &small_x)] {
        let policy = gated_policy(graph, x, tail_configs(graph));
        let session = Session::new(graph);
        assert!(session.reuses_across_stages(), "{tag}");
        let [a, b, c] = &policy.stages[..] else {
            unreachable!()
        };
        // From b to c the first layer keeps its count: it is not rerun, nor is anything
        // before it; the escalation costs less than the stage run whole.
        let rerun = rerun_nodes(graph, &b.layer_planes, &c.layer_planes).unwrap();
        let first = graph
            .topo_order()
            .unwrap()
            .into_iter()
            .find(|&id| {
                matches!(
                    graph.node(id).unwrap().kind,
                    strata_ir::NodeKind::Op(strata_ir::Op::Bitplane(_))
                )
            })
            .unwrap();
        assert!(!rerun.contains(&first), "{tag}");
        for (from, to) in [(a, b), (b, c)] {
            let whole = bit_ops(graph, &to.layer_planes, 8).unwrap();
            let esc = escalation_bit_ops(graph, &from.layer_planes, &to.layer_planes, 8).unwrap();
            assert!(esc < whole && esc > 0, "{tag}: {esc} vs {whole}");
        }
        let run = session.run_adaptive(x, &policy).unwrap();
        // The same answers as the cascade that reruns every stage whole, also when the
        // last stage is never reached (its gate before accepts everything).
        assert_eq!(
            run,
            session.run_adaptive_rerunning(x, &policy).unwrap(),
            "{tag}"
        );
        let mut lenient = policy.clone();
        lenient.stages[1].min_margin = 0.0;
        let short = session.run_adaptive(x, &lenient).unwrap();
        assert_eq!(short.ran.len(), 2, "{tag}: {:?}", short.ran);
        assert_eq!(
            short,
            session.run_adaptive_rerunning(x, &lenient).unwrap(),
            "{tag}"
        );
        let n = x.shape()[0];
        let out = run.output.as_f32().unwrap();
        let per = out.len() / n;
        for s in 0..3 {
            let options = RunOptions {
                planes: None,
                per_layer: policy.stages[s].layer_planes.clone(),
                path: QuantPath::Integer,
            };
            let y = run_with(graph, std::slice::from_ref(x), &options).unwrap();
            let y = y[0].as_f32().unwrap();
            for i in (0..n).filter(|&i| run.stages[i] as usize == s) {
                let got: Vec<u32> = out[i * per..(i + 1) * per]
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                let want: Vec<u32> = y[i * per..(i + 1) * per]
                    .iter()
                    .map(|v| v.to_bits())
                    .collect();
                assert_eq!(got, want, "{tag}: sample {i}, stage {s}");
            }
        }
        // Every stage answered some samples, so every escalation was exercised.
        for s in 0..3u8 {
            assert!(run.stages.contains(&s), "{tag}: stage {s} answered nothing");
        }
        assert_eq!(run.ran[0], n, "{tag}");
    }
}

#[test]
fn c_run_adaptive_matches_the_runtime() {
    use strata_compiler::backend::c::Target;
    let mut targets = vec![Target::Generic];
    if strata_test_support::c::host_has_avx2() {
        targets.push(Target::X86_64V3);
    }
    // The MNIST CNN with its fitted policy, and with a policy escalating half at each gate.
    let loaded = read_container(adapted()).unwrap();
    let images = rows(&mnist::fixture("images"), 0..64);
    let fitted = loaded.adaptive.clone().unwrap();
    let halves = median_policy(&loaded.graph, &images);
    // The small net with every convolution form.
    let (small, small_x, small_policy) = small_net_with_policy();
    for target in targets {
        let t = format!("{target:?}");
        // The median gates must send samples to every stage, or the test proves little.
        for (graph, policy, x, tag) in [
            (&loaded.graph, &halves, &images, "mnist"),
            (&small, &small_policy, &small_x, "small"),
        ] {
            let seen = c_matches_runtime(graph, policy, x, target, &format!("{tag}-{t}"));
            assert_eq!(seen, 3, "{tag}-{t}: stages answering");
        }
        // The fitted policy may answer these images at fewer stages; it must still match.
        c_matches_runtime(
            &loaded.graph,
            &fitted,
            &images,
            target,
            &format!("fitted-{t}"),
        );
    }
}
