//! The real-model corpus (`tests/fixtures/corpus/`, made by `scripts/make_corpus.py`):
//! reduced-width torchvision architectures and two hand-written nets (a TensorFlow-style NHWC
//! classifier and a YOLO-style detector), each exported by PyTorch's TorchScript exporter
//! (opset 17) and its dynamo exporter (opset 18). For every model, in order:
//!
//! 1. `import`: the ONNX file imports, and the FP32 runtime reproduces onnxruntime's outputs
//!    on the 4 stored inputs within `1e-4` of the output scale (max |ORT|).
//! 2. `compile`: `vl-quantize` on the 32 stored calibration inputs, plane counts 2..8, PTQ
//!    (the default `strata compile`), through the `.strata` container; the time is reported.
//! 3. `k8`, `k4`: the integer path at 8 and 4 planes against FP32 — relative RMS error
//!    (`rms(y_k − y_fp32) / rms(y_fp32)`, worst output) below [`K8_BOUND`] / [`K4_BOUND`].
//! 4. `emit-c k8`, `emit-c k2`: the C backend's output equals the runtime's integer path bit
//!    for bit on the 4 inputs, for the `generic` and `x86-64-v3` targets built with the host
//!    gcc (strict C99; `x86-64-v3` runs where the CPU has AVX2/FMA), and for the models in
//!    [`AARCH64_MODELS`] also for the `aarch64` target cross-built and run under qemu.
//!
//! A stage a model cannot pass today is listed in [`EXPECTED_FAILURES`] with the error it
//! fails with; the test fails when such a stage passes or fails differently, so the list
//! shrinks as support lands and cannot rot. Stages after a failure are not run.
//!
//! `cargo test -p strata-cli --test corpus -- --nocapture` prints the table model × stage
//! that the README's *Real models* section shows; `STRATA_CORPUS_FILTER=resnet` runs the
//! models whose name contains the text.

mod corpus_models;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use corpus_models::{
    arch, compile, f32s, fixture, import_model, npy, Stage, EXPECTED_FAILURES, MODELS, STAGES,
};
use strata_ir::{Graph, Tensor};
use strata_runtime::{run, run_with, QuantPath, RunOptions};
use strata_test_support::c::{
    bits, deinterleave, host_has_avx2, port_sizes, run_c_with, try_build_with, Toolchain,
    AARCH64_QEMU, HOST_GENERIC, HOST_X86_64_V3,
};
use strata_test_support::repo_root;

/// Models whose C is also cross-built for `aarch64` and run under qemu (slow): one of each
/// kind the NEON kernels meet — depthwise + HardSwish/SE, Concat-heavy, multi-output Resize.
const AARCH64_MODELS: &[&str] = &["mobilenet_v3_small.ts", "googlenet.dynamo", "yolo_head.ts"];

/// FP32 import: max |runtime − onnxruntime| over max |onnxruntime|.
const IMPORT_BOUND: f64 = 1e-4;
/// K = 8 against FP32, relative RMS error of the worst output. Measured (README, *Real
/// models*): 0.005–0.063, the worst ShuffleNetV2 (0.063) and MNASNet (0.060), whose 8- and
/// 16-channel depthwise layers share one activation scale per tensor; the bound leaves
/// ~25 % headroom over the worst so a regression in calibration or the integer path fails.
const K8_BOUND: f64 = 0.08;
/// K = 4 against FP32, relative RMS error of the worst output. Measured: 0.046–0.296, the
/// worst ShuffleNetV2 (0.296) and MobileNetV3-small (0.256); the same headroom.
const K4_BOUND: f64 = 0.37;

/// What one stage did: passed with a figure, failed with an error, or did not run.
#[derive(Clone, Debug)]
enum Outcome {
    Pass(String),
    Fail(String),
    NotRun,
}

struct Row {
    model: &'static str,
    outcomes: Vec<Outcome>,
}

