//! Build-system integration: the `Build` library API, determinism of compile + emit-c,
//! mixed precision under a byte budget (stored in the container, honoured by the runtime and
//! the C backend), and `strata manifest` with `--fit-flash/--fit-ram`.

use strata_test_support::{mnist, repo_root, rows};

strata_test_support::strata_cli!();

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use strata_compiler::backend::c::{emit, layer_names, EmitOptions, EmitStats};
use strata_compiler::build::{Backend, Build, BuildError, Target};
use strata_compiler::compile::{compile_to_container, CompileError, CompileOptions};
use strata_compiler::mixed_precision::{MixedError, MixedPlan};
use strata_compiler::npy::{read_npy, write_npy};
use strata_compiler::onnx::{import_file, ImportOptions};
use strata_ir::container::{read_container, strip_container, ContainerError};
use strata_ir::Tensor;
use strata_runtime::{run_with, RunOptions};

/// The size figures of `g` emitted for `armv7m` at `k` planes (the target whose bytes fall
/// with `k`).
fn armv7m_stats(g: &strata_ir::Graph, k: u8) -> EmitStats {
    let options = EmitOptions {
        target: Target::Armv7m,
        planes: k,
        name: "m".into(),
        layer_planes: None,
        adaptive: None,
        code_bits: Default::default(),
    };
    emit(g, &options).unwrap().stats
}

fn tmp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-build-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn model() -> PathBuf {
    repo_root().join("models/mnist_cnn.onnx")
}

fn calib() -> PathBuf {
    repo_root().join("tests/fixtures/mnist/calib.npy")
}

/// Uniform sizes of every plane count and a budget between k=3 and k=4.
struct Mixed {
    bytes: Vec<u8>,
    budget: u64,
    plan: MixedPlan,
}

/// The MNIST CNN compiled with a budget between the C weight bytes of uniform k=3 and k=4
/// (32 calibration samples), shared by the tests.
fn mixed() -> &'static Mixed {
    static M: OnceLock<Mixed> = OnceLock::new();
    M.get_or_init(|| {
        let calib = rows(&read_npy(&calib()).unwrap(), 0..32);
        let fp32 = import_file(&model(), &ImportOptions::default()).unwrap();
        let uniform = compile_to_container(
            fp32.clone(),
            vec![calib.clone()],
            &CompileOptions::default(),
            BTreeMap::new(),
            |_| {},
        )
        .unwrap();
        let g = read_container(&uniform).unwrap().graph;
        let wb = |k: u8| armv7m_stats(&g, k).weight_bytes;
        let budget = (wb(3) + wb(4)) / 2;
        let options = CompileOptions {
            budget_bytes: Some(budget),
            ..CompileOptions::default()
        };
        let bytes =
            compile_to_container(fp32, vec![calib], &options, BTreeMap::new(), |_| {}).unwrap();
        let loaded = read_container(&bytes).unwrap();
        let plan: MixedPlan = {
            let text = &loaded.metadata["mixed_precision"];
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            MixedPlan {
                budget_bytes: v["budget_bytes"].as_u64().unwrap(),
                layer_planes: serde_json::from_value(v["layer_planes"].clone()).unwrap(),
                weight_bytes: v["weight_bytes"].as_u64().unwrap(),
                calibration_error: v["calibration_error"].as_f64().unwrap(),
                uniform: None,
                layers: Vec::new(),
            }
        };
        Mixed {
            bytes,
            budget,
            plan,
        }
    })
}

