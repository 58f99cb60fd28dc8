//! The MLIR backend's object file (`PREFIX.o` + `PREFIX.h`) linked with the shared C test
//! driver by gcc, against the reference runtime's integer path, bit for bit.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use strata_backend_mlir::{write_object, Dot, MlirError, MlirOptions, Target};
use strata_ir::container::read_container;
use strata_ir::{Graph, Tensor};
use strata_runtime::{run_with, QuantPath, RunOptions};
use strata_test_support::c::{
    bits, deinterleave, gcc, interleave, link_object, main_c, port_sizes, run_c,
};
use strata_test_support::{mnist, rows};

fn mnist() -> &'static Graph {
    static G: OnceLock<Graph> = OnceLock::new();
    G.get_or_init(|| {
        let bytes = mnist::container(mnist::fp32(), rows(&mnist::fixture("calib"), 0..32));
        read_container(&bytes).unwrap().graph
    })
}

/// Writes the object and header at `k` planes (prefix `model`) for `target` and links the
/// test driver with `cc` (`extra`: its flags).
fn build_for(g: &Graph, k: u8, tag: &str, target: &Target, cc: &str, extra: &[&str]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-mlir-obj-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // What `strata build` uses: this machine's fastest kernels (the portable ones for
    // another target).
    let opts = MlirOptions {
        planes: k,
        name: "model".into(),
        dot: Dot::host(),
        ..Default::default()
    };
    let written = write_object(g, &opts, target, &dir).unwrap();
    assert_eq!(written, vec![dir.join("model.o"), dir.join("model.h")]);
    let header = std::fs::read_to_string(dir.join("model.h")).unwrap();
    let api = if g.inputs().len() == 1 && g.outputs().len() == 1 {
        "int model_run(const float *input, float *output);"
    } else {
        "int model_run(const float *const *inputs, float *const *outputs);"
    };
    assert!(header.contains(api), "{header}");
    assert!(header.contains(&format!("#define MODEL_PLANES {k}\n")));
    let (inputs, outputs) = port_sizes(g);
    std::fs::write(dir.join("main.c"), main_c(&inputs, &outputs)).unwrap();
    link_object(cc, extra, &dir)
}

/// Links for this machine with gcc.
fn build(g: &Graph, k: u8, tag: &str) -> PathBuf {
    build_for(g, k, tag, &Target::default(), gcc(), &[])
}

/// Fails loudly when a cross tool is missing: the aarch64 check must never pass unrun.
fn require(tool: &str) {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{tool} is required (scripts/setup-system.sh installs it)"
    );
}

#[test]
fn mnist_aarch64_object_runs_under_qemu_bit_for_bit() {
    require("aarch64-linux-gnu-gcc");
    require("qemu-aarch64");
    let g = mnist();
    let images = rows(&mnist::fixture("images"), 0..20);
    let x = images.as_f32().unwrap();
    let target = Target {
        triple: Some("aarch64-linux-gnu".into()),
        cpu: Some("cortex-a72".into()),
    };
    for k in 2..=8u8 {
        let exe = build_for(
            g,
            k,
            &format!("a64-{k}"),
            &target,
            "aarch64-linux-gnu-gcc",
            &["-static"],
        );
        let dir = exe.parent().unwrap();
        let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::fs::write(dir.join("in.bin"), bytes).unwrap();
        let st = Command::new("qemu-aarch64")
            .arg(&exe)
            .arg(dir.join("in.bin"))
            .arg(dir.join("out.bin"))
            .arg("20")
            .status()
            .unwrap();
        assert!(st.success(), "qemu-aarch64 K={k}: {st}");
        let got: Vec<f32> = std::fs::read(dir.join("out.bin"))
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        let opts = RunOptions {
            planes: Some(k),
            path: QuantPath::Integer,
            ..Default::default()
        };
        let want = run_with(g, std::slice::from_ref(&images), &opts).unwrap();
        assert_eq!(bits(&got), bits(want[0].as_f32().unwrap()), "aarch64 K={k}");
    }
}

