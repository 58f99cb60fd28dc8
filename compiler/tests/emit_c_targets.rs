//! The C backend's exactness matrix: every target × compiler (gcc, clang) × ISA (x86-64
//! natively; aarch64, armhf and riscv64 under qemu-user, built with Debian's cross toolchains)
//! × plane count K = 2..8, on the MNIST CNN and on a small net that covers every convolution
//! form (im2col and direct, groups, depthwise, strides, dilations, asymmetric pads) and
//! fully connected layers with odd sizes. Outputs must equal the runtime's integer path bit
//! for bit, for `PREFIX_run` and for `PREFIX_run_planes` with mixed per-layer counts. Run with
//! `--nocapture` to see the matrix. Missing tools fail the test (never a silent skip): install
//! them with `scripts/setup-system.sh`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use strata_compiler::backend::c::{emit, EmitOptions, EmittedC, Target};
use strata_compiler::compile::{compile_to_container, CompileOptions};
use strata_compiler::npy::read_npy;
use strata_compiler::onnx::{import_file, ImportOptions};
use strata_ir::container::read_container;
use strata_ir::ops::{Conv, Gemm, UnaryOp};
use strata_ir::{DType, Graph, NodeKind, Op, Shape, Tensor, TensorType, ValueRef};
use strata_runtime::{run_with, QuantPath, RunOptions};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn rows(t: &Tensor, range: std::ops::Range<usize>) -> Tensor {
    let per: usize = t.shape()[1..].iter().product();
    let mut shape = t.shape().to_vec();
    shape[0] = range.len();
    let data = t.as_f32().unwrap()[range.start * per..range.end * per].to_vec();
    Tensor::from_f32(shape, data).unwrap()
}

fn quantized(fp32: Graph, calib: Tensor) -> Graph {
    let bytes = compile_to_container(
        fp32,
        vec![calib],
        &CompileOptions::default(),
        Default::default(),
        |_| {},
    )
    .unwrap();
    read_container(&bytes).unwrap().graph
}

/// Deterministic values in [-1, 1) (xorshift).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The MNIST CNN compiled with 32 calibration rows.
fn mnist() -> &'static Graph {
    static G: OnceLock<Graph> = OnceLock::new();
    G.get_or_init(|| {
        let fp32 = import_file(
            &root().join("models/mnist_cnn.onnx"),
            &ImportOptions::default(),
        )
        .unwrap();
        let calib = read_npy(&root().join("tests/fixtures/mnist/calib.npy")).unwrap();
        quantized(fp32, rows(&calib, 0..32))
    })
}

