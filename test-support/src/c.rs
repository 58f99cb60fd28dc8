//! Building emitted C with the host compiler and running it on samples: the harness of the
//! C backend's exactness tests (`compiler/cli/tests/emit_c.rs`) and of the real-model
//! corpus (`compiler/cli/tests/corpus.rs`), so both compare the same way.

use std::path::{Path, PathBuf};
use std::process::Command;

use strata_compiler::backend::c::{write_c, EmitError, EmitOptions, Target};
use strata_ir::Graph;

use crate::STRICT_C99;

/// The test driver for a model with inputs of `inputs` floats and outputs of `outputs`
/// floats (batch 1, graph order): `main IN OUT N [p0,p1,...]` reads `N` samples of raw f32
/// from `IN` — per sample every input in turn — runs `model_run` (or `model_run_planes` with
/// the per-layer counts) and writes every output in turn to `OUT`; a non-zero return code of
/// the model exits with `10 + rc`. One input and one output use the pointer form of the API,
/// anything else the array form.
pub fn main_c(inputs: &[usize], outputs: &[usize]) -> String {
    let decls: String = inputs
        .iter()
        .enumerate()
        .map(|(i, n)| format!("static float in{i}[{n}];\n"))
        .chain(
            outputs
                .iter()
                .enumerate()
                .map(|(i, n)| format!("static float out{i}[{n}];\n")),
        )
        .collect();
    let names = |dir: &str, n: usize| (0..n).map(|i| format!("{dir}{i}")).collect::<Vec<_>>();
    let (ins, outs) = (names("in", inputs.len()), names("out", outputs.len()));
    let (arrays, args) = if inputs.len() == 1 && outputs.len() == 1 {
        (String::new(), "in0, out0".to_string())
    } else {
        (
            format!(
                "    const float *const ins[] = {{{}}};\n    float *const outs[] = {{{}}};\n",
                ins.join(", "),
                outs.join(", ")
            ),
            "ins, outs".to_string(),
        )
    };
    let reads: String = inputs
        .iter()
        .enumerate()
        .map(|(i, n)| {
            format!("        if (fread(in{i}, sizeof(float), {n}, fi) != {n}) return 4;\n")
        })
        .collect();
    let writes: String = outputs
        .iter()
        .enumerate()
        .map(|(i, n)| format!("        fwrite(out{i}, sizeof(float), {n}, fo);\n"))
        .collect();
    format!(
        r#"#include <stdio.h>
#include <stdlib.h>
#include "model.h"
{decls}/* usage: main IN OUT N [p0,p1,...] — runs N samples, writes N outputs. */
int main(int argc, char **argv)
{{
{arrays}    uint8_t ppl[MODEL_NUM_LAYERS + 1];
    FILE *fi, *fo;
    long n, i;
    int use_ppl = argc > 4;
    if (argc < 4) return 2;
    n = atol(argv[3]);
    if (use_ppl) {{
        char *s = argv[4];
        for (i = 0; i < MODEL_NUM_LAYERS; ++i) {{
            ppl[i] = (uint8_t)strtol(s, &s, 10);
            if (*s == ',') ++s;
        }}
    }}
    fi = fopen(argv[1], "rb");
    fo = fopen(argv[2], "wb");
    if (!fi || !fo) return 3;
    for (i = 0; i < n; ++i) {{
        int rc;
{reads}        rc = use_ppl ? model_run_planes({args}, ppl) : model_run({args});
        if (rc != 0) return 10 + rc;
{writes}    }}
    fclose(fi);
    fclose(fo);
    return 0;
}}
"#
    )
}

/// Batch-1 element counts of `graph`'s inputs and outputs, in graph order.
pub fn port_sizes(graph: &Graph) -> (Vec<usize>, Vec<usize>) {
    let size = |t: &strata_ir::TensorType| t.shape.resolve(1).iter().product::<usize>();
    let inputs = graph
        .inputs()
        .iter()
        .map(|&id| size(&graph.node(id).unwrap().outputs[0].ty))
        .collect();
    let outputs = graph
        .outputs()
        .iter()
        .map(|&v| size(&graph.value(v).unwrap().ty))
        .collect();
    (inputs, outputs)
}

