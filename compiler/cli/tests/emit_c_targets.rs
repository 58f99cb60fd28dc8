//! The C backend's exactness matrix: every target × compiler (gcc, clang) × ISA (x86-64
//! natively, and the x86-64-v3 kernels once more built with AVX512-VNNI (gcc) and with AVX-VNNI
//! (clang), run where the CPU has them; aarch64, armhf and riscv64 under qemu-user, built with
//! Debian's cross toolchains)
//! × plane count K = 2..8, on the MNIST CNN (`W k A8` and `W k A k`), on the residual
//! Fashion-MNIST network (once-QAT trained), and on a small net that covers every convolution
//! form (im2col and direct, groups, depthwise, strides, dilations, asymmetric pads) and
//! fully connected layers with odd sizes, and on `ops`: eight tiny nets that cover every other
//! op the backend supports (MaxPool general and 2×2 fast path, AveragePool with and without
//! padding in the divisor, GlobalAveragePool, Add, Sub, Mul, Div with broadcasting, standalone
//! Relu, the float activations, Clip, PRelu, Softmax, ReduceMean, Concat, Transpose,
//! Flatten/Reshape/Identity; and in `op_new`, from `new_ops`: Squeeze/Unsqueeze, Slice, Split,
//! Pad, Gather, Expand, ReduceMax/ReduceSum, GlobalMaxPool, Max/Min, BatchNorm, Neg, Abs,
//! Floor, Ceil, Sqrt, Reciprocal, Exp, Log, Tanh, Erf, nearest and linear Resize, Pow with
//! exact and general exponents, MatMul of activations with batch broadcasting; in `op_lstm`
//! two stacked bidirectional LSTMs), each behind bit-plane layers so
//! that K matters, emitted with distinct prefixes and
//! linked into one program per cell. Outputs must equal the runtime's integer path bit
//! for bit, for `PREFIX_run` and for `PREFIX_run_planes` with mixed per-layer counts. Run with
//! `--nocapture` to see the matrix. Missing tools fail the test (never a silent skip): install
//! them with `scripts/setup-system.sh`.

mod new_ops;

use new_ops::nets::{edge_net, op_nets, small_net};

use strata_test_support::{fmnist, mnist, rows, values, STRICT_C99};

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use strata_compiler::backend::c::{emit, CodeBits, EmitOptions, EmittedC, Target};
use strata_compiler::compile::{compile_to_container, CompileOptions};
use strata_ir::container::read_container;
use strata_ir::quant::ActBits;
use strata_ir::{Graph, NodeKind, Op, Tensor};
use strata_runtime::{run_with, QuantPath, RunOptions};

fn quantized(fp32: Graph, calib: Tensor) -> Graph {
    read_container(&mnist::container(fp32, calib))
        .unwrap()
        .graph
}

/// The MNIST CNN compiled with 32 calibration rows.
fn mnist() -> &'static Graph {
    static G: OnceLock<Graph> = OnceLock::new();
    G.get_or_init(|| quantized(mnist::fp32(), rows(&mnist::fixture("calib"), 0..32)))
}

/// The MNIST CNN compiled `W k A k` (`--act-bits planes`): plane count k quantizes its
/// activations to max(k, 2) bits, so `PREFIX_run_planes` at a lower count must clamp to that
/// count's code range.
fn mnist_wkak() -> &'static Graph {
    static G: OnceLock<Graph> = OnceLock::new();
    G.get_or_init(|| {
        let options = CompileOptions {
            act_bits: ActBits::Planes,
            ..CompileOptions::default()
        };
        let calib = rows(&mnist::fixture("calib"), 0..32);
        let bytes = compile_to_container(
            mnist::fp32(),
            vec![calib],
            &options,
            Default::default(),
            |_| {},
        )
        .unwrap();
        let g = read_container(&bytes).unwrap().graph;
        let wkak = g.node_ids().any(|id| {
            matches!(&g.node(id).unwrap().kind,
                NodeKind::Op(Op::Bitplane(b)) if b.spec.act_bits_of(2) == Some(2))
        });
        assert!(wkak, "the W k A k model has 2-bit activations at k = 2");
        g
    })
}

