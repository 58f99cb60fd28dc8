//! `strata compile --qat-tables`: packaging a model with tables trained elsewhere, from the
//! numpy-written fixtures (tests/fixtures/qat_tables, scripts/make_qat_tables_fixtures.py),
//! through the binary: what it records, what it refuses and which options it excludes.

use strata_test_support::repo_root;

strata_test_support::strata_cli!();

use std::path::PathBuf;

use strata_compiler::npy::{read_npy, write_npy};
use strata_ir::Tensor;

fn fixture(name: &str) -> String {
    repo_root()
        .join("tests/fixtures/qat_tables")
        .join(name)
        .display()
        .to_string()
}

fn tmp(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("strata-cli-qat-tables-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name).display().to_string()
}

fn metadata(strata: &str) -> serde_json::Value {
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["inspect", strata, "--json"])).unwrap();
    json["container"]["metadata"].clone()
}

#[test]
fn qat_tables_package_a_model_without_calibration() {
    let model = fixture("tiny.onnx");
    let x = tmp("x.npy");
    let v: Vec<f32> = (0..5 * 8)
        .map(|i| ((i * 7) % 11) as f32 / 4.0 - 1.0)
        .collect();
    write_npy(
        PathBuf::from(&x).as_path(),
        &Tensor::from_f32(vec![5, 8], v).unwrap(),
    )
    .unwrap();
    let mut outputs = Vec::new();
    for tables in ["tables.npz", "tables_compressed.npz"] {
        let out = tmp(&format!("{tables}.strata"));
        let run = strata(&[
            "compile",
            &model,
            "--qat-tables",
            &fixture(tables),
            "-o",
            &out,
        ]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let said = String::from_utf8_lossy(&run.stderr);
        assert!(
            said.contains("packaged 2 layers") && said.contains("k = [2, 4, 8]"),
            "{said}"
        );

        let m = metadata(&out);
        assert_eq!(m["qat_tables"], fixture(tables));
        assert_eq!(m["qat_tables_sha256"].as_str().unwrap().len(), 64);
        assert_eq!(
            m["pipeline"],
            "fold-constants,fold-batchnorm,conv-transpose-to-conv,matmul-to-conv,eliminate-dead-code,\
             load-qat-tables,bitplane-rewrite,eliminate-dead-code"
        );
        assert!(
            m.get("calibration").is_none() && m.get("calibration_method").is_none(),
            "{m}"
        );
        let text = ok(&["inspect", &out]);
        assert!(text.contains("side tables for k = 2,4,8"), "{text}");
        assert!(
            text.contains(&format!("qat_tables: {}", fixture(tables))),
            "{text}"
        );

        let y = tmp(&format!("{tables}.y.npy"));
        ok(&["run", &out, "--input", &x, "--planes", "4", "--out", &y]);
        let sha = m["qat_tables_sha256"].as_str().unwrap().to_string();
        let y = PathBuf::from(&y).join("output_0.npy");
        outputs.push((sha, read_npy(&y).unwrap()));
    }
    // Stored and deflated: different files, the same model.
    assert_ne!(outputs[0].0, outputs[1].0);
    assert_eq!(outputs[0].1, outputs[1].1);
    assert_eq!(outputs[0].1.shape(), &[5, 3]);

    // Calibration inputs given beside the tables are only recorded.
    let out = tmp("with_calib.strata");
    ok(&[
        "compile",
        &model,
        "--qat-tables",
        &fixture("tables.npz"),
        "--calib",
        &x,
        "-o",
        &out,
    ]);
    let m = metadata(&out);
    assert_eq!(m["calibration"], x);
    assert_eq!(m["calibration_samples"], "5");
    assert!(m.get("calibration_method").is_none(), "{m}");
}

#[test]
fn options_the_tables_fix_conflict_with_qat_tables() {
    let model = fixture("tiny.onnx");
    let tables = fixture("tables.npz");
    let out = tmp("conflict.strata");
    for extra in [
        &["--bits", "4"][..],
        &["--planes", "2,4"],
        &["--act-bits", "6"],
        &["--calib-method", "minmax"],
        &["--qat-steps", "5"],
        &["--budget-bytes", "1000"],
    ] {
        let mut args = vec!["compile", &model, "--qat-tables", &tables, "-o", &out];
        args.extend_from_slice(extra);
        let e = fails(&args);
        assert!(
            e.contains("cannot be used with") && e.contains(extra[0]),
            "{extra:?}: {e}"
        );
    }
    assert!(!std::path::Path::new(&out).exists());
    // Without tables, --calib is required, and the message says what to give.
    let e = fails(&["compile", &model, "-o", &out]);
    assert!(
        e.contains("--calib FILE.npy is required") && e.contains("--qat-tables"),
        "{e}"
    );
}

#[test]
fn tables_for_another_model_are_refused_naming_file_and_layer() {
    let mnist = repo_root()
        .join("models/mnist_cnn.onnx")
        .display()
        .to_string();
    let tables = fixture("tables.npz");
    let e = fails(&[
        "compile",
        &mnist,
        "--qat-tables",
        &tables,
        "-o",
        &tmp("bad.strata"),
    ]);
    assert!(e.contains(&tables), "{e}");
    assert!(e.contains("has no table"), "{e}");
    // A file that is not an archive at all.
    let model = fixture("tiny.onnx");
    let e = fails(&[
        "compile",
        &model,
        "--qat-tables",
        &model,
        "-o",
        &tmp("bad.strata"),
    ]);
    assert!(e.contains("not a valid .npz (ZIP) archive"), "{e}");
}