#[test]
fn build_api_is_deterministic_and_writes_only_changed_files() {
    let (a, b) = (tmp("det-a"), tmp("det-b"));
    let build = || {
        Build::new(model())
            .calibration(calib())
            .calibration_samples(16)
            .planes(4)
            .target(Target::Generic)
            .name("mnist_cnn")
            .cargo_metadata(false)
    };
    let out_a = build().emit_c(&a).unwrap();
    let out_b = build().emit_c(&b).unwrap();
    for (x, y) in [
        (&out_a.header, &out_b.header),
        (&out_a.artifact, &out_b.artifact),
    ] {
        assert_eq!(std::fs::read(x).unwrap(), std::fs::read(y).unwrap());
    }
    assert_eq!(out_a.planes, 4);
    assert_eq!(out_a.artifact, a.join("mnist_cnn.c"));
    let header = std::fs::read_to_string(&out_a.header).unwrap();
    assert!(header.contains("#define MNIST_CNN_PLANES 4"));
    assert!(header.contains(&format!(
        "#define MNIST_CNN_WEIGHT_BYTES {}",
        out_a.stats.weight_bytes
    )));
    assert!(header.contains(&format!("#define MNIST_CNN_MACS {}", out_a.stats.macs)));
    // Side tables only for 2..=K when compiling for K: K=5 is not available.
    let strata_path = a.join("m.strata");
    build().write_strata(&strata_path).unwrap();
    let loaded = read_container(&std::fs::read(&strata_path).unwrap()).unwrap();
    let err = emit(
        &loaded.graph,
        &EmitOptions {
            target: Target::Generic,
            planes: 5,
            name: "m".into(),
            layer_planes: None,
            adaptive: None,
            code_bits: Default::default(),
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("no side table"), "{err}");
    // An unchanged file keeps its timestamp (no needless rebuild of the C).
    let before = std::fs::metadata(&out_a.artifact)
        .unwrap()
        .modified()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    build().emit_c(&a).unwrap();
    let after = std::fs::metadata(&out_a.artifact)
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);
    // Starting from the existing .strata gives the same C.
    let c = tmp("det-c");
    let from_strata = Build::new(&strata_path)
        .planes(4)
        .name("mnist_cnn")
        .cargo_metadata(false)
        .emit_c(&c)
        .unwrap();
    assert_eq!(
        std::fs::read(&from_strata.artifact).unwrap(),
        std::fs::read(&out_a.artifact).unwrap()
    );
}

#[test]
fn build_api_errors_name_the_problem() {
    let dir = tmp("errors");
    let e = Build::new(model()).cargo_metadata(false).emit_c(&dir);
    assert!(matches!(e, Err(BuildError::NoCalibration { .. })), "{e:?}");
    let s = dir.join("x.strata");
    std::fs::write(&s, b"not a container").unwrap();
    let e = Build::new(&s)
        .calibration(calib())
        .cargo_metadata(false)
        .emit_c(&dir);
    assert!(
        matches!(
            e,
            Err(BuildError::AlreadyCompiled {
                what: "calibration",
                ..
            })
        ),
        "{e:?}"
    );
    let e = Build::new(&s)
        .cargo_metadata(false)
        .emit_c(&dir)
        .unwrap_err();
    assert!(e.to_string().contains("x.strata"), "{e}");
    assert!(matches!(e, BuildError::Container { .. }), "{e:?}");
    let e = Build::new(repo_root().join("missing.onnx"))
        .calibration(calib())
        .cargo_metadata(false)
        .emit_c(&dir)
        .unwrap_err();
    assert!(e.to_string().contains("missing.onnx"), "{e}");
    assert!("armv9".parse::<Target>().is_err());
    assert_eq!("generic".parse::<Target>().unwrap(), Target::Generic);
    let e = Build::new(model())
        .calibration(calib())
        .calibration(calib())
        .cargo_metadata(false)
        .emit_c(&dir)
        .unwrap_err();
    assert!(
        matches!(
            e,
            BuildError::CalibrationCount {
                expected: 1,
                given: 2,
                ..
            }
        ),
        "{e:?}"
    );
}