/// Per-sample interleaving of several tensors' rows (`n` samples each of `sizes[j]` floats),
/// the layout [`main_c`] reads and writes.
pub fn interleave(parts: &[&[f32]], sizes: &[usize], n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(sizes.iter().sum::<usize>() * n);
    for i in 0..n {
        for (p, &size) in parts.iter().zip(sizes) {
            out.extend_from_slice(&p[i * size..(i + 1) * size]);
        }
    }
    out
}

/// The inverse of [`interleave`]: one vector of `n × sizes[j]` floats per part. `None` when
/// `flat` does not hold exactly `n` samples.
pub fn deinterleave(flat: &[f32], sizes: &[usize], n: usize) -> Option<Vec<Vec<f32>>> {
    let per: usize = sizes.iter().sum();
    if flat.len() != per * n {
        return None;
    }
    let mut parts: Vec<Vec<f32>> = sizes.iter().map(|&s| Vec::with_capacity(s * n)).collect();
    for sample in flat.chunks_exact(per.max(1)) {
        let mut at = 0;
        for (p, &size) in parts.iter_mut().zip(sizes) {
            p.extend_from_slice(&sample[at..at + size]);
            at += size;
        }
    }
    Some(parts)
}

/// The host C compiler. Fails loudly when gcc is missing: a C test must never pass without
/// running C.
pub fn gcc() -> &'static str {
    let ok = Command::new("gcc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "gcc is required by the C backend tests (install gcc); refusing to skip"
    );
    "gcc"
}

/// Where emitted C is built and run: the target the emitter writes for, the compiler
/// (program and leading flags, strict C99 is added) and the emulator (`None`: natively).
#[derive(Debug, Clone, Copy)]
pub struct Toolchain {
    pub target: Target,
    pub cc: &'static [&'static str],
    pub runner: Option<&'static str>,
}

/// The portable target with the host gcc.
pub const HOST_GENERIC: Toolchain = Toolchain {
    target: Target::Generic,
    cc: &["gcc"],
    runner: None,
};

/// The AVX2 target with the host gcc (runs only where [`host_has_avx2`]).
pub const HOST_X86_64_V3: Toolchain = Toolchain {
    target: Target::X86_64V3,
    cc: &["gcc", "-march=x86-64-v3"],
    runner: None,
};

/// The NEON target, cross-built statically and run under qemu-user.
pub const AARCH64_QEMU: Toolchain = Toolchain {
    target: Target::Aarch64,
    cc: &["aarch64-linux-gnu-gcc", "-static"],
    runner: Some("qemu-aarch64"),
};

/// Whether this machine can run the `x86-64-v3` target's code.
pub fn host_has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Emits `graph` at `k` planes (prefix `model`, generic target) into a fresh temporary
/// directory named after `tag` and builds it with the test driver ([`main_c`] for its ports)
/// in strict C99. An emit
/// error is returned (the corpus records which models the backend refuses); a C compiler
/// error fails the test, since emitted C must always build.
pub fn try_build(graph: &Graph, k: u8, tag: &str) -> Result<PathBuf, EmitError> {
    try_build_with(graph, k, tag, &HOST_GENERIC)
}

