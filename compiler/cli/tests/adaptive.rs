//! Adaptive precision: the fitted policy is deterministic and stored in the container, a
//! stripped file's policy only asks for planes it has, the runtime's cascade gives every
//! sample exactly the output of the stage that answered it, impossible targets are refused,
//! and the CLI (`adapt`, `run --adaptive`, `eval --adaptive`) carries it end to end.

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
