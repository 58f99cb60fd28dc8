//! The `strata` command as scripts use it: names, flags, files written and JSON shapes are
//! an interface (later tools script against them), so they are tested through the binary.

use strata_test_support::{repo_root, rows};

strata_test_support::strata_cli!();

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use strata_compiler::npy::{read_npy, write_npy};
use strata_ir::Tensor;

struct Files {
    dir: PathBuf,
    model: String,
    strata: String,
    images: String,
    labels: String,
    calib: String,
}

/// One compiled model shared by the tests (compiling is the slow part).
fn files() -> &'static Files {
    static FILES: OnceLock<Files> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("strata-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fixtures = repo_root().join("tests/fixtures/mnist");
        let all = read_npy(&fixtures.join("images.npy")).unwrap();
        let labels = read_npy(&fixtures.join("labels.npy")).unwrap();
        let p = |name: &str| dir.join(name).display().to_string();
        let calib = read_npy(&fixtures.join("calib.npy")).unwrap();
        write_npy(Path::new(&p("calib.npy")), &rows(&calib, 0..32)).unwrap();
        write_npy(Path::new(&p("images.npy")), &rows(&all, 0..64)).unwrap();
        let l = labels.to_i64_vec().unwrap()[..64].to_vec();
        write_npy(
            Path::new(&p("labels.npy")),
            &Tensor::from_i64(vec![64], l).unwrap(),
        )
        .unwrap();
        let model = repo_root()
            .join("models/mnist_cnn.onnx")
            .display()
            .to_string();
        ok(&[
            "compile",
            &model,
            "--calib",
            &p("calib.npy"),
            "--planes",
            "2,4,8",
            "--calib-method",
            "minmax",
            "-o",
            &p("m.strata"),
        ]);
        Files {
            model,
            strata: p("m.strata"),
            images: p("images.npy"),
            labels: p("labels.npy"),
            calib: p("calib.npy"),
            dir,
        }
    })
}

#[test]
fn compile_is_deterministic() {
    let f = files();
    let again = f.dir.join("again.strata").display().to_string();
    ok(&[
        "compile",
        &f.model,
        "--calib",
        &f.calib,
        "--planes",
        "2,4,8",
        "--calib-method",
        "minmax",
        "-o",
        &again,
    ]);
    assert_eq!(
        std::fs::read(&f.strata).unwrap(),
        std::fs::read(&again).unwrap()
    );
}

#[test]
fn inspect_reports_the_container() {
    let f = files();
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", &f.strata, "--json"])).unwrap();
    assert_eq!(json["container"]["bits"], 8);
    assert_eq!(json["container"]["available_planes"], 8);
    assert_eq!(
        json["container"]["plane_counts"],
        serde_json::json!([2, 4, 8])
    );
    assert_eq!(
        json["container"]["metadata"]["calibration_method"],
        "minmax"
    );
    assert_eq!(json["parameters"], 421_642);
    assert_eq!(json["total_macs"], 4_241_152);
    assert_eq!(json["op_counts"]["bitplane_conv"], 2);
    assert_eq!(json["op_counts"]["bitplane_linear"], 2);
}