/// Every quantizable layer form the C targets handle differently: conv with 3 input channels
/// (im2col) and asymmetric pads; conv with 10 channels (direct) with stride 2 and dilation 2
/// and 20 output channels (a partial 16-row block); grouped conv with a 2×3 kernel; depthwise
/// conv (im2col per group); Gemm 60→13 and 13→5 (odd reduction, partial blocks).
fn small_net() -> Graph {
    let mut g = Graph::new("small_bitplane");
    let dims = [3usize, 9, 9];
    let mut d = vec![strata_ir::Dim::Batch];
    d.extend(dims.iter().map(|&x| strata_ir::Dim::Known(x)));
    let x = g.add_input("x", TensorType::new(DType::F32, Shape(d)));
    let mut seed = 10;
    let mut konst = |g: &mut Graph, name: &str, shape: &[usize], scale: f32| {
        seed += 1;
        let n: usize = shape.iter().product();
        let v = values(n, seed).into_iter().map(|v| v * scale).collect();
        g.add_constant(name, Tensor::from_f32(shape.to_vec(), v).unwrap())
    };
    let op = |g: &mut Graph, name: &str, op: Op, ins: &[ValueRef]| {
        ValueRef::first(
            g.add_op_inferred(name, op, ins, vec![name.to_string()])
                .unwrap(),
        )
    };
    fn conv(k: [usize; 2], s: usize, pads: [usize; 4], dil: usize, group: usize) -> Op {
        Op::Conv(Conv {
            kernel: k.to_vec(),
            strides: vec![s, s],
            pads: pads.to_vec(),
            dilations: vec![dil, dil],
            group,
            has_bias: true,
        })
    }
    let relu = || Op::Unary(UnaryOp::Relu);
    let w = konst(&mut g, "w1", &[10, 3, 3, 3], 0.4);
    let b = konst(&mut g, "b1", &[10], 0.1);
    let c1 = op(
        &mut g,
        "c1",
        conv([3, 3], 1, [1, 0, 2, 1], 1, 1),
        &[x, w, b],
    );
    let r1 = op(&mut g, "r1", relu(), &[c1]);
    let w = konst(&mut g, "w2", &[20, 10, 3, 3], 0.2);
    let b = konst(&mut g, "b2", &[20], 0.1);
    let c2 = op(
        &mut g,
        "c2",
        conv([3, 3], 2, [1, 1, 1, 1], 2, 1),
        &[r1, w, b],
    );
    let r2 = op(&mut g, "r2", relu(), &[c2]);
    let w = konst(&mut g, "w3", &[20, 10, 2, 3], 0.2);
    let b = konst(&mut g, "b3", &[20], 0.1);
    let c3 = op(
        &mut g,
        "c3",
        conv([2, 3], 1, [1, 1, 0, 1], 1, 2),
        &[r2, w, b],
    );
    let w = konst(&mut g, "w4", &[20, 1, 3, 3], 0.5);
    let b = konst(&mut g, "b4", &[20], 0.1);
    let c4 = op(
        &mut g,
        "c4",
        conv([3, 3], 1, [1, 1, 1, 1], 1, 20),
        &[c3, w, b],
    );
    let r4 = op(&mut g, "r4", relu(), &[c4]);
    let f = op(&mut g, "flat", Op::Flatten { axis: 1 }, &[r4]);
    let gemm = || {
        Op::Gemm(Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: true,
            has_c: true,
        })
    };
    let fan = g.value(f).unwrap().ty.shape.resolve(1)[1];
    let w = konst(&mut g, "w5", &[13, fan], 0.15);
    let b = konst(&mut g, "b5", &[13], 0.1);
    let l5 = op(&mut g, "fc5", gemm(), &[f, w, b]);
    let r5 = op(&mut g, "r5", relu(), &[l5]);
    let w = konst(&mut g, "w6", &[5, 13], 0.4);
    let b = konst(&mut g, "b6", &[5], 0.1);
    let y = op(&mut g, "fc6", gemm(), &[r5, w, b]);
    g.set_outputs(vec![y]);
    strata_ir::verify(&g).unwrap();
    g
}

fn small() -> &'static Graph {
    static G: OnceLock<Graph> = OnceLock::new();
    G.get_or_init(|| {
        let calib = Tensor::from_f32(vec![24, 3, 9, 9], values(24 * 243, 99)).unwrap();
        quantized(small_net(), calib)
    })
}

const MAIN_C: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include "model.h"
/* usage: main IN OUT N [p0,p1,...]: runs N samples, writes N outputs. */
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

/// One compiler for one ISA, and the targets built with it (armv7m, portable C, is checked on
/// its own ISA family, armhf, to keep the matrix's run time down).
struct Toolchain {
    isa: &'static str,
    compiler: &'static str,
    /// Program and its leading arguments.
    cc: &'static [&'static str],
    /// Emulator prefix (`None`: run natively).
    runner: Option<&'static str>,
    targets: &'static [Target],
}