/// max |a − b| / max |b|.
fn max_rel(a: &[f32], b: &[f32]) -> f64 {
    let scale = b.iter().fold(0f64, |m, v| m.max(f64::from(v.abs())));
    let err = a.iter().zip(b).fold(0f64, |m, (x, y)| {
        m.max((f64::from(*x) - f64::from(*y)).abs())
    });
    err / scale.max(f64::MIN_POSITIVE)
}

/// rms(a − b) / rms(b).
fn rel_rms(a: &[f32], b: &[f32]) -> f64 {
    let (mut d, mut r) = (0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        d += (f64::from(*x) - f64::from(*y)).powi(2);
        r += f64::from(*y).powi(2);
    }
    (d / r.max(f64::MIN_POSITIVE)).sqrt()
}

/// Import, and the FP32 runtime against onnxruntime: the imported graph and its outputs.
fn import(model: &str, n_outputs: usize, x: &Tensor) -> Result<(Graph, Vec<Tensor>, f64), String> {
    let g = import_model(model)?;
    let got = run(&g, std::slice::from_ref(x)).map_err(|e| e.to_string())?;
    if got.len() != n_outputs {
        return Err(format!("{} outputs, expected {n_outputs}", got.len()));
    }
    let mut worst = 0f64;
    for (i, y) in got.iter().enumerate() {
        let name = if n_outputs == 1 {
            format!("{model}.ort.npy")
        } else {
            format!("{model}.ort{i}.npy")
        };
        let want = npy(&name)?;
        if want.shape() != y.shape() {
            return Err(format!(
                "output {i}: shape {:?}, onnxruntime {:?}",
                y.shape(),
                want.shape()
            ));
        }
        worst = worst.max(max_rel(f32s(y)?, f32s(&want)?));
    }
    if worst > IMPORT_BOUND {
        return Err(format!(
            "{worst:.1e} of the output scale > {IMPORT_BOUND:e}"
        ));
    }
    Ok((g, got, worst))
}

/// The integer path at `k` planes against FP32: worst relative RMS over the outputs.
fn planes_error(q: &Graph, x: &Tensor, fp32: &[Tensor], k: u8, bound: f64) -> Result<f64, String> {
    let opts = RunOptions {
        planes: Some(k),
        path: QuantPath::Integer,
        ..Default::default()
    };
    let got = run_with(q, std::slice::from_ref(x), &opts).map_err(|e| e.to_string())?;
    let mut worst = 0f64;
    for (y, r) in got.iter().zip(fp32) {
        worst = worst.max(rel_rms(f32s(y)?, f32s(r)?));
    }
    if worst > bound {
        return Err(format!("{worst:.4} > {bound}"));
    }
    Ok(worst)
}

/// Emit C at `k` planes for every toolchain that applies to `model`, build it, and compare
/// with the runtime bit for bit.
fn emit_c(model: &str, q: &Graph, x: &Tensor, k: u8) -> Result<String, String> {
    let opts = RunOptions {
        planes: Some(k),
        path: QuantPath::Integer,
        ..Default::default()
    };
    let want = run_with(q, std::slice::from_ref(x), &opts).map_err(|e| e.to_string())?;
    let mut toolchains: Vec<(&str, Toolchain)> = vec![("generic", HOST_GENERIC)];
    if host_has_avx2() {
        toolchains.push(("x86-64-v3", HOST_X86_64_V3));
    }
    if AARCH64_MODELS.contains(&model) {
        toolchains.push(("aarch64/qemu", AARCH64_QEMU));
    }
    let mut total = 0;
    for (label, tc) in &toolchains {
        let tag = format!("corpus-{model}-k{k}-{}", tc.target);
        let exe = try_build_with(q, k, &tag, tc).map_err(|e| format!("{label}: {e}"))?;
        let n = x.shape()[0];
        let got = run_c_with(tc.runner, &exe, f32s(x)?, n, None)
            .map_err(|rc| format!("{label}: driver exit code {rc}"))?;
        let (_, sizes) = port_sizes(q);
        let got = deinterleave(&got, &sizes, n)
            .ok_or_else(|| format!("{label}: {} values from C for {n} samples", got.len()))?;
        let (mut diff, mut values) = (0, 0);
        for (g, w) in got.iter().zip(&want) {
            let w = f32s(w)?;
            values += w.len();
            diff += if g.len() == w.len() {
                bits(g)
                    .iter()
                    .zip(bits(w))
                    .filter(|(a, b)| **a != *b)
                    .count()
            } else {
                w.len()
            };
        }
        if diff > 0 {
            return Err(format!(
                "{label}: not bit-exact: {diff} of {values} values differ"
            ));
        }
        total = values;
        let _ = std::fs::remove_dir_all(exe.parent().unwrap_or(&exe));
    }
    let labels: Vec<&str> = toolchains.iter().map(|(l, _)| *l).collect();
    Ok(format!("exact ({total} values; {})", labels.join(", ")))
}