/// `Build::backend`: the options of the other backend are refused by name, a build without
/// the `mlir` feature says how to enable it, and with it `emit` writes `NAME.o` and the
/// header (the examples' tests link it and compare logits with the C build).
#[test]
fn build_api_backend_choice() {
    let dir = tmp("backend");
    let strata = dir.join("m.strata");
    Build::new(model())
        .calibration(calib())
        .calibration_samples(16)
        .planes(4)
        .cargo_metadata(false)
        .write_strata(&strata)
        .unwrap();
    let from = || Build::new(&strata).cargo_metadata(false).name("m");
    for (build, says) in [
        (from().target_triple("aarch64-linux-gnu"), "Backend::Mlir"),
        (from().target_cpu("znver3"), "Backend::Mlir"),
        (
            from().backend(Backend::Mlir).target(Target::X86_64V3),
            "for the C backend",
        ),
        (
            from().backend(Backend::Mlir).target_cpu("znver3"),
            "target_cpu needs target_triple",
        ),
    ] {
        let e = build.emit(&dir).unwrap_err();
        assert!(matches!(e, BuildError::BackendOption { .. }), "{e:?}");
        assert!(e.to_string().contains(says), "{e}");
        assert!(e.to_string().contains("m.strata"), "{e}");
    }
    let e = from().backend(Backend::Mlir).emit_c(&dir).unwrap_err();
    assert!(e.to_string().contains("call Build::emit"), "{e}");
    let mlir = from().planes(4).backend(Backend::Mlir).emit(&dir);
    if cfg!(feature = "mlir") {
        let out = mlir.unwrap();
        assert_eq!(out.backend, Backend::Mlir);
        assert_eq!(out.artifact, dir.join("m.o"));
        let object = std::fs::read(&out.artifact).unwrap();
        assert_eq!(&object[..4], b"\x7fELF");
        let header = std::fs::read_to_string(&out.header).unwrap();
        assert!(header.contains("int m_run("), "{header}");
        assert!(header.contains("#define M_PLANES 4"), "{header}");
        assert_eq!(
            out.stats.macs,
            from().planes(4).emit(&dir).unwrap().stats.macs
        );
    } else {
        let e = mlir.unwrap_err();
        assert!(matches!(e, BuildError::MlirDisabled { .. }), "{e:?}");
        assert!(e.to_string().contains("--features mlir"), "{e}");
    }
    assert!(!dir.join("m.o.partial").exists());
}

#[test]
fn cli_builds_are_byte_identical() {
    let (a, b) = (tmp("cli-a"), tmp("cli-b"));
    let calib32 = a.join("calib.npy");
    write_npy(&calib32, &rows(&read_npy(&calib()).unwrap(), 0..16)).unwrap();
    let m = model().display().to_string();
    let c = calib32.display().to_string();
    for dir in [&a, &b] {
        let s = dir.join("m.strata").display().to_string();
        ok(&["compile", &m, "--calib", &c, "--planes", "2,4", "-o", &s]);
        ok(&[
            "emit-c",
            &s,
            "--planes",
            "4",
            "--name",
            "mnist",
            "-o",
            &dir.display().to_string(),
        ]);
    }
    for f in ["m.strata", "mnist.h", "mnist.c"] {
        assert_eq!(
            std::fs::read(a.join(f)).unwrap(),
            std::fs::read(b.join(f)).unwrap(),
            "{f}"
        );
    }
}