const TOOLCHAINS: &[Toolchain] = &[
    Toolchain {
        isa: "x86-64",
        compiler: "gcc",
        cc: &["gcc"],
        runner: None,
        targets: &[Target::Generic, Target::X86_64V3],
    },
    Toolchain {
        isa: "x86-64",
        compiler: "clang",
        cc: &["clang"],
        runner: None,
        targets: &[Target::Generic, Target::X86_64V3],
    },
    Toolchain {
        isa: "aarch64",
        compiler: "gcc",
        cc: &["aarch64-linux-gnu-gcc", "-static"],
        runner: Some("qemu-aarch64"),
        targets: &[Target::Generic, Target::Aarch64],
    },
    Toolchain {
        isa: "aarch64",
        compiler: "clang",
        cc: &["clang", "--target=aarch64-linux-gnu", "-static"],
        runner: Some("qemu-aarch64"),
        targets: &[Target::Generic, Target::Aarch64],
    },
    Toolchain {
        isa: "armhf",
        compiler: "gcc",
        cc: &["arm-linux-gnueabihf-gcc", "-static"],
        runner: Some("qemu-arm"),
        targets: &[Target::Generic, Target::Armv7m],
    },
    Toolchain {
        isa: "armhf",
        compiler: "clang",
        cc: &[
            "clang",
            "--target=arm-linux-gnueabihf",
            "-march=armv7-a",
            "-static",
        ],
        runner: Some("qemu-arm"),
        targets: &[Target::Generic, Target::Armv7m],
    },
    Toolchain {
        isa: "riscv64",
        compiler: "gcc",
        cc: &["riscv64-linux-gnu-gcc", "-static"],
        runner: Some("qemu-riscv64"),
        targets: &[Target::Generic],
    },
    Toolchain {
        isa: "riscv64",
        compiler: "clang",
        cc: &["clang", "--target=riscv64-linux-gnu", "-static"],
        runner: Some("qemu-riscv64"),
        targets: &[Target::Generic],
    },
];

/// Fails (never skips) when a tool is missing.
fn require(tool: &str) {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "`{tool}` is required by the C backend matrix; install it with scripts/setup-system.sh"
    );
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

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|f| f.to_bits()).collect()
}

/// The mixed per-layer counts used at `K` (all in 2..=K, not all equal when K > 2).
fn mixed(k: u8, layers: usize) -> Vec<u8> {
    (0..layers).map(|i| 2 + ((i as u8 + k) % (k - 1))).collect()
}

/// A model under test: the graph, its inputs and the runtime's outputs per K.
struct Case {
    name: &'static str,
    graph: &'static Graph,
    input: Tensor,
    n: usize,
    /// (uniform K outputs, mixed per-layer outputs) as f32 bits, per K.
    want: BTreeMap<u8, (Vec<u32>, Vec<u32>)>,
}

fn case(name: &'static str, graph: &'static Graph, input: Tensor) -> Case {
    let names = layer_names(graph);
    let n = input.shape()[0];
    let mut want = BTreeMap::new();
    for k in 2..=8u8 {
        let opts = RunOptions {
            planes: Some(k),
            path: QuantPath::Integer,
            ..Default::default()
        };
        let uni = run_with(graph, std::slice::from_ref(&input), &opts).unwrap();
        let per_layer: BTreeMap<String, u8> =
            names.iter().cloned().zip(mixed(k, names.len())).collect();
        let opts = RunOptions {
            per_layer,
            path: QuantPath::Integer,
            ..Default::default()
        };
        let mix = run_with(graph, std::slice::from_ref(&input), &opts).unwrap();
        want.insert(
            k,
            (
                bits(uni[0].as_f32().unwrap()),
                bits(mix[0].as_f32().unwrap()),
            ),
        );
    }
    Case {
        name,
        graph,
        input,
        n,
        want,
    }
}

