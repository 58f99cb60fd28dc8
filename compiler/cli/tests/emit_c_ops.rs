//! The C backend on the ops of `new_ops` (data movement, reductions, Max/Min, BatchNorm, IEEE
//! unary functions, Resize), one net per chain behind a bit-plane convolution: emitted for
//! the generic target at K = 8, run at 2, 5 and 8 planes, built with gcc in strict C99 and compared bit for bit
//! with the runtime's integer path, for `PREFIX_run` and for `PREFIX_run_planes`. (The
//! cross-ISA matrix runs all chains as one net: `emit_c_targets`.)

mod new_ops;

use std::path::{Path, PathBuf};
use std::process::Command;

use strata_compiler::backend::c::{emit, write_c, EmitOptions};
use strata_ir::container::read_container;
use strata_ir::{Graph, Tensor};
use strata_runtime::{run_with, QuantPath, RunOptions};
use strata_test_support::{mnist, values, STRICT_C99};

const MAIN_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include "model.h"
/* usage: main IN OUT N [k]: N samples through model_run, or model_run_planes at k everywhere. */
int main(int argc, char **argv)
{
    static float in[MODEL_INPUT_SIZE], out[MODEL_OUTPUT_SIZE];
    uint8_t ppl[MODEL_NUM_LAYERS + 1];
    FILE *fi, *fo;
    long n, i;
    if (argc < 4) return 2;
    n = atol(argv[3]);
    for (i = 0; i < MODEL_NUM_LAYERS; ++i) ppl[i] = (uint8_t)(argc > 4 ? atoi(argv[4]) : 0);
    fi = fopen(argv[1], "rb");
    fo = fopen(argv[2], "wb");
    if (!fi || !fo) return 3;
    for (i = 0; i < n; ++i) {
        int rc;
        if (fread(in, sizeof(float), MODEL_INPUT_SIZE, fi) != MODEL_INPUT_SIZE) return 4;
        rc = argc > 4 ? model_run_planes(in, out, ppl) : model_run(in, out);
        if (rc != 0) return 10 + rc;
        fwrite(out, sizeof(float), MODEL_OUTPUT_SIZE, fo);
    }
    fclose(fi);
    fclose(fo);
    return 0;
}
"#;

/// Fails loudly when gcc is missing: this test must never pass without running C.
fn require_gcc() {
    let ok = Command::new("gcc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "gcc is required by the C backend tests; refusing to skip"
    );
}

fn build(graph: &Graph, k: u8, tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-emit-c-ops-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = EmitOptions {
        planes: k,
        name: "model".into(),
        ..Default::default()
    };
    write_c(graph, &opts, &dir).unwrap();
    std::fs::write(dir.join("main.c"), MAIN_C).unwrap();
    let exe = dir.join("main");
    let out = Command::new("gcc")
        .args(STRICT_C99)
        .arg("-o")
        .arg(&exe)
        .arg(dir.join("model.c"))
        .arg(dir.join("main.c"))
        .arg("-lm")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gcc failed for {tag}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

fn run_c(exe: &Path, x: &[f32], n: usize, k: Option<u8>) -> Vec<u32> {
    let dir = exe.parent().unwrap();
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join("in.bin"), bytes).unwrap();
    let mut cmd = Command::new(exe);
    cmd.arg(dir.join("in.bin"))
        .arg(dir.join("out.bin"))
        .arg(n.to_string());
    if let Some(k) = k {
        cmd.arg(k.to_string());
    }
    assert!(cmd.status().unwrap().success(), "{exe:?} failed");
    let out = std::fs::read(dir.join("out.bin")).unwrap();
    out.chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn new_ops_match_the_runtime_bit_for_bit() {
    require_gcc();
    let n = 6;
    for (i, (name, fp32)) in new_ops::nets().into_iter().enumerate() {
        let calib = Tensor::from_f32(vec![16, 3, 9, 9], values(16 * 243, 700 + i as u64)).unwrap();
        let g = read_container(&mnist::container(fp32, calib))
            .unwrap()
            .graph;
        let x: Vec<f32> = values(n * 243, 800 + i as u64)
            .into_iter()
            .map(|v| 2.0 * v)
            .collect();
        let xt = Tensor::from_f32(vec![n, 3, 9, 9], x.clone()).unwrap();
        let exe = build(&g, 8, name);
        for k in [2u8, 5, 8] {
            let opts = RunOptions {
                planes: Some(k),
                path: QuantPath::Integer,
                ..Default::default()
            };
            let want: Vec<u32> = run_with(&g, std::slice::from_ref(&xt), &opts).unwrap()[0]
                .as_f32()
                .unwrap()
                .iter()
                .map(|v| v.to_bits())
                .collect();
            let got = run_c(&exe, &x, n, Some(k));
            let differ = got.iter().zip(&want).filter(|(a, b)| a != b).count();
            assert_eq!(got.len(), want.len(), "{name} K={k}");
            assert_eq!(differ, 0, "{name} K={k}: {differ} of {} differ", want.len());
            if k == 8 {
                assert_eq!(run_c(&exe, &x, n, None), want, "{name} model_run");
            }
        }
    }
}

/// The index tables and interpolation taps count in the weight bytes the header reports.
#[test]
fn tables_count_in_the_weight_bytes() {
    let (_, fp32) = new_ops::nets().swap_remove(2);
    let calib = Tensor::from_f32(vec![16, 3, 9, 9], values(16 * 243, 702)).unwrap();
    let g = read_container(&mnist::container(fp32, calib))
        .unwrap()
        .graph;
    let opts = EmitOptions {
        planes: 4,
        name: "m".into(),
        ..Default::default()
    };
    let out = emit(&g, &opts).unwrap();
    let lowered = strata_compiler::backend::c::lower(&g, &opts).unwrap();
    assert!(!lowered.tables.is_empty() && !lowered.taps.is_empty());
    let tables: usize = lowered.tables.iter().map(|t| 4 * t.indices.len()).sum();
    let taps: usize = lowered.taps.iter().map(|t| t.bytes()).sum();
    assert!(out.stats.weight_bytes as usize > tables + taps);
    assert!(out.header.contains(&format!(
        "#define M_WEIGHT_BYTES {}\n",
        out.stats.weight_bytes
    )));
}