/// [`try_build`] for a toolchain's target and compiler. A missing compiler fails the test.
pub fn try_build_with(
    graph: &Graph,
    k: u8,
    tag: &str,
    tc: &Toolchain,
) -> Result<PathBuf, EmitError> {
    let dir = std::env::temp_dir().join(format!("strata-emit-c-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = EmitOptions {
        planes: k,
        name: "model".into(),
        target: tc.target,
        ..Default::default()
    };
    write_c(graph, &opts, &dir)?;
    let (inputs, outputs) = port_sizes(graph);
    std::fs::write(dir.join("main.c"), main_c(&inputs, &outputs)).unwrap();
    let cc = if tc.cc[0] == "gcc" { gcc() } else { tc.cc[0] };
    Ok(compile_driver(cc, &tc.cc[1..], &dir))
}

/// Builds `DIR/model.c` with a test's own driver `DIR/main.c` into `DIR/main` with the host
/// gcc in strict C99 (plus `flags`, e.g. `-march=x86-64-v3`); a compiler error fails the test.
#[track_caller]
pub fn build_with_driver(dir: &Path, flags: &[&str]) -> PathBuf {
    compile_driver(gcc(), flags, dir)
}

/// `cc flags -std=c99 … -o DIR/main DIR/main.c DIR/model.o -lm`: a driver linked with an
/// object file (the MLIR backend's); a compiler error fails the test.
#[track_caller]
pub fn link_object(cc: &str, flags: &[&str], dir: &Path) -> PathBuf {
    let exe = dir.join("main");
    let out = Command::new(cc)
        .args(STRICT_C99)
        .args(flags)
        .arg("-o")
        .arg(&exe)
        .arg(dir.join("main.c"))
        .arg(dir.join("model.o"))
        .arg("-lm")
        .output()
        .unwrap_or_else(|e| panic!("{cc} is required by this test ({e}); refusing to skip"));
    assert!(
        out.status.success(),
        "linking {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// [`build_with_driver`] in gcc's default (GNU) mode: no `-std`, no warning flags, as a user
/// who passes only `flags` builds it.
#[track_caller]
pub fn build_with_driver_default_mode(dir: &Path, flags: &[&str]) -> PathBuf {
    compile(gcc(), flags, &[], dir)
}

/// `cc flags -std=c99 … -o DIR/main DIR/model.c DIR/main.c -lm`; a missing compiler or a
/// compiler error fails the test.
#[track_caller]
fn compile_driver(cc: &str, flags: &[&str], dir: &Path) -> PathBuf {
    compile(cc, flags, &STRICT_C99, dir)
}

/// `cc flags mode -o DIR/main DIR/model.c DIR/main.c -lm`.
#[track_caller]
fn compile(cc: &str, flags: &[&str], mode: &[&str], dir: &Path) -> PathBuf {
    let exe = dir.join("main");
    let out = Command::new(cc)
        .args(flags)
        .args(mode)
        .arg("-o")
        .arg(&exe)
        .arg(dir.join("model.c"))
        .arg(dir.join("main.c"))
        .arg("-lm")
        .output()
        .unwrap_or_else(|e| panic!("{cc} is required by this C test ({e}); refusing to skip"));
    assert!(
        out.status.success(),
        "{cc} failed in {}:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    exe
}

/// [`try_build`] for graphs the backend must lower.
#[track_caller]
pub fn build(graph: &Graph, k: u8, tag: &str) -> PathBuf {
    try_build(graph, k, tag).unwrap_or_else(|e| panic!("emit-c {tag}: {e}"))
}

/// Runs the built driver on `x` (`n` samples, one per row) and returns the f32 outputs, or
/// the driver's exit code.
pub fn run_c(exe: &Path, x: &[f32], n: usize, ppl: Option<&[u8]>) -> Result<Vec<f32>, i32> {
    run_c_with(None, exe, x, n, ppl)
}

/// [`run_c`] under an emulator (`runner`, e.g. `qemu-aarch64`), or natively with `None`.
pub fn run_c_with(
    runner: Option<&str>,
    exe: &Path,
    x: &[f32],
    n: usize,
    ppl: Option<&[u8]>,
) -> Result<Vec<f32>, i32> {
    let dir = exe.parent().unwrap();
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join("in.bin"), bytes).unwrap();
    let mut cmd = match runner {
        Some(r) => {
            let mut c = Command::new(r);
            c.arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.arg(dir.join("in.bin"))
        .arg(dir.join("out.bin"))
        .arg(n.to_string());
    if let Some(p) = ppl {
        let s: Vec<String> = p.iter().map(|k| k.to_string()).collect();
        cmd.arg(s.join(","));
    }
    let st = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {exe:?} (runner {runner:?}): {e}"));
    if !st.success() {
        return Err(st.code().unwrap_or(-1));
    }
    let out = std::fs::read(dir.join("out.bin")).unwrap();
    Ok(out
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// The bit patterns of `v`: bit-exact comparisons that also tell `-0.0` from `0.0` and
/// compare NaNs.
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}