#[test]
fn mixed_precision_fits_the_budget_and_is_stored() {
    let m = mixed();
    let loaded = read_container(&m.bytes).unwrap();
    let names = layer_names(&loaded.graph).unwrap();
    assert_eq!(loaded.layer_planes.len(), names.len());
    assert_eq!(loaded.layer_planes, m.plan.layer_planes);
    assert!(m.plan.weight_bytes <= m.budget);
    assert_eq!(m.plan.budget_bytes, m.budget);
    // Between uniform 3 and 4: not every layer can keep 4 planes, and some keep more than 3.
    let ks: Vec<u8> = loaded.layer_planes.values().copied().collect();
    assert!(ks.iter().any(|&k| k < 4), "{ks:?}");
    assert!(ks.iter().any(|&k| k > 3), "{ks:?}");
    // The C backend keeps exactly the chosen planes: its weight bytes are the plan's.
    let per_layer: Vec<u8> = names.iter().map(|n| loaded.layer_planes[n]).collect();
    let out = emit(
        &loaded.graph,
        &EmitOptions {
            target: Target::Armv7m,
            planes: *per_layer.iter().max().unwrap(),
            name: "mixed".into(),
            layer_planes: Some(per_layer.clone()),
            adaptive: None,
            code_bits: Default::default(),
        },
    )
    .unwrap();
    assert_eq!(out.stats.weight_bytes, m.plan.weight_bytes);
    for (l, s) in out.stats.layers.iter().enumerate() {
        assert_eq!(s.planes, per_layer[l]);
    }
    let ks: Vec<String> = per_layer.iter().map(|k| k.to_string()).collect();
    assert!(out
        .header
        .contains(&format!("#define MIXED_LAYER_PLANES {{{}}}", ks.join(", "))));
    // The measured error of the choice is no worse than the largest uniform count that fits.
    let g = &loaded.graph;
    let calib = rows(&read_npy(&calib()).unwrap(), 0..32);
    let fp32 = strata_runtime::run(
        &import_file(&model(), &ImportOptions::default()).unwrap(),
        std::slice::from_ref(&calib),
    )
    .unwrap();
    let kl = |per_layer: BTreeMap<String, u8>| {
        let out = run_with(
            g,
            std::slice::from_ref(&calib),
            &RunOptions {
                planes: Some(8),
                per_layer,
                ..Default::default()
            },
        )
        .unwrap();
        strata_compiler::mixed_precision::mean_abs_error(&fp32[0], &out[0]).unwrap()
    };
    let uniform3 = kl(names.iter().map(|n| (n.clone(), 3)).collect());
    let chosen = kl(loaded.layer_planes.clone());
    assert!((chosen - m.plan.calibration_error).abs() < 1e-12);
    assert!(chosen <= uniform3, "mixed {chosen} vs uniform-3 {uniform3}");
}