/// `--act-bits planes` (W k A k): the container says so (inspect, manifest, the recorded
/// pipeline), and widths the integer path cannot have are refused with what is accepted.
#[test]
fn act_bits_planes_compiles_wkak_and_bad_widths_are_refused() {
    let f = files();
    let out = f.dir.join("wkak.strata").display().to_string();
    ok(&[
        "compile",
        &f.model,
        "--calib",
        &f.calib,
        "--planes",
        "2,4,8",
        "--calib-method",
        "minmax",
        "--act-bits",
        "planes",
        "-o",
        &out,
    ]);
    let json: serde_json::Value = serde_json::from_str(&ok(&["inspect", &out, "--json"])).unwrap();
    assert_eq!(
        json["container"]["act_bits"],
        serde_json::json!({"2": 2, "4": 4, "8": 8})
    );
    let pipeline = json["container"]["metadata"]["pipeline"].as_str().unwrap();
    assert!(pipeline.contains("act-bits=planes"), "{pipeline}");
    let text = ok(&["inspect", &out]);
    assert!(
        text.contains("activation bits per plane count: k=2: 2, k=4: 4, k=8: 8"),
        "{text}"
    );
    // The W k A8 model says 8 at every count.
    assert!(ok(&["inspect", &f.strata]).contains("activations: 8 bits at every plane count"));
    let m: serde_json::Value = serde_json::from_str(&ok(&["manifest", &out, "--json"])).unwrap();
    let widths: Vec<(u64, u64)> = m["planes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["planes"].as_u64().unwrap(),
                r["act_bits"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(widths, [(2, 2), (4, 4), (8, 8)]);
    // `k` is an alias; the W k A k model differs from the W k A8 one.
    let alias = f.dir.join("wkak_alias.strata").display().to_string();
    ok(&[
        "compile",
        &f.model,
        "--calib",
        &f.calib,
        "--planes",
        "2,4,8",
        "--calib-method",
        "minmax",
        "--act-bits",
        "k",
        "-o",
        &alias,
    ]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&alias).unwrap());
    assert_ne!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&f.strata).unwrap()
    );
    let bad = f.dir.join("bad.strata").display().to_string();
    for width in ["1", "9", "eight", ""] {
        let e = fails(&[
            "compile",
            &f.model,
            "--calib",
            &f.calib,
            "--act-bits",
            width,
            "-o",
            &bad,
        ]);
        assert!(
            e.contains("--act-bits") && e.contains("planes") && e.contains("2..=8"),
            "{width}: {e}"
        );
    }
    assert!(!Path::new(&bad).exists());
}

#[test]
fn strip_writes_a_byte_prefix_that_runs_like_the_full_model() {
    let f = files();
    let full = std::fs::read(&f.strata).unwrap();
    let cut = f.dir.join("four.strata").display().to_string();
    ok(&["strip", &f.strata, "--planes", "4", "-o", &cut]);
    let prefix = std::fs::read(&cut).unwrap();
    assert!(prefix.len() < full.len());
    assert_eq!(prefix[..], full[..prefix.len()]);
    let json: serde_json::Value = serde_json::from_str(&ok(&["inspect", &cut, "--json"])).unwrap();
    assert_eq!(json["container"]["available_planes"], 4);
    let (a, b) = (f.dir.join("out_full"), f.dir.join("out_cut"));
    let (a, b) = (a.display().to_string(), b.display().to_string());
    ok(&[
        "run", &f.strata, "--input", &f.images, "--out", &a, "--planes", "4",
    ]);
    ok(&["run", &cut, "--input", &f.images, "--out", &b]);
    let x = read_npy(Path::new(&a).join("output_0.npy").as_path()).unwrap();
    let y = read_npy(Path::new(&b).join("output_0.npy").as_path()).unwrap();
    assert_eq!(x.shape(), &[64, 10]);
    assert_eq!(x, y, "stripped model must compute exactly the k = 4 model");
    let err = fails(&[
        "run", &cut, "--input", &f.images, "--out", &b, "--planes", "8",
    ]);
    assert!(err.contains('8'), "{err}");
}

