//! The MLIR backend through the `strata` binary: `run --backend mlir` (JIT), `emit-mlir` and
//! `build --backend mlir` (object + header, linked with gcc) agree with the runtime bit for
//! bit; a build without the `mlir` feature refuses each with the one line saying how to
//! enable it.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use strata_compiler::npy::{read_npy, write_npy};
use strata_test_support::{repo_root, rows};

strata_test_support::strata_cli!();

/// The bundled MNIST CNN compiled once (32 calibration rows) and 16 test images.
fn files() -> &'static (PathBuf, String, String) {
    static FILES: OnceLock<(PathBuf, String, String)> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("strata-cli-mlir-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fixtures = repo_root().join("tests/fixtures/mnist");
        let p = |name: &str| dir.join(name).display().to_string();
        let calib = read_npy(&fixtures.join("calib.npy")).unwrap();
        write_npy(Path::new(&p("calib.npy")), &rows(&calib, 0..32)).unwrap();
        let images = read_npy(&fixtures.join("images.npy")).unwrap();
        write_npy(Path::new(&p("images.npy")), &rows(&images, 0..16)).unwrap();
        let model = repo_root().join("models/mnist_cnn.onnx");
        ok(&[
            "compile",
            &model.display().to_string(),
            "--calib",
            &p("calib.npy"),
            "-o",
            &p("m.strata"),
        ]);
        (dir.clone(), p("m.strata"), p("images.npy"))
    })
}

#[cfg(feature = "mlir")]
#[test]
fn run_emit_and_build_through_mlir_match_the_runtime() {
    use std::process::Command;
    use strata_test_support::c::{bits, gcc, main_c, run_c};

    let (dir, model, images) = files();
    let d = |name: &str| dir.join(name).display().to_string();
    for k in ["2", "5", "8"] {
        ok(&[
            "run",
            model,
            "--input",
            images,
            "--out",
            &d(&format!("rt{k}")),
            "--planes",
            k,
        ]);
        ok(&[
            "run",
            model,
            "--input",
            images,
            "--out",
            &d(&format!("jit{k}")),
            "--planes",
            k,
            "--backend",
            "mlir",
        ]);
        let rt = std::fs::read(d(&format!("rt{k}/output_0.npy"))).unwrap();
        let jit = std::fs::read(d(&format!("jit{k}/output_0.npy"))).unwrap();
        assert_eq!(rt, jit, "run --backend mlir at K={k}");
    }
    // Per-layer counts through the JIT, as the runtime runs them.
    let per_layer = "conv_1=2,fc_8=4";
    ok(&[
        "run",
        model,
        "--input",
        images,
        "--out",
        &d("rtl"),
        "--planes",
        "8",
        "--layer-planes",
        per_layer,
    ]);
    ok(&[
        "run",
        model,
        "--input",
        images,
        "--out",
        &d("jitl"),
        "--planes",
        "8",
        "--layer-planes",
        per_layer,
        "--backend",
        "mlir",
    ]);
    assert_eq!(
        std::fs::read(d("rtl/output_0.npy")).unwrap(),
        std::fs::read(d("jitl/output_0.npy")).unwrap()
    );

    let high = ok(&["emit-mlir", model, "--planes", "4", "--name", "mnist"]);
    assert!(high.contains("vector.shuffle") && high.contains("func.func @mnist_run("));
    let llvm = ok(&["emit-mlir", model, "--planes", "4", "--stage", "llvm"]);
    assert!(llvm.contains("llvm.func @model_run_planes(") && !llvm.contains("linalg."));

    // The object with the C backend's header, linked with the shared C test driver.
    let out = dir.join("obj");
    ok(&[
        "build",
        model,
        "--backend",
        "mlir",
        "--planes",
        "4",
        "--name",
        "model",
        "-o",
        &out.display().to_string(),
    ]);
    std::fs::write(out.join("main.c"), main_c(&[784], &[10])).unwrap();
    let exe = out.join("main");
    let st = Command::new(gcc())
        .arg("-o")
        .arg(&exe)
        .arg(out.join("main.c"))
        .arg(out.join("model.o"))
        .arg("-lm")
        .status()
        .unwrap();
    assert!(st.success());
    let x = read_npy(Path::new(images)).unwrap();
    let got = run_c(&exe, x.as_f32().unwrap(), 16, None).unwrap();
    let want = read_npy(&dir.join("rt5/output_0.npy")).unwrap();
    ok(&[
        "run",
        model,
        "--input",
        images,
        "--out",
        &d("rt4"),
        "--planes",
        "4",
    ]);
    let want4 = read_npy(&dir.join("rt4/output_0.npy")).unwrap();
    assert_ne!(bits(want.as_f32().unwrap()), bits(want4.as_f32().unwrap()));
    assert_eq!(bits(&got), bits(want4.as_f32().unwrap()));

    // An aarch64 object (linked and run under qemu in strata-backend-mlir's tests).
    let a64 = dir.join("a64");
    ok(&[
        "build",
        model,
        "--backend",
        "mlir",
        "--planes",
        "4",
        "--name",
        "model",
        "--target-triple",
        "aarch64-linux-gnu",
        "-o",
        &a64.display().to_string(),
    ]);
    let o = std::fs::read(a64.join("model.o")).unwrap();
    // ELF, e_machine 183 (EM_AARCH64).
    assert_eq!((&o[..4], o[18]), (&b"\x7fELF"[..], 183));

    // Errors name what is wrong.
    let err = fails(&[
        "build",
        model,
        "--name",
        "m",
        "--target-triple",
        "aarch64-linux-gnu",
        "-o",
        &d("c"),
    ]);
    assert!(err.contains("--backend mlir"), "{err}");
    let err = fails(&[
        "run",
        model,
        "--input",
        images,
        "--out",
        &d("x"),
        "--backend",
        "mlir",
        "--path",
        "float",
    ]);
    assert!(err.contains("integer path"), "{err}");
    let onnx = repo_root()
        .join("models/mnist_cnn.onnx")
        .display()
        .to_string();
    let err = fails(&["emit-mlir", &onnx, "--planes", "4"]);
    assert!(err.contains("`.strata` models"), "{err}");
}