/// The residual network (`models/fmnist_resnet8.onnx`: skip-connection Adds,
/// GlobalAveragePool, Gemm) compiled with once-QAT on its 32 calibration images, so the chain
/// that trains through skip connections is the one the C backend must reproduce.
fn resnet8() -> &'static Graph {
    static G: OnceLock<Graph> = OnceLock::new();
    G.get_or_init(|| {
        let options = CompileOptions {
            qat_steps: 2,
            qat_batch: 8,
            qat_options: "evals=1".into(),
            ..CompileOptions::default()
        };
        let bytes = compile_to_container(
            fmnist::fp32(),
            vec![fmnist::fixture("calib")],
            &options,
            Default::default(),
            |_| {},
        )
        .unwrap();
        read_container(&bytes).unwrap().graph
    })
}

fn small() -> &'static Graph {
    static G: OnceLock<Graph> = OnceLock::new();
    G.get_or_init(|| {
        let calib = Tensor::from_f32(vec![24, 3, 9, 9], values(24 * 243, 99)).unwrap();
        quantized(small_net(), calib)
    })
}

/// The op nets, compiled with 16 calibration rows each.
fn edges() -> &'static Graph {
    static G: OnceLock<Graph> = OnceLock::new();
    G.get_or_init(|| {
        let calib = Tensor::from_f32(vec![8, 37, 9, 9], values(8 * 37 * 81, 41)).unwrap();
        quantized(edge_net(), calib)
    })
}

/// Inputs of `edges`: all +4 and all −4 (far outside the calibrated range: every activation
/// code at an end of its range, the byte path's largest products), then two in range.
fn edge_inputs() -> Tensor {
    let n = 37 * 81;
    let mut x = vec![4.0f32; n];
    x.extend(vec![-4.0f32; n]);
    x.extend(values(2 * n, 43));
    Tensor::from_f32(vec![4, 37, 9, 9], x).unwrap()
}

fn ops() -> &'static [(&'static str, Graph)] {
    static G: OnceLock<Vec<(&'static str, Graph)>> = OnceLock::new();
    G.get_or_init(|| {
        op_nets()
            .into_iter()
            .enumerate()
            .map(|(i, (name, g))| {
                let calib =
                    Tensor::from_f32(vec![16, 3, 9, 9], values(16 * 243, 200 + i as u64)).unwrap();
                (name, quantized(g, calib))
            })
            .collect()
    })
}

/// The test program for a list of emitted nets (C prefixes), linked together.
/// usage: `main IN OUT N [p0,p1,...]` runs N samples through every net in turn (inputs and
/// outputs are the nets' concatenated, as are the per-layer counts); it exits 0, 20 + the
/// number of nets whose entry point refused the counts (return code 1), or 10 + another code.
fn harness(prefixes: &[&str]) -> String {
    let mut c = String::from("#include <stdio.h>\n#include <stdlib.h>\n");
    for p in prefixes {
        c.push_str(&format!("#include \"{p}.h\"\n"));
    }
    c.push_str(
        r#"
int main(int argc, char **argv)
{
    static char empty[1] = "";
    char *s;
    FILE *fi, *fo;
    long n, i;
    int refused = 0, use_ppl = argc > 4;
    if (argc < 4) return 2;
    n = atol(argv[3]);
    s = use_ppl ? argv[4] : empty;
    fi = fopen(argv[1], "rb");
    fo = fopen(argv[2], "wb");
    if (!fi || !fo) return 3;
"#,
    );
    for p in prefixes {
        let up = p.to_ascii_uppercase();
        c.push_str(&format!(
            r#"    {{
        static float in[{up}_INPUT_SIZE], out[{up}_OUTPUT_SIZE];
        uint8_t ppl[{up}_NUM_LAYERS + 1];
        int rc = 0;
        for (i = 0; i < {up}_NUM_LAYERS; ++i) {{
            ppl[i] = (uint8_t)strtol(s, &s, 10);
            if (*s == ',') ++s;
        }}
        for (i = 0; i < n; ++i) {{
            if (fread(in, sizeof(float), {up}_INPUT_SIZE, fi) != {up}_INPUT_SIZE) return 4;
            if (rc == 0) {{
                rc = use_ppl ? {p}_run_planes(in, out, ppl) : {p}_run(in, out);
                if (rc == 0) fwrite(out, sizeof(float), {up}_OUTPUT_SIZE, fo);
            }}
        }}
        if (rc == 1) ++refused;
        else if (rc != 0) return 10 + rc;
    }}
"#
        ));
    }
    c.push_str("    fclose(fi);\n    fclose(fo);\n    return refused ? 20 + refused : 0;\n}\n");
    c
}

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
    /// Whether this CPU can run its x86-64-v3 builds (the other targets' code always runs).
    runs_here: fn() -> bool,
}