fn run_exe(
    runner: Option<&str>,
    exe: &Path,
    dir: &Path,
    n: usize,
    ppl: Option<&[u8]>,
) -> Result<Vec<u32>, String> {
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
    let out = cmd.output().map_err(|e| format!("cannot run: {e}"))?;
    if !out.status.success() {
        return Err(format!("exit {:?}", out.status.code()));
    }
    let bytes = std::fs::read(dir.join("out.bin")).map_err(|e| e.to_string())?;
    Ok(bytes
        .chunks_exact(4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Builds and checks one (case, toolchain, target, K); `Ok(note)` or a failure message.
fn check(
    case: &Case,
    tc: &Toolchain,
    target: Target,
    k: u8,
    src: &EmittedC,
) -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!(
        "strata-emit-c-targets-{}/{}-{}-{}-{}-k{k}",
        std::process::id(),
        case.name,
        tc.isa,
        tc.compiler,
        target
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("model.h"), &src.header).unwrap();
    std::fs::write(dir.join("model.c"), &src.source).unwrap();
    std::fs::write(dir.join("main.c"), MAIN_C).unwrap();
    let x: Vec<u8> = case
        .input
        .as_f32()
        .unwrap()
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    std::fs::write(dir.join("in.bin"), x).unwrap();
    let exe = dir.join("main");
    let mut cmd = Command::new(tc.cc[0]);
    cmd.args(&tc.cc[1..]).args([
        "-std=c99",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-pedantic",
        "-O2",
    ]);
    if target == Target::X86_64V3 {
        cmd.arg("-march=x86-64-v3");
    }
    let out = cmd
        .arg("-o")
        .arg(&exe)
        .arg(dir.join("model.c"))
        .arg(dir.join("main.c"))
        .arg("-lm")
        .output()
        .map_err(|e| format!("cannot start {}: {e}", tc.cc[0]))?;
    if !out.status.success() {
        return Err(format!(
            "compile failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    if target == Target::X86_64V3 && !avx2() {
        return Ok("built (no AVX2 on this CPU: not run)".into());
    }
    // Emulated runs check the first samples only (qemu is slow).
    let n = if tc.runner.is_some() {
        case.n.min(4)
    } else {
        case.n
    };
    let (uni, mix) = &case.want[&k];
    let per = uni.len() / case.n;
    let (uni, mix) = (&uni[..n * per], &mix[..n * per]);
    let got = run_exe(tc.runner, &exe, &dir, n, None)?;
    if got != uni {
        let bad = got.iter().zip(uni).filter(|(a, b)| a != b).count();
        return Err(format!("{bad} of {} outputs differ at K={k}", uni.len()));
    }
    let layers = layer_names(case.graph).len();
    let ppl = mixed(k, layers);
    let got = run_exe(tc.runner, &exe, &dir, n, Some(&ppl))?;
    if got != mix {
        return Err(format!("per-layer {ppl:?} differs from the runtime"));
    }
    // A count above K, or 0, is refused with return code 1 (exit 11).
    let mut bad = vec![k; layers];
    bad[layers - 1] = if k < 8 { k + 1 } else { 0 };
    match run_exe(tc.runner, &exe, &dir, 1, Some(&bad)) {
        Err(e) if e == "exit Some(11)" => {}
        other => return Err(format!("planes {bad:?} not refused: {other:?}")),
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok("pass".into())
}

fn avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[test]
fn exactness_matrix_isa_compiler_target_planes() {
    for tc in TOOLCHAINS {
        require(tc.cc[0]);
        if let Some(r) = tc.runner {
            require(r);
        }
    }
    let images = read_npy(&root().join("tests/fixtures/mnist/images.npy")).unwrap();
    let cases = [
        case("mnist", mnist(), rows(&images, 0..8)),
        case(
            "small",
            small(),
            Tensor::from_f32(vec![4, 3, 9, 9], values(4 * 243, 7)).unwrap(),
        ),
    ];
    // Emit once per (case, target, K).
    let mut sources: HashMap<(usize, Target, u8), EmittedC> = HashMap::new();
    for (ci, c) in cases.iter().enumerate() {
        for t in Target::ALL {
            for k in 2..=8u8 {
                let opts = EmitOptions {
                    planes: k,
                    name: "model".into(),
                    target: t,
                    layer_planes: None,
                };
                sources.insert((ci, t, k), emit(c.graph, &opts).unwrap());
            }
        }
    }
    let mut jobs = Vec::new();
    for ci in 0..cases.len() {
        for tc in TOOLCHAINS {
            for &t in tc.targets {
                for k in 2..=8u8 {
                    jobs.push((ci, tc, t, k));
                }
            }
        }
    }
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(4);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(ci, tc, t, k)) = jobs.get(i) else {
                    break;
                };
                let r = check(&cases[ci], tc, t, k, &sources[&(ci, t, k)]);
                results
                    .lock()
                    .unwrap()
                    .push((ci, tc.isa, tc.compiler, t, k, r));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|r| (r.0, r.1, r.2, r.3.name(), r.4));
    // The matrix: one row per case × ISA × compiler × target, one column per K.
    println!("\n| model | ISA | compiler | target | K=2 | K=3 | K=4 | K=5 | K=6 | K=7 | K=8 |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let mut failures = Vec::new();
    for chunk in results.chunk_by(|a, b| (a.0, a.1, a.2, a.3) == (b.0, b.1, b.2, b.3)) {
        let (ci, isa, cc, t) = (chunk[0].0, chunk[0].1, chunk[0].2, chunk[0].3);
        let cells: Vec<&str> = chunk
            .iter()
            .map(|r| match &r.5 {
                Ok(note) if note == "pass" => "pass",
                Ok(_) => "built",
                Err(_) => "FAIL",
            })
            .collect();
        println!(
            "| {} | {isa} | {cc} | {t} | {} |",
            cases[ci].name,
            cells.join(" | ")
        );
        for r in chunk {
            if let Err(e) = &r.5 {
                failures.push(format!("{} {isa} {cc} {t} K={}: {e}", cases[ci].name, r.4));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn header_snapshots_per_target() {
    for t in Target::ALL {
        let out = emit(
            mnist(),
            &EmitOptions {
                planes: 4,
                name: "mnist_cnn".into(),
                target: t,
                layer_planes: None,
            },
        )
        .unwrap();
        insta::assert_snapshot!(format!("mnist_cnn_k4_header_{}", t.name()), out.header);
        // The stats are the header's macros.
        for (m, v) in [
            ("WEIGHT_BYTES", out.stats.weight_bytes as u64),
            ("ARENA_BYTES", out.stats.arena_bytes as u64),
            ("SCRATCH_BYTES", out.stats.scratch_bytes as u64),
            ("MACS", out.stats.macs),
        ] {
            assert!(
                out.header.contains(&format!("#define MNIST_CNN_{m} {v}\n")),
                "{t}: {m}"
            );
        }
    }
}

/// Weight bytes and arena bytes of the MNIST CNN per K and target (printed for the README);
/// the packed-plane target grows linearly with K, the code layouts do not depend on it.
#[test]
fn mnist_sizes_per_planes() {
    println!("\n| K | target | weight bytes | arena bytes | scratch bytes |");
    println!("|---|---|---|---|---|");
    let mut planes_bytes = Vec::new();
    for k in 2..=8u8 {
        for t in [Target::Armv7m, Target::X86_64V3] {
            let s = emit(
                mnist(),
                &EmitOptions {
                    planes: k,
                    name: "m".into(),
                    target: t,
                    layer_planes: None,
                },
            )
            .unwrap()
            .stats;
            println!(
                "| {k} | {t} | {} | {} | {} |",
                s.weight_bytes, s.arena_bytes, s.scratch_bytes
            );
            if t == Target::Armv7m {
                planes_bytes.push(s.weight_bytes);
            }
            assert_eq!(s.macs, 4_241_152);
        }
    }
    // Each extra plane adds one bit per weight: 53,152 bytes of u64-padded plane rows, plus
    // one more side table (3 floats per output channel, activation scale and zero point).
    for w in planes_bytes.windows(2) {
        let step = w[1] - w[0];
        assert!((53_152..53_152 + 3_000).contains(&step), "{w:?}");
    }
}