#[test]
fn eval_json_has_the_documented_rows() {
    let f = files();
    let out = ok(&[
        "eval",
        &f.strata,
        "--data",
        &f.images,
        "--labels",
        &f.labels,
        "--baselines",
        "--json",
        "--plot",
        &f.dir.join("plot.svg").display().to_string(),
    ]);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = json["rows"].as_array().unwrap();
    let methods: Vec<(&str, Option<u64>)> = rows
        .iter()
        .map(|r| (r["method"].as_str().unwrap(), r["planes"].as_u64()))
        .collect();
    let mut expected = vec![("fp32", None)];
    for m in ["strata", "dedicated-ptq", "naive-truncation"] {
        expected.extend([2, 4, 8].map(|k| (m, Some(k))));
    }
    assert_eq!(methods, expected);
    for r in rows {
        for key in [
            "top1",
            "agreement",
            "max_logit_error",
            "mean_logit_error",
            "weight_bytes",
        ] {
            assert!(r[key].is_number(), "{key} in {r}");
        }
        let top1 = r["top1"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&top1));
    }
    assert_eq!(rows[0]["agreement"], 1.0);
    assert_eq!(rows[0]["max_logit_error"], 0.0);
    // Bytes grow with planes and are far below FP32.
    let bytes = |m: &str, k: u64| {
        rows.iter()
            .find(|r| r["method"] == m && r["planes"] == k)
            .unwrap()["weight_bytes"]
            .as_u64()
            .unwrap()
    };
    assert!(bytes("strata", 2) < bytes("strata", 4) && bytes("strata", 4) < bytes("strata", 8));
    assert!(bytes("strata", 8) * 3 < rows[0]["weight_bytes"].as_u64().unwrap());
    // Paired comparisons: Strata against FP32 and both baselines at each plane count. The
    // images only one side gets right explain the whole top-1 difference.
    let comparisons = json["comparisons"].as_array().unwrap();
    assert_eq!(comparisons.len(), 9, "{comparisons:?}");
    let n = 64.0;
    for c in comparisons {
        let k = c["planes"].as_u64().unwrap();
        let against = c["against"].as_str().unwrap();
        let other = match against {
            "fp32" => &rows[0],
            m => rows
                .iter()
                .find(|r| r["method"] == m && r["planes"] == k)
                .unwrap(),
        };
        let strata = rows
            .iter()
            .find(|r| r["method"] == "strata" && r["planes"] == k)
            .unwrap();
        let split = c["strata_only"].as_f64().unwrap() - c["other_only"].as_f64().unwrap();
        let diff = strata["top1"].as_f64().unwrap() - other["top1"].as_f64().unwrap();
        assert!((split / n - diff).abs() < 1e-9, "{c} vs {diff}");
        let p = c["p_value"].as_f64().unwrap();
        assert!(p > 0.0 && p <= 1.0, "{c}");
    }
    let svg = std::fs::read_to_string(f.dir.join("plot.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.matches("<polyline").count() == 3,
        "{svg}"
    );
}