/// The portable kernels as LLVM selects them for AVX2 (`vpmaddwd`, no VNNI), through
/// `--target-triple`, run here: the same bits.
#[test]
fn mnist_x86_64_v3_object_matches_runtime_bit_for_bit() {
    let g = mnist();
    let images = rows(&mnist::fixture("images"), 0..20);
    let x = images.as_f32().unwrap();
    let target = Target {
        triple: Some("x86_64-linux-gnu".into()),
        cpu: Some("x86-64-v3".into()),
    };
    for k in [2u8, 5, 8] {
        let exe = build_for(g, k, &format!("v3-{k}"), &target, "gcc", &[]);
        let opts = RunOptions {
            planes: Some(k),
            path: QuantPath::Integer,
            ..Default::default()
        };
        let want = run_with(g, std::slice::from_ref(&images), &opts).unwrap();
        let got = run_c(&exe, x, 20, None).unwrap();
        assert_eq!(
            bits(&got),
            bits(want[0].as_f32().unwrap()),
            "x86-64-v3 K={k}"
        );
    }
}

#[test]
fn mnist_object_matches_runtime_bit_for_bit() {
    let g = mnist();
    let images = rows(&mnist::fixture("images"), 0..20);
    let x = images.as_f32().unwrap();
    for k in 2..=8u8 {
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

/// Two inputs and three outputs: the object exports the array form of `model_run` and
/// `model_run_planes` that the C backend's header declares, and gives the runtime's bits.
#[test]
fn several_inputs_and_outputs_object_matches_runtime_bit_for_bit() {
    let g = mnist::two_in_three_out(mnist());
    let n = 6;
    let images = rows(&mnist::fixture("images"), 0..n);
    let bias: Vec<f32> = (0..n * 10).map(|i| (i as f32 * 0.37).sin() * 2.0).collect();
    let bias_t = Tensor::from_f32(vec![n, 10], bias.clone()).unwrap();
    let (sizes_in, sizes_out) = port_sizes(&g);
    let x = interleave(&[images.as_f32().unwrap(), &bias], &sizes_in, n);
    for k in [2u8, 8] {
        let exe = build(&g, k, &format!("multi{k}"));
        for ppl in [None, Some([2u8, 2, 2, 2])] {
            let opts = RunOptions {
                planes: Some(ppl.map_or(k, |p| p[0])),
                path: QuantPath::Integer,
                ..Default::default()
            };
            let want = run_with(&g, &[images.clone(), bias_t.clone()], &opts).unwrap();
            let got = run_c(&exe, &x, n, ppl.as_ref().map(|p| &p[..])).unwrap();
            let got = deinterleave(&got, &sizes_out, n).unwrap();
            assert_eq!(got.len(), 3);
            for (j, (gv, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(
                    bits(gv),
                    bits(w.as_f32().unwrap()),
                    "K={k} output {j} {ppl:?}"
                );
            }
            assert_eq!(bits(&got[2]), bits(&bias));
        }
        assert_eq!(run_c(&exe, &x, 1, Some(&[k + 1, 2, 2, 2])), Err(11));
    }
}

#[test]
fn bad_targets_are_typed_errors() {
    let dir = std::env::temp_dir().join(format!("strata-mlir-obj-{}-bad", std::process::id()));
    let opts = MlirOptions {
        planes: 2,
        ..Default::default()
    };
    let cpu_only = Target {
        triple: None,
        cpu: Some("cortex-a72".into()),
    };
    let err = write_object(mnist(), &opts, &cpu_only, &dir).unwrap_err();
    assert!(matches!(err, MlirError::Target(_)), "{err}");
    let bogus = Target {
        triple: Some("no-such-arch-unknown-linux".into()),
        cpu: None,
    };
    let err = write_object(mnist(), &opts, &bogus, &dir).unwrap_err();
    assert!(
        matches!(err, MlirError::Tool { ref tool, .. } if tool.ends_with("opt")),
        "{err}"
    );
    // Nothing is left behind under the object's name.
    assert!(!dir.join("model.o").exists() && !dir.join(".model.o.partial").exists());
}