fn always() -> bool {
    true
}

const TOOLCHAINS: &[Toolchain] = &[
    Toolchain {
        isa: "x86-64",
        compiler: "gcc",
        cc: &["gcc"],
        runner: None,
        targets: &[Target::Generic, Target::X86_64V3],
        runs_here: avx2,
    },
    Toolchain {
        isa: "x86-64",
        compiler: "clang",
        cc: &["clang"],
        runner: None,
        targets: &[Target::Generic, Target::X86_64V3],
        runs_here: avx2,
    },
    // The x86-64-v3 kernels built with VNNI (vpdpbusd at every count, BQ_VNNI).
    Toolchain {
        isa: "x86-64+vnni",
        compiler: "gcc",
        cc: &["gcc", "-mavx512vnni", "-mavx512vl"],
        runner: None,
        targets: &[Target::X86_64V3],
        runs_here: vnni,
    },
    // The same with the VEX form (AVX-VNNI, on cores without AVX-512).
    Toolchain {
        isa: "x86-64+avxvnni",
        compiler: "clang",
        cc: &["clang", "-mavxvnni"],
        runner: None,
        targets: &[Target::X86_64V3],
        runs_here: avx_vnni,
    },
    Toolchain {
        isa: "aarch64",
        compiler: "gcc",
        cc: &["aarch64-linux-gnu-gcc", "-static"],
        runner: Some("qemu-aarch64"),
        targets: &[Target::Generic, Target::Aarch64],
        runs_here: always,
    },
    Toolchain {
        isa: "aarch64",
        compiler: "clang",
        cc: &["clang", "--target=aarch64-linux-gnu", "-static"],
        runner: Some("qemu-aarch64"),
        targets: &[Target::Generic, Target::Aarch64],
        runs_here: always,
    },
    Toolchain {
        isa: "armhf",
        compiler: "gcc",
        cc: &["arm-linux-gnueabihf-gcc", "-static"],
        runner: Some("qemu-arm"),
        targets: &[Target::Generic, Target::Armv7m],
        runs_here: always,
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
        runs_here: always,
    },
    Toolchain {
        isa: "riscv64",
        compiler: "gcc",
        cc: &["riscv64-linux-gnu-gcc", "-static"],
        runner: Some("qemu-riscv64"),
        targets: &[Target::Generic],
        runs_here: always,
    },
    Toolchain {
        isa: "riscv64",
        compiler: "clang",
        cc: &["clang", "--target=riscv64-linux-gnu", "-static"],
        runner: Some("qemu-riscv64"),
        targets: &[Target::Generic],
        runs_here: always,
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

/// One net of a model under test: its C prefix, graph, inputs and the runtime's outputs per K.
struct Net {
    prefix: &'static str,
    graph: &'static Graph,
    input: Tensor,
    layers: usize,
    /// (uniform K outputs, mixed per-layer outputs) as f32 bits, per K.
    want: BTreeMap<u8, (Vec<u32>, Vec<u32>)>,
}

/// A model under test: one or more nets linked into one program, `n` samples each.
struct Case {
    name: &'static str,
    nets: Vec<Net>,
    n: usize,
    /// The code widths it is emitted with, and the plane counts it runs at.
    code_bits: CodeBits,
    planes: &'static [u8],
}

fn net(prefix: &'static str, graph: &'static Graph, input: Tensor) -> Net {
    let names = layer_names(graph);
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
    Net {
        prefix,
        graph,
        input,
        layers: names.len(),
        want,
    }
}

fn case(name: &'static str, nets: Vec<Net>) -> Case {
    let n = nets[0].input.shape()[0];
    assert!(nets.iter().all(|t| t.input.shape()[0] == n));
    Case {
        name,
        nets,
        n,
        code_bits: CodeBits::Fast,
        planes: &[2, 3, 4, 5, 6, 7, 8],
    }
}

/// `case` emitted with the streaming widths at the counts where they differ from the fast
/// ones (x86-64-v3 only: the other targets lower them as fast).
fn stream_case(name: &'static str, nets: Vec<Net>) -> Case {
    Case {
        code_bits: CodeBits::Stream,
        planes: &[5, 6],
        ..case(name, nets)
    }
}

/// `case` emitted with `K` bits a code at the counts whose width differs from the fast one.
fn exact_case(name: &'static str, nets: Vec<Net>) -> Case {
    Case {
        code_bits: CodeBits::Exact,
        planes: &[3, 5, 6, 7],
        ..case(name, nets)
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

/// Builds and checks one (case, toolchain, target, K) from the case's sources at (target, K),
/// one per net; `Ok(note)` or a failure message.
fn check(
    case: &Case,
    tc: &Toolchain,
    target: Target,
    k: u8,
    srcs: &[&EmittedC],
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
    let prefixes: Vec<&str> = case.nets.iter().map(|t| t.prefix).collect();
    // Emulated runs check the first samples only (qemu is slow).
    let n = if tc.runner.is_some() {
        case.n.min(4)
    } else {
        case.n
    };
    let mut x: Vec<u8> = Vec::new();
    for (t, src) in case.nets.iter().zip(srcs) {
        std::fs::write(dir.join(format!("{}.h", t.prefix)), &src.header).unwrap();
        std::fs::write(dir.join(format!("{}.c", t.prefix)), &src.source).unwrap();
        let per = t.input.len() / case.n;
        x.extend(
            t.input.as_f32().unwrap()[..n * per]
                .iter()
                .flat_map(|v| v.to_le_bytes()),
        );
    }
    std::fs::write(dir.join("main.c"), harness(&prefixes)).unwrap();
    std::fs::write(dir.join("in.bin"), x).unwrap();
    let exe = dir.join("main");
    let mut cmd = Command::new(tc.cc[0]);
    cmd.args(&tc.cc[1..]).args(STRICT_C99);
    if target == Target::X86_64V3 {
        cmd.arg("-march=x86-64-v3");
    }
    cmd.arg("-o").arg(&exe);
    for p in &prefixes {
        cmd.arg(dir.join(format!("{p}.c")));
    }
    let out = cmd
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
    if target == Target::X86_64V3 && !(tc.runs_here)() {
        return Ok("built (this CPU cannot run it)".into());
    }
    // The expected outputs, net after net, and where each net's begin.
    let mut uni = Vec::new();
    let mut mix = Vec::new();
    let mut spans = Vec::new();
    for t in &case.nets {
        let (u, m) = &t.want[&k];
        let per = u.len() / case.n;
        spans.push((t.prefix, uni.len()..uni.len() + n * per));
        uni.extend_from_slice(&u[..n * per]);
        mix.extend_from_slice(&m[..n * per]);
    }
    let differs = |got: &[u32], want: &[u32]| -> Option<String> {
        if got.len() != want.len() {
            return Some(format!("{} outputs, expected {}", got.len(), want.len()));
        }
        let bad: Vec<String> = spans
            .iter()
            .filter_map(|(p, r)| {
                let d = got[r.clone()]
                    .iter()
                    .zip(&want[r.clone()])
                    .filter(|(a, b)| a != b)
                    .count();
                (d > 0).then(|| format!("{p}: {d} of {} outputs differ", r.len()))
            })
            .collect();
        (!bad.is_empty()).then(|| bad.join("; "))
    };
    let got = run_exe(tc.runner, &exe, &dir, n, None)?;
    if let Some(e) = differs(&got, &uni) {
        return Err(format!("K={k}: {e}"));
    }
    let ppl: Vec<u8> = case.nets.iter().flat_map(|t| mixed(k, t.layers)).collect();
    let got = run_exe(tc.runner, &exe, &dir, n, Some(&ppl))?;
    if let Some(e) = differs(&got, &mix) {
        return Err(format!("per-layer {ppl:?}: {e}"));
    }
    // Split widths at every lower run-time count: the counts the leading parts hold read only
    // those parts (fully connected layers), the others reassemble and shift.
    if case.code_bits != CodeBits::Fast {
        for r in 2..k {
            let mut want = Vec::new();
            for t in &case.nets {
                let u = &t.want[&r].0;
                want.extend_from_slice(&u[..n * (u.len() / case.n)]);
            }
            let ppl: Vec<u8> = case.nets.iter().flat_map(|t| vec![r; t.layers]).collect();
            let got = run_exe(tc.runner, &exe, &dir, n, Some(&ppl))?;
            if let Some(e) = differs(&got, &want) {
                return Err(format!("run_planes {r} of {k}: {e}"));
            }
        }
    }
    // A count above K, or 0, in each net's last layer is refused with return code 1 by every
    // net (exit 20 + the number of nets).
    let mut bad = Vec::new();
    for t in &case.nets {
        let mut b = vec![k; t.layers];
        b[t.layers - 1] = if k < 8 { k + 1 } else { 0 };
        bad.extend(b);
    }
    let refused = format!("exit Some({})", 20 + case.nets.len());
    match run_exe(tc.runner, &exe, &dir, 1, Some(&bad)) {
        Err(e) if e == refused => {}
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

/// AVX-VNNI, from /proc/cpuinfo (`avx_vnni`; std's detection of it is not stable).
fn avx_vnni() -> bool {
    avx2()
        && std::fs::read_to_string("/proc/cpuinfo")
            .is_ok_and(|c| c.split_whitespace().any(|f| f == "avx_vnni"))
}

fn vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        avx2()
            && std::is_x86_feature_detected!("avx512vnni")
            && std::is_x86_feature_detected!("avx512vl")
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
    let images = mnist::fixture("images");
    let cases = [
        case(
            "mnist",
            vec![
                net("model", mnist(), rows(&images, 0..8)),
                net("wkak", mnist_wkak(), rows(&images, 0..8)),
            ],
        ),
        case(
            "resnet8",
            vec![net(
                "model",
                resnet8(),
                rows(&fmnist::fixture("images"), 0..4),
            )],
        ),
        case("edges", vec![net("model", edges(), edge_inputs())]),
        // K bits a code: 3 = 2+1, 5 = 4+1, 6 = 4+2 and 7 = 4+2+1 bit parts (2, 4 and 8 are
        // the fast widths). edges puts every code at its extremes, small covers every conv
        // form and the mnist pair a fully connected layer over 3,136 inputs.
        exact_case(
            "mnist-exact",
            vec![
                net("model", mnist(), rows(&images, 0..8)),
                net("wkak", mnist_wkak(), rows(&images, 0..8)),
            ],
        ),
        exact_case("edges-exact", vec![net("model", edges(), edge_inputs())]),
        // Split fully connected layers after 8-bit convolutions in one model.
        stream_case(
            "mnist-stream",
            vec![
                net("model", mnist(), rows(&images, 0..8)),
                net("wkak", mnist_wkak(), rows(&images, 0..8)),
            ],
        ),
        exact_case(
            "small-exact",
            vec![net(
                "model",
                small(),
                Tensor::from_f32(vec![4, 3, 9, 9], values(4 * 243, 7)).unwrap(),
            )],
        ),
        case(
            "small",
            vec![net(
                "model",
                small(),
                Tensor::from_f32(vec![4, 3, 9, 9], values(4 * 243, 7)).unwrap(),
            )],
        ),
        case(
            "ops",
            ops()
                .iter()
                .enumerate()
                .map(|(i, (p, g))| {
                    let x = values(4 * 243, 300 + i as u64);
                    let x = x.into_iter().map(|v| 2.0 * v).collect();
                    net(p, g, Tensor::from_f32(vec![4, 3, 9, 9], x).unwrap())
                })
                .collect(),
        ),
    ];
    // Emit once per (case, net, target, K).
    let mut sources: HashMap<(usize, usize, Target, u8), EmittedC> = HashMap::new();
    for (ci, c) in cases.iter().enumerate() {
        for (ni, t) in c.nets.iter().enumerate() {
            for target in Target::ALL {
                for &k in c.planes {
                    let opts = EmitOptions {
                        planes: k,
                        name: t.prefix.into(),
                        target,
                        layer_planes: None,
                        adaptive: None,
                        code_bits: c.code_bits,
                    };
                    let src = emit(t.graph, &opts)
                        .unwrap_or_else(|e| panic!("{} {target} K={k}: {e}", t.prefix));
                    sources.insert((ci, ni, target, k), src);
                }
            }
        }
    }
    let mut jobs = Vec::new();
    for (ci, c) in cases.iter().enumerate() {
        for tc in TOOLCHAINS {
            for &t in tc.targets {
                // armv7m stores planes: the code widths do not apply.
                if c.code_bits == CodeBits::Exact && t == Target::Armv7m {
                    continue;
                }
                // Streaming differs from fast on x86-64-v3 only.
                if c.code_bits == CodeBits::Stream && t != Target::X86_64V3 {
                    continue;
                }
                for &k in c.planes {
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
                let srcs: Vec<&EmittedC> = (0..cases[ci].nets.len())
                    .map(|ni| &sources[&(ci, ni, t, k)])
                    .collect();
                let r = check(&cases[ci], tc, t, k, &srcs);
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
        let cells: Vec<&str> = (2..=8u8)
            .map(|k| match chunk.iter().find(|r| r.4 == k).map(|r| &r.5) {
                Some(Ok(note)) if note == "pass" => "pass",
                Some(Ok(_)) => "built",
                Some(Err(_)) => "FAIL",
                None => "—",
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
                adaptive: None,
                code_bits: Default::default(),
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
    println!("\n| K | target | code bits | weight bytes | arena bytes | scratch bytes |");
    println!("|---|---|---|---|---|---|");
    let (mut planes_bytes, mut fast_bytes, mut exact_bytes) = (Vec::new(), Vec::new(), Vec::new());
    // Per layer, for the streaming widths: (fast, exact, stream) at each K.
    let mut per_layer: Vec<[Vec<u64>; 3]> = Vec::new();
    for k in 2..=8u8 {
        let mut layers: [Vec<u64>; 3] = Default::default();
        for (t, code_bits) in [
            (Target::Armv7m, CodeBits::Fast),
            (Target::X86_64V3, CodeBits::Fast),
            (Target::X86_64V3, CodeBits::Exact),
            (Target::X86_64V3, CodeBits::Stream),
        ] {
            let s = emit(
                mnist(),
                &EmitOptions {
                    planes: k,
                    name: "m".into(),
                    target: t,
                    layer_planes: None,
                    adaptive: None,
                    code_bits,
                },
            )
            .unwrap()
            .stats;
            println!(
                "| {k} | {t} | {} | {} | {} | {} |",
                code_bits.name(),
                s.weight_bytes,
                s.arena_bytes,
                s.scratch_bytes
            );
            let sizes = s.layers.iter().map(|l| l.weight_bytes).collect();
            match (t, code_bits) {
                (Target::Armv7m, _) => planes_bytes.push(s.weight_bytes),
                (_, CodeBits::Fast) => {
                    fast_bytes.push(s.weight_bytes);
                    layers[0] = sizes;
                }
                (_, CodeBits::Exact) => {
                    exact_bytes.push(s.weight_bytes);
                    layers[1] = sizes;
                }
                (_, CodeBits::Stream) => layers[2] = sizes,
            }
            assert_eq!(s.macs, 4_241_152);
        }
        per_layer.push(layers);
    }
    // Streaming: the fully connected layers (fc_8, logits) at K = 5 and 6 are stored as the
    // exact widths store them, every other layer and count as the fast widths.
    for (i, k) in (2..=8u8).enumerate() {
        let [fast, exact, stream] = &per_layer[i];
        for (l, &bytes) in stream.iter().enumerate() {
            let linear = l >= 2;
            let want = if linear && (k == 5 || k == 6) {
                exact[l]
            } else {
                fast[l]
            };
            assert_eq!(bytes, want, "K = {k}, layer {l}");
        }
        if k == 5 || k == 6 {
            let (s, f): (u64, u64) = (stream.iter().sum(), fast.iter().sum());
            assert!(s * 10 < f * 8, "K = {k}: streaming {s} bytes, fast {f}");
        }
    }
    // Each extra plane adds one bit per weight: 53,152 bytes of u64-padded plane rows, plus
    // one more side table (3 floats per output channel, activation scale and zero point).
    for w in planes_bytes.windows(2) {
        let step = w[1] - w[0];
        assert!((53_152..53_152 + 3_000).contains(&step), "{w:?}");
    }
    // Exact code widths store K bits a code: each plane adds 1/8 of the 8-bit codes (52,776
    // bytes: blocks padded to 16 rows and channel pairs) plus one more side table and row of
    // code sums (3,812 bytes).
    for w in exact_bytes.windows(2) {
        assert_eq!(w[1] - w[0], 52_776 + 3_812, "{w:?}");
    }
    // Fast widths: K's codes take the bytes of exact codes at 2, 4 or 8 bits, with the side
    // tables of K counts.
    for (i, k) in (2..=8u8).enumerate() {
        let bits = [2, 2, 2, 4, 4, 8, 8, 8, 8][usize::from(k)];
        let stored = exact_bytes[usize::from(bits) - 2];
        assert_eq!(
            fast_bytes[i],
            stored - u64::from(bits - k) * 3_812,
            "K = {k}"
        );
    }
    for b in [&fast_bytes, &exact_bytes, &planes_bytes] {
        let ratio = b[0] as f64 / b[6] as f64;
        assert!(
            ratio <= 0.25,
            "K = 2 holds {ratio:.3} of K = 8's weight bytes"
        );
    }
}