/// `eval --baselines` on a once-QAT model adds its nested PTQ start and trains one dedicated
/// `k`-bit QAT model per plane count with the recorded pipeline, samples and labels: exactly
/// the models `compile` without `--qat-steps`, and `compile --bits k --planes k` with the same
/// QAT options, give.
#[test]
fn eval_baselines_add_nested_ptq_and_dedicated_qat_like_compile_makes_them() {
    let f = files();
    let p = |name: &str| f.dir.join(name).display().to_string();
    let labels32 = read_npy(Path::new(&f.labels))
        .unwrap()
        .to_i64_vec()
        .unwrap()[..32]
        .to_vec();
    write_npy(
        Path::new(&p("calib_labels.npy")),
        &Tensor::from_i64(vec![32], labels32).unwrap(),
    )
    .unwrap();
    let calib_labels = p("calib_labels.npy");
    let qat = [
        "--qat-steps",
        "3",
        "--qat-batch",
        "8",
        "--labels",
        &calib_labels,
    ];
    let nested = p("qat.strata");
    let mut args = vec!["compile", &f.model, "--calib", &f.calib, "--planes", "2,8"];
    args.extend(qat);
    args.extend(["-o", &nested]);
    ok(&args);
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", &nested, "--json"])).unwrap();
    assert_eq!(json["container"]["metadata"]["labels"], calib_labels);
    let eval = |model: &str, extra: &[&str]| -> serde_json::Value {
        let mut a = vec![
            "eval", model, "--data", &f.images, "--labels", &f.labels, "--json",
        ];
        a.extend(extra);
        serde_json::from_str(&ok(&a)).unwrap()
    };
    let report = eval(&nested, &["--baselines", "--planes", "2"]);
    let row = |r: &serde_json::Value, method: &str| {
        r["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["method"] == method && row["planes"] == 2)
            .unwrap_or_else(|| panic!("no {method} k=2 row in {r}"))
            .clone()
    };
    let dedicated = row(&report, "dedicated-qat");
    assert!(report["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["against"] == "dedicated-qat" && c["planes"] == 2));
    assert!(report["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["against"] == "nested-ptq" && c["planes"] == 2));
    // The same model by hand: a 2-bit model trained by the same QAT on the same data.
    let by_hand = p("qat2.strata");
    let mut args = vec![
        "compile", &f.model, "--calib", &f.calib, "--bits", "2", "--planes", "2",
    ];
    args.extend(qat);
    args.extend(["-o", &by_hand]);
    ok(&args);
    let hand = row(&eval(&by_hand, &[]), "strata");
    for key in ["top1", "agreement", "max_logit_error", "mean_logit_error"] {
        assert_eq!(dedicated[key], hand[key], "{key}");
    }
    // The nested PTQ row is the same compile without once-QAT.
    let ptq = p("ptq28.strata");
    ok(&[
        "compile", &f.model, "--calib", &f.calib, "--planes", "2,8", "-o", &ptq,
    ]);
    let (start, hand) = (row(&report, "nested-ptq"), row(&eval(&ptq, &[]), "strata"));
    for key in ["top1", "agreement", "max_logit_error", "mean_logit_error"] {
        assert_eq!(start[key], hand[key], "{key}");
    }
    // Without its labels the dedicated baseline would not see the same data: an error.
    std::fs::rename(&calib_labels, p("moved_labels.npy")).unwrap();
    let e = fails(&[
        "eval",
        &nested,
        "--data",
        &f.images,
        "--labels",
        &f.labels,
        "--baselines",
        "--planes",
        "2",
    ]);
    std::fs::rename(p("moved_labels.npy"), &calib_labels).unwrap();
    assert!(e.contains("--calib-labels"), "{e}");
}

#[test]
fn bad_invocations_are_one_line_errors() {
    let f = files();
    let e = fails(&["run", "nope.onnx", "--input", &f.images, "--out", "x"]);
    assert!(e.starts_with("error: ") && e.contains("nope.onnx"), "{e}");
    let e = fails(&["inspect", "model.txt"]);
    assert!(e.contains("unknown model format"), "{e}");
    let e = fails(&[
        "eval", &f.strata, "--data", &f.images, "--labels", &f.labels, "--planes", "3",
    ]);
    assert!(e.contains("plane count 3 is not available"), "{e}");
    let e = fails(&[
        "strip",
        &f.strata,
        "--planes",
        "9",
        "-o",
        &f.dir.join("x.strata").display().to_string(),
    ]);
    assert!(e.starts_with("error: "), "{e}");
    assert!(
        !f.dir.join("x.strata").exists(),
        "a failed strip writes nothing"
    );
    let garbage = f.dir.join("garbage.npy");
    std::fs::write(&garbage, b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4',").unwrap();
    let e = fails(&[
        "run",
        &f.model,
        "--input",
        &garbage.display().to_string(),
        "--out",
        "x",
    ]);
    assert!(e.contains("garbage.npy"), "{e}");
    let e = fails(&["opt", &f.model, "--passes", "fold-constants,nonsense"]);
    assert!(e.contains("unknown pass `nonsense`"), "{e}");
}

#[test]
fn emit_c_writes_each_target_and_lists_the_valid_ones() {
    let f = files();
    for t in ["generic", "x86-64-v3", "aarch64", "armv7m"] {
        let out = f.dir.join(format!("c-{t}"));
        let o = out.display().to_string();
        ok(&[
            "emit-c", &f.strata, "--planes", "4", "--target", t, "--name", "net", "-o", &o,
        ]);
        let h = std::fs::read_to_string(out.join("net.h")).unwrap();
        assert!(h.contains(&format!("(target {t}, 4 planes)")), "{t}");
        assert!(h.contains("int net_run_planes(const float *input"), "{t}");
        assert!(out.join("net.c").exists(), "{t}");
    }
    let e = fails(&[
        "emit-c", &f.strata, "--planes", "4", "--target", "avx512", "--name", "n", "-o", "x",
    ]);
    assert!(
        e.starts_with("error: ")
            && e.contains("'avx512'")
            && e.contains("generic, x86-64-v3, aarch64, armv7m"),
        "{e}"
    );
}

#[test]
fn emit_c_code_bits_exact_stores_k_bits_a_weight() {
    let f = files();
    let m6 = f.dir.join("m6.strata").display().to_string();
    let calib = f.dir.join("calib.npy").display().to_string();
    ok(&[
        "compile",
        &f.model,
        "--calib",
        &calib,
        "--planes",
        "6",
        "--calib-method",
        "minmax",
        "-o",
        &m6,
    ]);
    let bytes = |mode: &str| {
        let out = f.dir.join(format!("c-bits-{mode}"));
        let o = out.display().to_string();
        ok(&[
            "emit-c",
            &m6,
            "--planes",
            "6",
            "--target",
            "x86-64-v3",
            "--code-bits",
            mode,
            "--name",
            "net",
            "-o",
            &o,
        ]);
        let h = std::fs::read_to_string(out.join("net.h")).unwrap();
        let line = h
            .lines()
            .find(|l| l.starts_with("#define NET_WEIGHT_BYTES "))
            .unwrap();
        let n: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        (n, h)
    };
    let (fast, fh) = bytes("fast");
    let (exact, eh) = bytes("exact");
    assert!(fh.contains("codes (8, 4 or 2 bits)"), "{fh}");
    assert!(eh.contains("codes (K bits a weight)"), "{eh}");
    // 6 of 8 bits a code: the codes shrink by a quarter, the side tables stay.
    assert!(
        exact * 4 < fast * 3 + 4 * 4096,
        "exact {exact} vs fast {fast}"
    );
    // Streaming: the fully connected layers at 6 bits, the convolutions at 8, each recorded
    // in the header; the bytes lie between the two.
    let (stream, sh) = bytes("stream");
    for (layer, bits) in [("conv_1", 8), ("conv_4", 8), ("fc_8", 6), ("logits", 6)] {
        assert!(
            sh.lines().any(|l| l.contains(&format!("`{layer}`"))
                && l.ends_with(&format!(", {bits}-bit codes */"))),
            "{layer}: {sh}"
        );
    }
    assert!(
        exact < stream && stream < fast,
        "{exact} < {stream} < {fast}"
    );
    // The manifest states the same bytes, and the widths a target lowers streaming as.
    let manifest = |target: &str| -> serde_json::Value {
        let text = ok(&[
            "manifest",
            &m6,
            "--target",
            target,
            "--code-bits",
            "stream",
            "--json",
        ]);
        serde_json::from_str(&text).unwrap()
    };
    let m = manifest("x86-64-v3");
    assert_eq!(m["code_bits"], "stream");
    let row = m["planes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["planes"] == 6)
        .unwrap();
    assert_eq!(row["weight_bytes"], stream);
    // aarch64 has no split-width streaming kernel: the fast widths.
    assert_eq!(manifest("aarch64")["code_bits"], "fast");
    let e = fails(&[
        "emit-c",
        &f.strata,
        "--code-bits",
        "7",
        "--name",
        "n",
        "-o",
        "x",
    ]);
    assert!(e.contains("'7'") && e.contains("fast, exact"), "{e}");
}

/// Without `--planes`, `emit-c` emits what `strata run` runs by default: each layer's largest
/// plane count with a side table. A file compiled with `--planes 6` holds 8 planes but side
/// tables only at 6; emitting at 8 used to fail. Stripped below every side table, the error
/// names the layer and its counts.
#[test]
fn emit_c_default_planes_are_the_runtimes() {
    let f = files();
    let m6 = f.dir.join("m6-default.strata").display().to_string();
    let calib = f.dir.join("calib.npy").display().to_string();
    ok(&[
        "compile",
        &f.model,
        "--calib",
        &calib,
        "--planes",
        "4,6",
        "--calib-method",
        "minmax",
        "-o",
        &m6,
    ]);
    let out = f.dir.join("c-default-planes");
    let o = out.display().to_string();
    ok(&["emit-c", &m6, "--name", "net", "-o", &o]);
    let h = std::fs::read_to_string(out.join("net.h")).unwrap();
    assert!(h.contains("#define NET_PLANES 6\n"), "{h}");
    assert!(h.contains("rebuilt from planes 0..5"), "{h}");

    let s3 = f.dir.join("m6-strip3.strata").display().to_string();
    ok(&["strip", &m6, "--planes", "3", "-o", &s3]);
    let e = fails(&["emit-c", &s3, "--name", "net", "-o", &o]);
    assert!(
        e.contains("layer `conv_1` has no side table for any of the 3 planes present")
            && e.contains("[4, 6]"),
        "{e}"
    );
}

/// `strata inspect m.onnx | head -1`: the reader closes the pipe early; strata must end
/// quietly (exit 0, nothing on stderr), not panic on the failed write.
#[test]
fn a_closed_pipe_ends_quietly() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let model = repo_root().join("models/mnist_cnn.onnx");
    for args in [
        vec!["inspect".to_string(), model.display().to_string()],
        vec![
            "opt".to_string(),
            model.display().to_string(),
            "--passes".to_string(),
            "fold-constants,eliminate-dead-code".to_string(),
            "--print-after-all".to_string(),
            // Every constant in full: megabytes, far more than a pipe buffers.
            "--elide-constants-over".to_string(),
            "0".to_string(),
        ],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(!first.is_empty(), "{args:?}");
        // The reader is dropped here: the pipe is closed with output still to come.
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {:?} {stderr}", out.status);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
    }
}

/// A transformer's Linear layer (MatMul on `[N, T, C]`) becomes a bit-plane layer through
/// `matmul-to-conv`, within a plane's rounding of the float model; a MatMul no pass makes a
/// layer (on a rank-5 input) leaves a model without bit-planes, which `compile` says, naming
/// it, instead of writing such a file in silence; `emit-c` then writes the float model's C.
#[test]
fn linear_layers_on_sequences_are_quantized_and_compile_says_what_is_not() {
    use strata_test_support::onnx::{f32_tensor, f32vi, node, M};
    let dir = std::env::temp_dir().join(format!("strata-no-layers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = |f: &str| dir.join(f).display().to_string();
    let w: Vec<f32> = (0..18).map(|i| (i as f32 - 9.0) * 0.1).collect();
    let model = |dims: &[i64], file: &str| {
        let mut m = M::new(17).input(f32vi("x", dims));
        m.graph.initializer = vec![f32_tensor("w", &[6, 3], &w)];
        m.graph.node = vec![
            node("MatMul", "linear", &["x", "w"], &["h"], vec![]),
            node("Relu", "relu", &["h"], &["y"], vec![]),
        ];
        std::fs::write(p(file), m.output("y").bytes()).unwrap();
    };
    let npy = |dims: Vec<usize>, file: &str| {
        let n: usize = dims.iter().product();
        let v: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
        write_npy(Path::new(&p(file)), &Tensor::from_f32(dims, v).unwrap()).unwrap();
    };
    // [N, 4, 6]: quantized.
    model(&[-1, 4, 6], "seq.onnx");
    npy(vec![2, 4, 6], "seq.npy");
    let out = strata(&[
        "compile",
        &p("seq.onnx"),
        "--calib",
        &p("seq.npy"),
        "-o",
        &p("seq.strata"),
    ]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("stay float"));
    let shown = ok(&["inspect", &p("seq.strata")]);
    assert!(shown.contains("bitplane_conv"), "{shown}");
    ok(&[
        "run",
        &p("seq.onnx"),
        "--input",
        &p("seq.npy"),
        "--out",
        &p("f32"),
    ]);
    ok(&[
        "run",
        &p("seq.strata"),
        "--input",
        &p("seq.npy"),
        "--out",
        &p("k8"),
    ]);
    let read = |d: &str| read_npy(&dir.join(d).join("output_0.npy")).unwrap();
    let (f, q) = (read("f32"), read("k8"));
    assert_eq!(f.shape(), [2, 4, 3]);
    let (f, q) = (f.as_f32().unwrap(), q.as_f32().unwrap());
    let scale = f.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (a, b) in f.iter().zip(q) {
        assert!((a - b).abs() <= 0.02 * scale, "float {a}, 8 planes {b}");
    }
    // [N, 2, 2, 2, 6]: no layer.
    model(&[-1, 2, 2, 2, 6], "t.onnx");
    npy(vec![2, 2, 2, 2, 6], "calib.npy");
    let out = strata(&[
        "compile",
        &p("t.onnx"),
        "--calib",
        &p("calib.npy"),
        "-o",
        &p("t.strata"),
    ]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: 1 MatMul(s) with a constant weight stay float (`linear` first)")
            && err.contains("warning: no layer was quantized"),
        "{err}"
    );
    ok(&["emit-c", &p("t.strata"), "--name", "m", "-o", &p("c")]);
    let header = std::fs::read_to_string(dir.join("c").join("m.h")).unwrap();
    assert!(header.contains("#define M_NUM_LAYERS 0"), "{header}");
    std::fs::remove_dir_all(&dir).ok();
}