/// Runs every stage of one model; a stage after a failure does not run.
fn run_model(model: &'static str, n_outputs: usize) -> Row {
    let mut outcomes = vec![Outcome::NotRun; STAGES.len()];
    let res = (|| -> Result<(), (Stage, String)> {
        let at = |s: Stage| move |e: String| (s, e);
        let x = npy(&format!("{}.input.npy", arch(model))).map_err(at(Stage::Import))?;
        let calib = npy(&format!("{}.calib.npy", arch(model))).map_err(at(Stage::Import))?;
        let (g, fp32, err) = import(model, n_outputs, &x).map_err(at(Stage::Import))?;
        outcomes[0] = Outcome::Pass(format!("{err:.1e}"));

        let t = Instant::now();
        let q = compile(g, calib).map_err(at(Stage::Compile))?;
        outcomes[1] = Outcome::Pass(format!("{:.2} s", t.elapsed().as_secs_f64()));

        let e8 = planes_error(&q, &x, &fp32, 8, K8_BOUND).map_err(at(Stage::K8))?;
        outcomes[2] = Outcome::Pass(format!("{e8:.4}"));
        let e4 = planes_error(&q, &x, &fp32, 4, K4_BOUND).map_err(at(Stage::K4))?;
        outcomes[3] = Outcome::Pass(format!("{e4:.4}"));

        let c8 = emit_c(model, &q, &x, 8).map_err(at(Stage::EmitC8))?;
        outcomes[4] = Outcome::Pass(c8);
        let c2 = emit_c(model, &q, &x, 2).map_err(at(Stage::EmitC2))?;
        outcomes[5] = Outcome::Pass(c2);
        Ok(())
    })();
    if let Err((stage, e)) = res {
        let i = STAGES.iter().position(|s| *s == stage).unwrap_or(0);
        outcomes[i] = Outcome::Fail(e);
    }
    Row { model, outcomes }
}

/// The markdown table: one row per model, one column per stage.
fn table(rows: &[Row]) -> String {
    let mut s = String::from("| model |");
    for st in STAGES {
        s += &format!(" {} |", st.title());
    }
    s += "\n|---|";
    s += &"---|".repeat(STAGES.len());
    s += "\n";
    for r in rows {
        s += &format!("| `{}` |", r.model);
        for (st, o) in STAGES.iter().zip(&r.outcomes) {
            let listed = EXPECTED_FAILURES
                .iter()
                .any(|(m, s, _)| *m == r.model && s == st);
            let cell = match o {
                Outcome::Pass(v) => format!("pass {v}"),
                Outcome::Fail(e) if listed => format!("**fail** (listed): {}", short(e)),
                Outcome::Fail(e) => format!("**FAIL**: {}", short(e)),
                Outcome::NotRun => "—".into(),
            };
            s += &format!(" {} |", cell.replace('|', "\\|"));
        }
        s += "\n";
    }
    s
}

/// An error cut to a table cell.
fn short(e: &str) -> String {
    let e = e.lines().next().unwrap_or("");
    if e.chars().count() > 110 {
        format!("{}…", e.chars().take(110).collect::<String>())
    } else {
        e.to_string()
    }
}

