//! Runs the example binary on the bundled digits and checks the accuracy it prints.

use std::process::Command;

#[test]
fn classifies_the_bundled_digits() {
    let out = Command::new(env!("CARGO_BIN_EXE_strata-example-build-rs"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pct: f64 = stdout
        .strip_prefix("K=4 top-1: ")
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output: {stdout}"));
    assert!(pct >= 97.0, "{stdout}");
    assert!(stdout.contains("(") && stdout.contains("/500)"), "{stdout}");
    // With the `mlir` feature the MLIR-built object must give the C model's logits exactly.
    let mlir = stdout.lines().find(|l| l.starts_with("MLIR K=4 top-1: "));
    if cfg!(feature = "mlir") {
        let line = mlir.unwrap_or_else(|| panic!("no MLIR line: {stdout}"));
        assert!(
            line.ends_with("logits bit-identical to C: 500/500"),
            "{stdout}"
        );
    } else {
        assert!(mlir.is_none(), "{stdout}");
    }
}
