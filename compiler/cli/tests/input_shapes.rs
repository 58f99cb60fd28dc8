//! `--input-shape` end to end: a model whose input height and width are dynamic is refused
//! with a hint, imports once pinned, and the pin travels with the `.strata` (eval re-imports
//! the source with it; the build-script API takes it too). A model whose shape arithmetic
//! cannot stay symbolic in the batch size gets the pins for batch 1, and runs with them.

use strata_test_support::repo_root;

strata_test_support::strata_cli!();

use strata_compiler::build::Build;
use strata_compiler::npy::read_npy;

fn fixture(name: &str) -> String {
    repo_root()
        .join("tests/fixtures/dynamic")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn dynamic_dims_are_pinned_on_the_command_line_and_recorded() {
    let model = fixture("conv_hw.onnx");
    let e = fails(&["inspect", &model]);
    assert!(
        e.contains("--input-shape") && e.contains("`H` is dynamic") && e.contains("x=Nx1x?x?"),
        "{e}"
    );
    let shown = ok(&["inspect", &model, "--input-shape", "x=Nx1x12x10"]);
    assert!(shown.contains("x: f32[N,1,12,10]"), "{shown}");
    let e = fails(&["inspect", &model, "--input-shape", "x=Nx3x12x10"]);
    assert!(e.contains("axis 1 is 1, not 3"), "{e}");
    let e = fails(&["inspect", &model, "--input-shape", "x=Nx1x12xten"]);
    assert!(e.contains("`ten` is not a size"), "{e}");

    let dir = std::env::temp_dir().join(format!("strata-input-shapes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let strata = dir.join("m.strata").display().to_string();
    let images = fixture("images_12x10.npy");
    ok(&[
        "compile",
        &model,
        "--input-shape",
        "x=Nx1x12x10",
        "--calib",
        &images,
        "-o",
        &strata,
    ]);
    let info = ok(&["inspect", &strata]);
    assert!(info.contains("input_shapes: x=Nx1x12x10"), "{info}");
    // eval imports the FP32 source again with the recorded shape.
    let json = ok(&[
        "eval",
        &strata,
        "--data",
        &images,
        "--labels",
        &fixture("labels.npy"),
        "--planes",
        "8",
        "--json",
    ]);
    let report: serde_json::Value = serde_json::from_str(&json).unwrap();
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows[0]["method"], "fp32", "{json}");
    assert!(rows[1]["max_logit_error"].as_f64().unwrap() < 0.1, "{json}");
    // The batch stayed free: 16 images run at once.
    let out = dir.join("out");
    ok(&[
        "run",
        &strata,
        "--input",
        &images,
        "--out",
        &out.display().to_string(),
    ]);
    assert_eq!(
        read_npy(&out.join("output_0.npy")).unwrap().shape(),
        &[16, 10]
    );

    // The build-script API: the same pin, the same container bytes.
    let built = Build::new(&model)
        .calibration(&images)
        .input_shape("x", "Nx1x12x10".parse().unwrap())
        .cargo_metadata(false)
        .strata_bytes()
        .unwrap();
    let cli = std::fs::read(&strata).unwrap();
    let (a, b) = (
        strata_ir::container::read_container(&built).unwrap(),
        strata_ir::container::read_container(&cli).unwrap(),
    );
    assert_eq!(a.graph, b.graph);
    assert_eq!(
        a.metadata.get("input_shapes"),
        b.metadata.get("input_shapes")
    );
    assert!(Build::new(&model)
        .calibration(&images)
        .cargo_metadata(false)
        .strata_bytes()
        .is_err());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_shape_computed_from_the_batch_size_gets_the_batch_one_pins() {
    let model = fixture("batch_expand.onnx");
    let e = fails(&["inspect", &model]);
    assert!(
        e.contains("compile for batch 1: --input-shape x=1x4") && e.contains("node `expand`"),
        "{e}"
    );
    // With pins given, the error is the importer's alone.
    let e = fails(&["inspect", &model, "--input-shape", "x=Nx4"]);
    assert!(
        !e.contains("compile for batch 1") && e.contains("node `expand`"),
        "{e}"
    );
    // The suggested pin works: y = relu(x + token). A run at x + 10 (every sum positive)
    // reads the token back, and the run at x must be relu of x plus it.
    let dir = std::env::temp_dir().join(format!("strata-batch-one-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |x: Vec<f32>, tag: &str| -> Vec<f32> {
        let path = dir.join(format!("{tag}.npy"));
        let t = strata_ir::Tensor::from_f32(vec![1, 4], x).unwrap();
        strata_compiler::npy::write_npy(&path, &t).unwrap();
        let out = dir.join(tag);
        let (xs, outs) = (path.display().to_string(), out.display().to_string());
        ok(&[
            "run",
            &model,
            "--input-shape",
            "x=1x4",
            "--input",
            &xs,
            "--out",
            &outs,
        ]);
        read_npy(&out.join("output_0.npy"))
            .unwrap()
            .as_f32()
            .unwrap()
            .to_vec()
    };
    let x = vec![-3.0f32, -0.25, 0.5, 2.0];
    let shifted = run(x.iter().map(|v| v + 10.0).collect(), "shifted");
    let token: Vec<f32> = shifted
        .iter()
        .zip(&x)
        .map(|(y, v)| y - (v + 10.0))
        .collect();
    assert!(token.iter().all(|t| t.abs() < 5.0), "{token:?}");
    let y = run(x.clone(), "plain");
    for i in 0..4 {
        let want = (x[i] + token[i]).max(0.0);
        assert!((y[i] - want).abs() < 1e-5, "y[{i}] = {} want {want}", y[i]);
    }
    assert!(y.contains(&0.0) && y.iter().any(|&v| v > 0.0), "{y:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A symbolic first dimension that is not a batch (an LSTM's sequence, as silero-vad's
/// sequence model declares it): the shape error says how to pin it, and the pinned model runs
/// (the LSTM's final state over a sequence of 4, within (−1, 1)).
#[test]
fn a_first_dimension_that_is_a_sequence_gets_the_pins() {
    let model = fixture("sequence_first.onnx");
    let e = fails(&["inspect", &model]);
    assert!(
        e.contains("node `lstm`")
            && e.contains("the batch dimension cannot be used here")
            && e.contains("pin the input's shape")
            && e.contains("--input-shape x=1x1x2"),
        "{e}"
    );
    let dir = std::env::temp_dir().join(format!("strata-seq-first-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let x = dir.join("x.npy");
    let t = strata_ir::Tensor::from_f32(
        vec![4, 1, 2],
        vec![0.5, -1.0, 0.25, 2.0, -0.5, 1.0, 1.5, -2.0],
    )
    .unwrap();
    strata_compiler::npy::write_npy(&x, &t).unwrap();
    let out = dir.join("out");
    let (xs, outs) = (x.display().to_string(), out.display().to_string());
    ok(&[
        "run",
        &model,
        "--input-shape",
        "x=4x1x2",
        "--input",
        &xs,
        "--out",
        &outs,
    ]);
    let y = read_npy(&out.join("output_0.npy")).unwrap();
    assert_eq!(y.shape(), [1, 1, 3]);
    let y = y.as_f32().unwrap();
    assert!(
        y.iter().all(|v| v.abs() < 1.0) && y.iter().any(|&v| v != 0.0),
        "{y:?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