/// What the expectations say about each row: the list of mismatches.
fn check(rows: &[Row]) -> Vec<String> {
    let mut bad = Vec::new();
    for (model, stage, _) in EXPECTED_FAILURES {
        if !MODELS.iter().any(|(m, _)| m == model) {
            bad.push(format!(
                "EXPECTED_FAILURES names {model} {stage:?}: no such model"
            ));
        }
    }
    for r in rows {
        for (st, o) in STAGES.iter().zip(&r.outcomes) {
            let expected = EXPECTED_FAILURES
                .iter()
                .find(|(m, s, _)| *m == r.model && s == st);
            match (o, expected) {
                (Outcome::Fail(e), None) => bad.push(format!("{} {st:?} fails: {e}", r.model)),
                (Outcome::Fail(e), Some((_, _, text))) if !e.contains(text) => bad.push(format!(
                    "{} {st:?} fails differently than listed (`{text}`): {e}",
                    r.model
                )),
                (Outcome::Pass(v), Some(_)) => bad.push(format!(
                    "{} {st:?} passes now ({v}): remove it from EXPECTED_FAILURES",
                    r.model
                )),
                (Outcome::NotRun, Some(_)) => bad.push(format!(
                    "{} {st:?} is listed but did not run (an earlier stage failed)",
                    r.model
                )),
                _ => {}
            }
        }
    }
    bad
}

#[test]
fn corpus_models_import_compile_and_emit() {
    let filter = std::env::var("STRATA_CORPUS_FILTER").unwrap_or_default();
    let todo: Vec<(&'static str, usize)> = MODELS
        .iter()
        .copied()
        .filter(|(m, _)| m.contains(filter.as_str()))
        .collect();
    assert!(!todo.is_empty(), "no corpus model matches {filter:?}");
    // Two workers: the machine's cores are also used by each compile's rayon pool.
    let next = AtomicUsize::new(0);
    let rows = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(model, n)) = todo.get(i) else {
                    break;
                };
                let row = run_model(model, n);
                rows.lock().unwrap().push((i, row));
            });
        }
    });
    let mut rows = rows.into_inner().unwrap();
    rows.sort_by_key(|(i, _)| *i);
    let rows: Vec<Row> = rows.into_iter().map(|(_, r)| r).collect();
    println!("{}", table(&rows));
    let bad = check(&rows);
    assert!(bad.is_empty(), "corpus:\n{}", bad.join("\n"));
}

#[test]
fn every_model_has_its_fixtures_and_the_corpus_stays_small() {
    let mut total = 0u64;
    for entry in std::fs::read_dir(repo_root().join("tests/fixtures/corpus")).unwrap() {
        let e = entry.unwrap();
        let len = e.metadata().unwrap().len();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".onnx") {
            assert!(len <= 1 << 20, "{name}: {len} bytes > 1 MiB");
            let model = name.trim_end_matches(".onnx");
            assert!(
                MODELS.iter().any(|(m, _)| *m == model),
                "{name} is not in MODELS"
            );
        }
        total += len;
    }
    // 13.6 MB with the recurrent `kws_crnn`, `norm_act_zoo` and `gpt_block` (2026-12); the cap
    // keeps a little headroom.
    assert!(total <= 13_800_000, "corpus is {total} bytes");
    for (model, n) in MODELS {
        for f in [
            format!("{model}.onnx"),
            format!("{}.input.npy", arch(model)),
            format!("{}.calib.npy", arch(model)),
        ] {
            assert!(fixture(&f).is_file(), "{f} missing");
        }
        let x = npy(&format!("{}.input.npy", arch(model))).unwrap();
        let c = npy(&format!("{}.calib.npy", arch(model))).unwrap();
        assert_eq!(x.shape()[0], 4, "{model}: 4 inputs");
        assert_eq!(c.shape()[0], 32, "{model}: 32 calibration inputs");
        assert_eq!(x.shape()[1..], c.shape()[1..], "{model}");
        let outs: Vec<String> = if *n == 1 {
            vec![format!("{model}.ort.npy")]
        } else {
            (0..*n).map(|i| format!("{model}.ort{i}.npy")).collect()
        };
        for f in outs {
            assert_eq!(npy(&f).unwrap().shape()[0], 4, "{f}");
        }
    }
}
