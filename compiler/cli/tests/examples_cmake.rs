//! `examples/cmake`: configures and builds the CMake example with `cmake/Strata.cmake` and the
//! freshly built `strata` binary (compile → one .strata → C at K = 2 and K = 8 → one program),
//! runs it and checks the accuracies it prints on the 500 bundled test digits.

use strata_test_support::repo_root;

use std::process::Command;

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (cmake and a C compiler are required)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The percentage printed after `label` (`K=2 top-1: 98.00 % …`).
fn top1(stdout: &str, label: &str) -> f64 {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(label))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no `{label}` line in:\n{stdout}"))
}

#[test]
fn cmake_example_builds_two_plane_counts_into_one_program() {
    let build = std::env::temp_dir().join(format!("strata-cmake-example-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&build);
    run(Command::new("cmake")
        .arg("-S")
        .arg(repo_root().join("examples/cmake"))
        .arg("-B")
        .arg(&build)
        .arg(format!(
            "-DSTRATA_EXECUTABLE={}",
            env!("CARGO_BIN_EXE_strata")
        ))
        // The generated code and the example must build warning-free.
        .arg("-DCMAKE_C_FLAGS=-Wall -Wextra -Werror -pedantic")
        // A `strata` with the MLIR backend also links K = 8 built through it.
        .arg(format!(
            "-DSTRATA_MLIR={}",
            if cfg!(feature = "mlir") { "ON" } else { "OFF" }
        )));
    run(Command::new("cmake").arg("--build").arg(&build));
    let stdout = run(&mut Command::new(build.join("classify")));
    let (k2, k8) = (top1(&stdout, "K=2 top-1: "), top1(&stdout, "K=8 top-1: "));
    assert!(
        stdout.contains("(500)") || stdout.contains("/500)"),
        "{stdout}"
    );
    // Measured with the bundled 256 calibration images: K=2 98.00 %, K=8 99.20 %.
    assert!(k8 >= 95.0, "{stdout}");
    assert!(k2 >= 90.0, "{stdout}");
    // The emit-c outputs sit in per-model include directories.
    for name in ["mnist_k2", "mnist_k8"] {
        let h = build.join(format!("strata/{name}/{name}.h"));
        assert!(h.exists(), "{}", h.display());
    }
    // `BACKEND mlir`: the object's logits are the C build's, bit for bit, on every image.
    let mlir = stdout.lines().find(|l| l.starts_with("MLIR K=8 top-1: "));
    if cfg!(feature = "mlir") {
        let line = mlir.unwrap_or_else(|| panic!("no MLIR line:\n{stdout}"));
        assert!(
            line.ends_with("logits bit-identical to C: 500/500"),
            "{stdout}"
        );
        assert_eq!(top1(&stdout, "MLIR K=8 top-1: "), k8, "{stdout}");
        assert!(build.join("strata/mnist_k8_mlir/mnist_k8_mlir.o").exists());
    } else {
        assert!(mlir.is_none(), "{stdout}");
    }
    let _ = std::fs::remove_dir_all(&build);
}