#[test]
fn mixed_precision_errors() {
    let calib = rows(&read_npy(&calib()).unwrap(), 0..8);
    let fp32 = import_file(&model(), &ImportOptions::default()).unwrap();
    let options = CompileOptions {
        planes: vec![2, 8],
        budget_bytes: Some(1000),
        ..CompileOptions::default()
    };
    let e = compile_to_container(fp32, vec![calib], &options, BTreeMap::new(), |_| {}).unwrap_err();
    match e {
        CompileError::Mixed(MixedError::Budget { budget, min_bytes }) => {
            assert_eq!(budget, 1000);
            assert!(min_bytes > 1000);
        }
        other => panic!("{other:?}"),
    }
    // A container naming a layer that does not exist is rejected on write.
    let m = mixed();
    let loaded = read_container(&m.bytes).unwrap();
    let bad = strata_ir::container::write_container(
        &loaded.graph,
        &strata_ir::container::ContainerOptions {
            layer_planes: BTreeMap::from([("nope".to_string(), 4)]),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(&bad, ContainerError::BadLayerPlanes { node, .. } if node == "nope"),
        "{bad:?}"
    );
    let name = loaded.layer_planes.keys().next().unwrap().clone();
    let bad = strata_ir::container::write_container(
        &loaded.graph,
        &strata_ir::container::ContainerOptions {
            layer_planes: BTreeMap::from([(name.clone(), 1)]),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(bad.to_string().contains("no side table"), "{bad}");
    // Emitting with a per-layer count above K or the wrong number of counts fails.
    let n = layer_names(&loaded.graph).unwrap().len();
    let e = emit(
        &loaded.graph,
        &EmitOptions {
            target: Target::Generic,
            planes: 3,
            name: "m".into(),
            layer_planes: Some(vec![4; n]),
            adaptive: None,
            code_bits: Default::default(),
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("outside 1..=3"), "{e}");
    let e = emit(
        &loaded.graph,
        &EmitOptions {
            target: Target::Generic,
            planes: 3,
            name: "m".into(),
            layer_planes: Some(vec![3; n + 1]),
            adaptive: None,
            code_bits: Default::default(),
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("per-layer plane counts"), "{e}");
}

/// The reference runtime's logits for the container's stored per-layer choice.
fn run_stored_choice(loaded: &strata_ir::container::Loaded, images: &Tensor) -> Tensor {
    run_with(
        &loaded.graph,
        std::slice::from_ref(images),
        &RunOptions {
            per_layer: loaded.layer_planes.clone(),
            ..Default::default()
        },
    )
    .unwrap()
    .remove(0)
}

#[test]
fn mixed_precision_is_honoured_by_run_and_emit_c_and_survives_strip() {
    let m = mixed();
    let dir = tmp("mixed-cli");
    let s = dir.join("mixed.strata");
    std::fs::write(&s, &m.bytes).unwrap();
    let images_all = mnist::fixture("images");
    let images = rows(&images_all, 0..8);
    let img = dir.join("images.npy");
    write_npy(&img, &images).unwrap();
    let sp = s.display().to_string();
    let ip = img.display().to_string();
    // `strata run` without --planes runs the stored choice.
    let out_default = dir.join("default");
    ok(&[
        "run",
        &sp,
        "--input",
        &ip,
        "--out",
        &out_default.display().to_string(),
    ]);
    let got = read_npy(&out_default.join("output_0.npy")).unwrap();
    let loaded = read_container(&m.bytes).unwrap();
    let want = run_stored_choice(&loaded, &images);
    assert_eq!(got.as_f32().unwrap(), want.as_f32().unwrap());
    // `strata eval` shows the stored choice as its own row, scored on those logits.
    let labels_all = mnist::fixture("labels");
    let labels = Tensor::from_i64(vec![8], labels_all.to_i64_vec().unwrap()[..8].to_vec()).unwrap();
    let lp = dir.join("labels.npy");
    write_npy(&lp, &labels).unwrap();
    let json = ok(&[
        "eval",
        &sp,
        "--data",
        &ip,
        "--labels",
        &lp.display().to_string(),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mixed_row = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["method"] == "strata-mixed")
        .unwrap_or_else(|| panic!("no strata-mixed row in {v}"))
        .clone();
    let want_top1 = strata_compiler::eval::correct(&want, &labels)
        .unwrap()
        .iter()
        .filter(|&&c| c)
        .count() as f64
        / 8.0;
    assert_eq!(mixed_row["top1"].as_f64().unwrap(), want_top1);
    // Its bytes lie between the uniform rows of its smallest and largest layer choice.
    let uniform_bytes = |k: u8| {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["method"] == "strata" && r["planes"] == k)
            .unwrap()["weight_bytes"]
            .as_u64()
            .unwrap()
    };
    let (kmin, kmax) = (
        *loaded.layer_planes.values().min().unwrap(),
        *loaded.layer_planes.values().max().unwrap(),
    );
    assert!(kmin < kmax, "{:?}", loaded.layer_planes);
    let mixed_bytes = mixed_row["weight_bytes"].as_u64().unwrap();
    assert!(
        uniform_bytes(kmin) < mixed_bytes && mixed_bytes < uniform_bytes(kmax),
        "{mixed_bytes} vs k={kmin}: {} and k={kmax}: {}",
        uniform_bytes(kmin),
        uniform_bytes(kmax)
    );
    let stored: BTreeMap<String, u8> =
        serde_json::from_value(mixed_row["layer_planes"].clone()).unwrap();
    assert_eq!(stored, loaded.layer_planes);
    // `emit-c` without --planes keeps each layer's planes: K = the largest choice.
    ok(&[
        "emit-c",
        &sp,
        "--target",
        "armv7m",
        "--name",
        "mixed",
        "-o",
        &dir.display().to_string(),
    ]);
    let header = std::fs::read_to_string(dir.join("mixed.h")).unwrap();
    let kmax = loaded.layer_planes.values().max().unwrap();
    assert!(
        header.contains(&format!("#define MIXED_PLANES {kmax}")),
        "{header}"
    );
    assert!(header.contains(&format!(
        "#define MIXED_WEIGHT_BYTES {}",
        m.plan.weight_bytes
    )));
    // A file cut below a layer's choice runs that layer at the planes present.
    let cut = strip_container(&m.bytes, 3).unwrap();
    let c = read_container(cut).unwrap();
    let eff = strata_ir::container::effective_layer_planes(&c.graph, &c.layer_planes, 3).unwrap();
    for (node, k) in &loaded.layer_planes {
        assert_eq!(eff[node], (*k).min(3));
    }
}

#[test]
fn mixed_precision_c_matches_the_runtime_bit_for_bit() {
    let m = mixed();
    let loaded = read_container(&m.bytes).unwrap();
    // Both weight layouts: codes (generic, x86-64-v3) and packed planes (armv7m).
    for (target, march) in [
        ("generic", None),
        ("x86-64-v3", Some("-march=x86-64-v3")),
        ("armv7m", None),
    ] {
        if march.is_some() && !std::arch::is_x86_feature_detected!("avx2") {
            continue;
        }
        mixed_c_matches(&m.bytes, &loaded, target, march);
    }
}

fn mixed_c_matches(
    bytes: &[u8],
    loaded: &strata_ir::container::Loaded,
    target: &str,
    march: Option<&str>,
) {
    let dir = tmp(&format!("mixed-c-{target}"));
    let s = dir.join("mixed.strata");
    std::fs::write(&s, bytes).unwrap();
    ok(&[
        "emit-c",
        &s.display().to_string(),
        "--target",
        target,
        "--name",
        "model",
        "-o",
        &dir.display().to_string(),
    ]);
    let main_c = r#"
#include <stdio.h>
#include "model.h"
int main(int argc, char **argv)
{
    static float in[MODEL_INPUT_SIZE], out[MODEL_OUTPUT_SIZE];
    FILE *fi = fopen(argv[1], "rb"), *fo = fopen(argv[2], "wb");
    int i;
    if (argc < 3 || !fi || !fo) return 3;
    for (i = 0; i < 8; ++i) {
        if (fread(in, sizeof(float), MODEL_INPUT_SIZE, fi) != MODEL_INPUT_SIZE) return 4;
        /* NULL takes the same per-layer defaults as model_run. */
        if (model_run(in, out) != 0 || (i % 2 && model_run_planes(in, out, NULL) != 0)) return 5;
        fwrite(out, sizeof(float), MODEL_OUTPUT_SIZE, fo);
    }
    fclose(fi);
    fclose(fo);
    return 0;
}
"#;
    std::fs::write(dir.join("main.c"), main_c).unwrap();
    let exe = strata_test_support::c::build_with_driver(&dir, march.as_slice());
    let images = rows(&mnist::fixture("images"), 0..8);
    let bytes: Vec<u8> = images
        .as_f32()
        .unwrap()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(dir.join("in.bin"), bytes).unwrap();
    let st = Command::new(&exe)
        .arg(dir.join("in.bin"))
        .arg(dir.join("out.bin"))
        .status()
        .unwrap();
    assert!(st.success());
    let got: Vec<u32> = std::fs::read(dir.join("out.bin"))
        .unwrap()
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    let want = run_stored_choice(loaded, &images);
    let want: Vec<u32> = want.as_f32().unwrap().iter().map(|v| v.to_bits()).collect();
    assert_eq!(got, want, "target {target}");
}

#[test]
fn manifest_lists_every_plane_count_and_fits_a_device() {
    let m = mixed();
    let dir = tmp("manifest");
    let s = dir.join("m.strata");
    std::fs::write(&s, &m.bytes).unwrap();
    let sp = s.display().to_string();
    // Packed planes (armv7m): the layout whose flash size follows k.
    let v: serde_json::Value =
        serde_json::from_str(&ok(&["manifest", &sp, "--target", "armv7m", "--json"])).unwrap();
    let rows = v["planes"].as_array().unwrap();
    let ks: Vec<u64> = rows.iter().map(|r| r["planes"].as_u64().unwrap()).collect();
    assert_eq!(ks, (2..=8).collect::<Vec<u64>>());
    let loaded = read_container(&m.bytes).unwrap();
    for r in rows {
        let k = r["planes"].as_u64().unwrap() as u8;
        let stats = armv7m_stats(&loaded.graph, k);
        assert_eq!(r["weight_bytes"].as_u64().unwrap(), stats.weight_bytes);
        assert_eq!(r["arena_bytes"].as_u64().unwrap(), stats.arena_bytes);
        assert_eq!(
            r["ram_bytes"].as_u64().unwrap(),
            stats.arena_bytes + stats.scratch_bytes
        );
        assert_eq!(r["macs"].as_u64().unwrap(), stats.macs);
        assert!(r.get("top1").is_none(), "no eval recorded yet");
    }
    assert_eq!(
        v["mixed"]["weight_bytes"].as_u64().unwrap(),
        m.plan.weight_bytes
    );
    // --fit-flash between k=5 and k=6 picks 5 and says why 6..8 do not fit.
    let w = |k: u64| rows[(k - 2) as usize]["weight_bytes"].as_u64().unwrap();
    let flash = (w(5) + w(6)) / 2;
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "manifest",
        &sp,
        "--target",
        "armv7m",
        "--json",
        "--fit-flash",
        &flash.to_string(),
        "--fit-ram",
        "1M",
    ]))
    .unwrap();
    assert_eq!(v["fit"]["chosen"].as_u64(), Some(5));
    let reasons = v["fit"]["reasons"].as_array().unwrap();
    assert!(reasons[0]
        .as_str()
        .unwrap()
        .starts_with("k=8: too big: weights"));
    assert!(reasons[3].as_str().unwrap().starts_with("k=5: fits"));
    // Nothing fits: an error after the reasons.
    let out = strata(&["manifest", &sp, "--fit-flash", "1K"]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("k=2: too big"), "{text}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no plane count"));
    let out = strata(&["manifest", &sp, "--fit-flash", "12Q"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a size"));
    // eval --record stores top-1 per plane count; the manifest shows it and nothing else
    // in the file changes but the metadata.
    let img = dir.join("images.npy");
    let lab = dir.join("labels.npy");
    let fixtures = repo_root().join("tests/fixtures/mnist");
    write_npy(
        &img,
        &rows_of(&read_npy(&fixtures.join("images.npy")).unwrap(), 32),
    )
    .unwrap();
    let labels = read_npy(&fixtures.join("labels.npy")).unwrap();
    write_npy(
        &lab,
        &Tensor::from_i64(vec![32], labels.to_i64_vec().unwrap()[..32].to_vec()).unwrap(),
    )
    .unwrap();
    let eval: serde_json::Value = serde_json::from_str(&ok(&[
        "eval",
        &sp,
        "--data",
        &img.display().to_string(),
        "--labels",
        &lab.display().to_string(),
        "--planes",
        "2,8",
        "--source",
        &model().display().to_string(),
        "--record",
        "--json",
    ]))
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&ok(&["manifest", &sp, "--json"])).unwrap();
    let top1_of = |k: u64| {
        eval["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["method"] == "strata" && r["planes"].as_u64() == Some(k))
            .unwrap()["top1"]
            .as_f64()
            .unwrap()
    };
    let rows = v["planes"].as_array().unwrap();
    assert_eq!(rows[0]["top1"].as_f64(), Some(top1_of(2)));
    assert_eq!(rows[6]["top1"].as_f64(), Some(top1_of(8)));
    assert!(rows[1].get("top1").is_none());
    assert!(v["top1_data"].as_str().unwrap().contains("32 samples"));
    let rewritten = read_container(&std::fs::read(&s).unwrap()).unwrap();
    assert_eq!(rewritten.graph, loaded.graph);
    assert_eq!(rewritten.layer_planes, loaded.layer_planes);
}

fn rows_of(t: &Tensor, n: usize) -> Tensor {
    rows(t, 0..n)
}