/// `strata eval` of `model` on `images` through the MLIR JIT, then `extra` arguments.
fn eval_mlir<'a>(
    model: &'a str,
    images: &'a str,
    labels: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "eval",
        model,
        "--data",
        images,
        "--labels",
        labels,
        "--backend",
        "mlir",
    ];
    args.extend_from_slice(extra);
    args
}

/// The 16 test images' labels beside the compiled model.
fn labels() -> String {
    let (dir, _, _) = files();
    let path = dir.join("labels.npy");
    let labels = read_npy(&repo_root().join("tests/fixtures/mnist/labels.npy")).unwrap();
    let first = labels.as_i64().expect("i64 labels")[..16].to_vec();
    write_npy(
        &path,
        &strata_ir::Tensor::from_i64(vec![16], first).unwrap(),
    )
    .unwrap();
    path.display().to_string()
}

/// `eval --backend mlir` reports what the runtime reports (the JIT is bit-exact, so every
/// row's top-1, agreement and logit error are the same numbers), for uniform counts and the
/// per-layer choice; the float path is refused.
#[cfg(feature = "mlir")]
#[test]
fn eval_through_mlir_matches_the_runtime() {
    let (_, model, images) = files();
    let labels = labels();
    let eval = |backend: &str| {
        let out = strata(&[
            "eval",
            model,
            "--data",
            images,
            "--labels",
            &labels,
            "--planes",
            "2,5,8",
            "--json",
            "--backend",
            backend,
        ]);
        assert!(out.status.success(), "{out:?}");
        out
    };
    let (runtime, jit) = (eval("runtime"), eval("mlir"));
    assert_eq!(
        String::from_utf8_lossy(&runtime.stdout),
        String::from_utf8_lossy(&jit.stdout)
    );
    // Each plane count ran through the JIT, once; the runtime's eval never did.
    let said = String::from_utf8_lossy(&jit.stderr).to_string();
    for k in [2, 5, 8] {
        let line = format!("K = {k}: compiled and ran through the MLIR JIT");
        assert_eq!(said.matches(&line).count(), 1, "{said}");
    }
    assert!(!String::from_utf8_lossy(&runtime.stderr).contains("MLIR JIT"));
    let jit = String::from_utf8_lossy(&jit.stdout).to_string();
    let report: serde_json::Value = serde_json::from_str(&jit).unwrap();
    let rows = report["rows"].as_array().unwrap();
    // fp32 and the three plane counts, each scored on all 16 images.
    assert_eq!(rows.len(), 4, "{jit}");
    assert!(rows.iter().all(|r| r["top1"].as_f64().is_some()), "{jit}");
    let err = fails(&eval_mlir(model, images, &labels, &["--path", "float"]));
    assert!(err.contains("integer path"), "{err}");
}

#[cfg(not(feature = "mlir"))]
#[test]
fn without_the_feature_mlir_commands_say_how_to_enable_it() {
    let (dir, model, images) = files();
    let labels = labels();
    let out = dir.join("o").display().to_string();
    for args in [
        vec!["emit-mlir", model.as_str(), "--planes", "4"],
        vec![
            "build",
            model,
            "--backend",
            "mlir",
            "--name",
            "m",
            "-o",
            &out,
        ],
        vec![
            "run",
            model,
            "--input",
            images,
            "--out",
            &out,
            "--backend",
            "mlir",
        ],
        eval_mlir(model, images, &labels, &[]),
    ] {
        let err = fails(&args);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("cargo build --features mlir") && err.contains("libmlir-22-dev"),
            "{err}"
        );
    }
}
