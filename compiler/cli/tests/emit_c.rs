//! The C backend against the reference runtime: emit the MNIST CNN for every plane count,
//! build it with gcc in strict C99 and compare outputs bit for bit with the integer path.

use strata_test_support::{batch_ty, mnist, op, rows, STRICT_C99};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use strata_compiler::backend::c::{emit, write_c, EmitError, EmitOptions, LowerError};
use strata_ir::container::read_container;
use strata_ir::ops::elementwise::{BinaryOp, UnaryOp};
use strata_ir::ops::pool::{GlobalPoolKind, Pool};
use strata_ir::{DType, Graph, NodeKind, Op, Tensor, TensorType, ValueRef};
use strata_runtime::{run_with, QuantPath, RunOptions};

/// The MNIST CNN compiled to bit-planes (32 calibration rows), through the container.
fn mnist() -> &'static Graph {
    static G: OnceLock<Graph> = OnceLock::new();
    G.get_or_init(|| {
        let bytes = mnist::container(mnist::fp32(), rows(&mnist::fixture("calib"), 0..32));
        read_container(&bytes).unwrap().graph
    })
}

const MAIN_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include "model.h"
/* usage: main IN OUT N [p0,p1,...] — runs N samples, writes N outputs. */
int main(int argc, char **argv)
{
    static float in[MODEL_INPUT_SIZE], out[MODEL_OUTPUT_SIZE];
    uint8_t ppl[MODEL_NUM_LAYERS + 1];
    FILE *fi, *fo;
    long n, i;
    int use_ppl = argc > 4;
    if (argc < 4) return 2;
    n = atol(argv[3]);
    if (use_ppl) {
        char *s = argv[4];
        for (i = 0; i < MODEL_NUM_LAYERS; ++i) {
            ppl[i] = (uint8_t)strtol(s, &s, 10);
            if (*s == ',') ++s;
        }
    }
    fi = fopen(argv[1], "rb");
    fo = fopen(argv[2], "wb");
    if (!fi || !fo) return 3;
    for (i = 0; i < n; ++i) {
        int rc;
        if (fread(in, sizeof(float), MODEL_INPUT_SIZE, fi) != MODEL_INPUT_SIZE) return 4;
        rc = use_ppl ? model_run_planes(in, out, ppl) : model_run(in, out);
        if (rc != 0) return 10 + rc;
        fwrite(out, sizeof(float), MODEL_OUTPUT_SIZE, fo);
    }
    fclose(fi);
    fclose(fo);
    return 0;
}
"#;

/// Fails loudly when gcc is missing: this test must never pass without running C.
fn gcc() -> &'static str {
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

