//! The MLIR backend's object file (`PREFIX.o` + `PREFIX.h`) linked with the shared C test
//! driver by gcc, against the reference runtime's integer path, bit for bit.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use strata_backend_mlir::{write_object, MlirOptions};
use strata_ir::container::read_container;
use strata_ir::Graph;
use strata_runtime::{run_with, QuantPath, RunOptions};
use strata_test_support::c::{bits, gcc, main_c, port_sizes, run_c};
use strata_test_support::{mnist, rows, STRICT_C99};

fn mnist() -> &'static Graph {
    static G: OnceLock<Graph> = OnceLock::new();
    G.get_or_init(|| {
        let bytes = mnist::container(mnist::fp32(), rows(&mnist::fixture("calib"), 0..32));
        read_container(&bytes).unwrap().graph
    })
}

/// Writes the object and header at `k` planes (prefix `model`) and links the test driver.
fn build(g: &Graph, k: u8, tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-mlir-obj-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = MlirOptions {
        planes: k,
        name: "model".into(),
        ..Default::default()
    };
    let written = write_object(g, &opts, &dir).unwrap();
    assert_eq!(written, vec![dir.join("model.o"), dir.join("model.h")]);
    let header = std::fs::read_to_string(dir.join("model.h")).unwrap();
    assert!(header.contains("int model_run(const float *input, float *output);"));
    assert!(header.contains(&format!("#define MODEL_PLANES {k}\n")));
    let (inputs, outputs) = port_sizes(g);
    std::fs::write(dir.join("main.c"), main_c(&inputs, &outputs)).unwrap();
    let exe = dir.join("main");
    let out = Command::new(gcc())
        .args(STRICT_C99)
        .arg("-o")
        .arg(&exe)
        .arg(dir.join("main.c"))
        .arg(dir.join("model.o"))
        .arg("-lm")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "linking {tag} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

#[test]
fn mnist_object_matches_runtime_bit_for_bit() {
    let g = mnist();
    let images = rows(&mnist::fixture("images"), 0..20);
    let x = images.as_f32().unwrap();
    for k in [2u8, 5, 8] {
        let exe = build(g, k, &format!("mnist{k}"));
        let opts = RunOptions {
            planes: Some(k),
            path: QuantPath::Integer,
            ..Default::default()
        };
        let want = run_with(g, std::slice::from_ref(&images), &opts).unwrap();
        let got = run_c(&exe, x, 20, None).unwrap();
        assert_eq!(bits(&got), bits(want[0].as_f32().unwrap()), "K={k}");
        // model_run_planes at 2 planes everywhere, and a count without a side table (rc 1).
        let opts = RunOptions {
            planes: Some(2),
            path: QuantPath::Integer,
            ..Default::default()
        };
        let want = run_with(g, std::slice::from_ref(&images), &opts).unwrap();
        let got = run_c(&exe, x, 20, Some(&[2, 2, 2, 2])).unwrap();
        assert_eq!(bits(&got), bits(want[0].as_f32().unwrap()), "K={k} at 2");
        assert_eq!(run_c(&exe, x, 1, Some(&[k + 1, 2, 2, 2])), Err(11));
    }
}
