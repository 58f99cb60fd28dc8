#!/usr/bin/env python3
"""Benchmark: the MLIR backend's object against the C backend (target x86-64-v3) and ONNX
Runtime FP32 and int8, on the MNIST CNN and a ResNet-18 (3x64x64, 149 M MACs per image).

One thread, interleaved passes, medians. In one run, per net it:
  1. compiles the ONNX model to .strata with its calibration images,
  2. for each K (--planes): `strata build --backend mlir` (an object for this machine's CPU,
     linked with the timing harness of scripts/bench_c.py) and `strata emit-c --target
     x86-64-v3` built with `gcc -O3 -march=x86-64-v3` into the same harness,
  3. quantizes the ONNX model with onnxruntime.quantization.quantize_static (QDQ,
     per-channel, int8 weights and activations, the same calibration images),
  4. times every engine: the Strata builds run one image per call (their C API takes one
     sample; batch 64 is 64 calls), onnxruntime at batch 1 and at batch 64, interleaving
     the passes so that load from other processes hits them alike,
  5. prints a markdown table: median (and best-pass) µs per image, the ratios against ORT
     int8 at batch 1 and 64 and against the C build at the same K, and top-1 (MNIST, on the
     500 fixture images) or agreement of the argmax with ORT FP32 (ResNet-18: seeded
     weights, not a classifier). The MLIR and C builds' logits are compared bit for bit.

Usage: .venv/bin/python scripts/bench_mlir.py [--reps 9] [--planes 8,4,2] [--nets mnist,resnet18]
                       [--backends mlir,c] [--vnni]
`--backends c` times the C builds alone beside onnxruntime (no MLIR build needed): issue 15's
end-to-end table on a conv net of more than 100 M MACs.
The ResNet-18 is exported on first use with the PyTorch venv (scripts/setup-torch.sh) by
scripts/export_resnet18.py, or taken from --resnet-dir if it holds resnet18_64.onnx.
Needs: a strata binary built with `--features mlir` (this script builds it), gcc, the pinned
.venv (onnxruntime, numpy).
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_c import HARNESS, Calib, run  # noqa: E402  (one harness for both benchmarks)

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures" / "mnist"
TORCH_PY = Path.home() / ".cache" / "strata" / "torch-venv" / "bin" / "python"


def nets(args, out):
    """(name, onnx path, images, labels or None, calibration images)."""
    found = []
    for name in args.nets.split(","):
        if name == "mnist":
            found.append(("MNIST CNN", ROOT / "models" / "mnist_cnn.onnx",
                          np.load(FIX / "images.npy").astype(np.float32), np.load(FIX / "labels.npy"),
                          np.load(FIX / "calib.npy").astype(np.float32)))
        elif name == "resnet18":
            d = Path(args.resnet_dir) if args.resnet_dir else out
            onnx_path = d / "resnet18_64.onnx"
            if not onnx_path.exists():
                if not TORCH_PY.exists():
                    sys.exit(f"{onnx_path} is missing and {TORCH_PY} does not exist: run "
                             "scripts/setup-torch.sh, or pass --resnet-dir")
                print("exporting ResNet-18 (3x64x64) …", file=sys.stderr)
                run([TORCH_PY, ROOT / "scripts" / "export_resnet18.py", d])
            found.append(("ResNet-18 3x64x64", onnx_path,
                          np.load(d / "resnet18_64.images.npy").astype(np.float32), None,
                          np.load(d / "resnet18_64.calib.npy").astype(np.float32)))
        else:
            sys.exit(f"unknown net {name!r} (mnist, resnet18)")
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=9, help="timed passes over the images per engine")
    ap.add_argument("--planes", default="8,4,2", help="plane counts K to build")
    ap.add_argument("--nets", default="mnist,resnet18", help="mnist, resnet18")
    ap.add_argument("--backends", default="mlir,c", help="mlir, c: the Strata builds to time")
    ap.add_argument("--resnet-dir", default="", help="directory with resnet18_64.{onnx,calib.npy,images.npy}")
    ap.add_argument("--vnni", action="store_true",
                    help="also time each C build compiled with -mavx512vnni -mavx512vl (vpdpbusd kernels)")
    ap.add_argument("--out", default=str(ROOT / "target" / "bench_mlir"), help="work directory")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("MLIR_SYS_220_PREFIX", "/usr/lib/llvm-22")
    env.setdefault("TABLEGEN_220_PREFIX", "/usr/lib/llvm-22")
    backends = [b for b in ["mlir", "c"] if b in args.backends.split(",")]
    if not backends or set(args.backends.split(",")) - {"mlir", "c"}:
        sys.exit(f"--backends takes mlir and/or c, not {args.backends!r}")
    features = ["--features", "mlir"] if "mlir" in backends else []
    print(f"building strata ({', '.join(backends)}; release) …", file=sys.stderr)
    run(["cargo", "build", "--release", "-q", "-p", "strata-cli", *features], cwd=ROOT, env=env)
    strata = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "strata"
    cc_version = run(["gcc", "--version"]).splitlines()[0]
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    ks = [int(v) for v in args.planes.split(",")]

    for title, onnx_path, images, labels, calib in nets(args, out):
        tag = onnx_path.stem
        n = len(images)
        (out / f"{tag}.images.bin").write_bytes(images.tobytes())
        model = out / f"{tag}.strata"
        calib_path = out / f"{tag}.calib.npy"
        np.save(calib_path, calib)
        print(f"{title}: compiling …", file=sys.stderr)
        run([strata, "compile", onnx_path, "--calib", calib_path, "-o", model])
        engines, logits, build_s = {}, {}, {}
        for k in ks:
            for backend in backends:
                d = out / f"{tag}_{backend}_k{k}"
                d.mkdir(exist_ok=True)
                (d / "bench.c").write_text(HARNESS)
                exe = d / "bench"
                t0 = time.perf_counter()
                if backend == "mlir":
                    run([strata, "build", model, "--backend", "mlir", "--planes", str(k), "--name", "model", "-o", d])
                    build_s[f"MLIR K={k}"] = time.perf_counter() - t0
                    run(["gcc", "-O2", "-o", exe, d / "bench.c", d / "model.o", "-lm"])
                    name = f"strata MLIR (host CPU) K={k}"
                else:
                    run([strata, "emit-c", model, "--planes", str(k), "--target", "x86-64-v3", "--name", "model", "-o", d])
                    run(["gcc", "-std=c99", "-O3", "-march=x86-64-v3", "-o", exe, d / "model.c", d / "bench.c", "-lm"])
                    build_s[f"C K={k}"] = time.perf_counter() - t0
                    name = f"strata C x86-64-v3 K={k}"
                builds = [(name, exe)]
                if backend == "c" and args.vnni:
                    vexe = d / "bench_vnni"
                    run(["gcc", "-std=c99", "-O3", "-march=x86-64-v3", "-mavx512vnni", "-mavx512vl", "-o", vexe,
                         d / "model.c", d / "bench.c", "-lm"])
                    builds.append((f"strata C x86-64-v3+VNNI K={k}", vexe))

                for name, exe in builds:

                    def c_pass(exe=exe, d=d, name=name):
                        t = float(run([exe, out / f"{tag}.images.bin", str(n), "1", d / "logits.bin"]).split()[0])
                        logits[name] = np.fromfile(d / "logits.bin", dtype=np.float32).reshape(n, -1)
                        return t

                    engines[name] = c_pass

        print(f"{title}: quantizing with onnxruntime (QDQ, per-channel, int8) …", file=sys.stderr)
        int8_path = out / f"{tag}.qdq.onnx"
        input_name = ort.InferenceSession(str(onnx_path), so).get_inputs()[0].name
        quantize_static(str(onnx_path), str(int8_path), Calib(input_name, calib),
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        for label, path in [("onnxruntime FP32", onnx_path), ("onnxruntime int8 (QDQ)", int8_path)]:
            sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
            for batch in [1, 64]:
                name = f"{label} batch {batch}"

                def ort_pass(sess=sess, name=name, batch=batch):
                    ys = []
                    t0 = time.perf_counter()
                    for i in range(0, n, batch):
                        ys.append(sess.run(None, {input_name: images[i:i + batch]})[0])
                    t = (time.perf_counter() - t0) / n * 1e6
                    logits[name] = np.concatenate(ys).reshape(n, -1)
                    return t

                engines[name] = ort_pass

        print(f"{title}: timing {len(engines)} engines, {args.reps} interleaved passes over {n} images …",
              file=sys.stderr)
        times = {name: [] for name in engines}
        for f in engines.values():  # warm-up
            f()
        for _ in range(args.reps):
            for name, f in engines.items():
                times[name].append(f())
        # The VNNI builds compute the same integers as the AVX2 ones: bit-identical logits.
        for name in [m for m in logits if "+VNNI" in m]:
            if not np.array_equal(logits[name].view(np.uint32), logits[name.replace("+VNNI", "")].view(np.uint32)):
                sys.exit(f"{name}: logits differ from the AVX2 build's")
        med = {name: statistics.median(ts) for name, ts in times.items()}
        best = {name: min(ts) for name, ts in times.items()}
        i8_1, i8_64 = med["onnxruntime int8 (QDQ) batch 1"], med["onnxruntime int8 (QDQ) batch 64"]
        ref = logits["onnxruntime FP32 batch 1"].argmax(1)
        quality = "top-1" if labels is not None else "argmax = ORT FP32"
        print(f"\n{title}, 1 thread, {n} images, median of {args.reps} passes; {cc_version}; "
              f"onnxruntime {ort.__version__}; Strata builds: one image per call\n")
        print(f"| engine | µs/image (median) | × ORT int8 b1 | × ORT int8 b64 | × C x86-64-v3 same K "
              f"| µs/image (best) | {quality} |")
        print("|---|---|---|---|---|---|---|")
        for name in engines:
            c_same = name.replace("MLIR (host CPU)", "C x86-64-v3") if "MLIR" in name and "c" in backends else None
            vs_c = f"{med[name] / med[c_same]:.2f}" if c_same else "—"
            pred = logits[name].argmax(1)
            q = float((pred == (labels if labels is not None else ref)).mean())
            print(f"| {name} | {med[name]:.1f} | {med[name] / i8_1:.2f} | {med[name] / i8_64:.2f} | {vs_c} "
                  f"| {best[name]:.1f} | {q:.3f} |")
        c8 = f"strata C x86-64-v3 K={max(ks)}"
        if c8 in med:
            print(f"\nC time × C K={max(ks)}: " + ", ".join(
                f"K={k} {med[f'strata C x86-64-v3 K={k}'] / med[c8]:.2f}" for k in ks))
        for k in ks if backends == ["mlir", "c"] else []:
            same = np.array_equal(logits[f"strata MLIR (host CPU) K={k}"].view(np.uint32),
                                  logits[f"strata C x86-64-v3 K={k}"].view(np.uint32))
            print(f"\nK={k}: MLIR and C logits bit-identical: {same}; build wall time MLIR "
                  f"{build_s[f'MLIR K={k}']:.1f} s, C (emit + gcc) {build_s[f'C K={k}']:.1f} s", end="")
        print("\n")


if __name__ == "__main__":
    main()