/// Emits `graph` at `k` planes into a fresh directory and builds it with the test driver.
fn build(graph: &Graph, k: u8, tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("strata-emit-c-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let opts = EmitOptions {
        planes: k,
        name: "model".into(),
        ..Default::default()
    };
    write_c(graph, &opts, &dir).unwrap();
    std::fs::write(dir.join("main.c"), MAIN_C).unwrap();
    let exe = dir.join("main");
    let out = Command::new(gcc())
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

/// Runs the built driver on `x` (one sample per row) and returns the f32 outputs.
fn run_c(exe: &Path, x: &[f32], n: usize, ppl: Option<&[u8]>) -> Result<Vec<f32>, i32> {
    let dir = exe.parent().unwrap();
    let bytes: Vec<u8> = x.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(dir.join("in.bin"), bytes).unwrap();
    let mut cmd = Command::new(exe);
    cmd.arg(dir.join("in.bin"))
        .arg(dir.join("out.bin"))
        .arg(n.to_string());
    if let Some(p) = ppl {
        let s: Vec<String> = p.iter().map(|k| k.to_string()).collect();
        cmd.arg(s.join(","));
    }
    let st = cmd.status().unwrap();
    if !st.success() {
        return Err(st.code().unwrap_or(-1));
    }
    let out = std::fs::read(dir.join("out.bin")).unwrap();
    Ok(out
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

fn layer_names(g: &Graph) -> Vec<String> {
    g.topo_order()
        .unwrap()
        .into_iter()
        .filter_map(|id| {
            let n = g.node(id).unwrap();
            matches!(n.kind, NodeKind::Op(Op::Bitplane(_))).then(|| n.name.clone())
        })
        .collect()
}

#[test]
fn mnist_matches_runtime_bit_for_bit_for_every_plane_count() {
    let g = mnist();
    let images = rows(&mnist::fixture("images"), 0..20);
    let x = images.as_f32().unwrap();
    let names = layer_names(g);
    assert_eq!(names.len(), 4);
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
        // Mixed per-layer plane counts, all ≤ K, against the runtime's per-layer mode.
        let ppl: Vec<u8> = (0..names.len())
            .map(|i| 2 + ((i as u8 + k) % (k - 1)))
            .collect();
        let per_layer: BTreeMap<String, u8> =
            names.iter().cloned().zip(ppl.iter().copied()).collect();
        let opts = RunOptions {
            per_layer,
            path: QuantPath::Integer,
            ..Default::default()
        };
        let want = run_with(g, std::slice::from_ref(&images), &opts).unwrap();
        let got = run_c(&exe, x, 20, Some(&ppl)).unwrap();
        assert_eq!(
            bits(&got),
            bits(want[0].as_f32().unwrap()),
            "K={k} per layer {ppl:?}"
        );
        // A count above K, or 0, is refused with return code 1.
        let mut bad = vec![k; names.len()];
        if k < 8 {
            bad[2] = k + 1;
            assert_eq!(run_c(&exe, x, 1, Some(&bad)), Err(11), "K={k}");
        }
        bad[2] = 0;
        assert_eq!(run_c(&exe, x, 1, Some(&bad)), Err(11), "K={k}");
    }
}

#[test]
fn mnist_header_snapshot() {
    let out = emit(
        mnist(),
        &EmitOptions {
            planes: 4,
            name: "mnist_cnn".into(),
            ..Default::default()
        },
    )
    .unwrap();
    insta::assert_snapshot!("mnist_cnn_k4_header", out.header);
    // Only planes 0..K are stored: with packed planes (armv7m) the K=4 source is about half
    // the K=8 one; the code layouts store the same information as one int8 per weight.
    let packed = |planes: u8| EmitOptions {
        planes,
        name: "m".into(),
        target: strata_compiler::backend::c::Target::Armv7m,
        layer_planes: None,
    };
    let half = emit(mnist(), &packed(4)).unwrap();
    let full = emit(mnist(), &packed(8)).unwrap();
    assert!(half.source.len() * 10 < full.source.len() * 7);
}

fn pool(kernel: usize, stride: usize, pads: usize, include_pad: bool) -> Pool {
    Pool {
        kernel: vec![kernel; 2],
        strides: vec![stride; 2],
        pads: vec![pads; 4],
        dilations: vec![1, 1],
        ceil_mode: false,
        count_include_pad: include_pad,
    }
}

/// A float-only net exercising the other ops: pools, Relu, Add/Mul with constants and with
/// each other, global average pooling, reshape/flatten/identity aliases.
fn small_net() -> Graph {
    let mut g = Graph::new("small");
    let x = g.add_input("x", batch_ty(&[3, 7, 7]));
    let a = op(&mut g, "avg_a", Op::AveragePool(pool(3, 2, 1, false)), &[x]);
    let b = op(&mut g, "avg_b", Op::AveragePool(pool(3, 2, 1, true)), &[x]);
    let m = op(&mut g, "max", Op::MaxPool(pool(2, 2, 1, false)), &[x]);
    let s = op(&mut g, "sum", Op::Binary(BinaryOp::Add), &[a, b]);
    let n = 3 * 4 * 4;
    let cw: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
    let c = g.add_constant("c", Tensor::from_f32(vec![1, 3, 4, 4], cw).unwrap());
    let t = op(&mut g, "times", Op::Binary(BinaryOp::Mul), &[c, s]);
    let h = g.add_constant("half", Tensor::scalar_f32(-0.3));
    let u = op(&mut g, "shift", Op::Binary(BinaryOp::Add), &[t, h]);
    let v = op(&mut g, "mix", Op::Binary(BinaryOp::Mul), &[u, m]);
    let r = op(&mut g, "relu", Op::Unary(UnaryOp::Relu), &[v]);
    let i = op(&mut g, "id", Op::Identity, &[r]);
    let gp = op(&mut g, "gap", Op::GlobalPool(GlobalPoolKind::Average), &[i]);
    let f = op(&mut g, "flat", Op::Flatten { axis: 1 }, &[gp]);
    let sum2 = op(&mut g, "again", Op::Binary(BinaryOp::Add), &[f, f]);
    g.set_outputs(vec![sum2]);
    strata_ir::verify(&g).unwrap();
    g
}

#[test]
fn small_float_net_matches_runtime() {
    let g = small_net();
    let exe = build(&g, 8, "small");
    let n = 5;
    let x: Vec<f32> = (0..n * 3 * 49)
        .map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 97.0)
        .collect();
    let xt = Tensor::from_f32(vec![n, 3, 7, 7], x.clone()).unwrap();
    let want = strata_runtime::run(&g, &[xt]).unwrap();
    let got = run_c(&exe, &x, n, None).unwrap();
    assert_eq!(bits(&got), bits(want[0].as_f32().unwrap()));
    let out = emit(
        &g,
        &EmitOptions {
            planes: 8,
            name: "s".into(),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(out.header.contains("#define S_NUM_LAYERS 0"));
    assert!(out.header.contains("#define S_OUTPUT_SHAPE {1, 3}"));
}

#[test]
fn errors_name_what_and_where() {
    let opts = |k: u8, name: &str| EmitOptions {
        planes: k,
        name: name.into(),
        ..Default::default()
    };
    let g = mnist();
    assert!(matches!(
        emit(g, &opts(4, "9lives")),
        Err(EmitError::BadName { .. })
    ));
    assert!(matches!(
        emit(g, &opts(4, "a-b")),
        Err(EmitError::BadName { .. })
    ));
    assert!(matches!(
        emit(g, &opts(4, "")),
        Err(EmitError::BadName { .. })
    ));
    assert!(matches!(
        emit(g, &opts(9, "m")),
        Err(EmitError::Lower(LowerError::BadPlanes { planes: 9 }))
    ));
    assert!(matches!(
        emit(g, &opts(0, "m")),
        Err(EmitError::Lower(LowerError::BadPlanes { planes: 0 }))
    ));
    // K = 1 has no side table in the default compile.
    match emit(g, &opts(1, "m")) {
        Err(EmitError::Lower(LowerError::Planes {
            node, planes: 1, ..
        })) => assert_eq!(node, "conv_1"),
        other => panic!("{other:?}"),
    }
    // Unsupported ops and operands are the lowering's errors (unit-tested in strata-lower).
    // Two graph inputs.
    let mut s = Graph::new("s");
    let a = s.add_input("a", TensorType::known(DType::F32, &[1, 2]));
    let b = s.add_input("b", TensorType::known(DType::F32, &[1, 2]));
    let y = s
        .add_op_inferred("sum", Op::Binary(BinaryOp::Add), &[a, b], vec!["y".into()])
        .unwrap();
    s.set_outputs(vec![ValueRef::first(y)]);
    assert!(matches!(
        emit(&s, &opts(4, "m")),
        Err(EmitError::Lower(LowerError::Interface(_)))
    ));
    // An unwritable output directory is an I/O error naming the path.
    let file = std::env::temp_dir().join(format!("strata-emit-c-file-{}", std::process::id()));
    std::fs::write(&file, b"x").unwrap();
    match write_c(g, &opts(4, "m"), &file.join("sub")) {
        Err(EmitError::Io { path, .. }) => assert!(path.contains("strata-emit-c-file")),
        other => panic!("{other:?}"),
    }
}
