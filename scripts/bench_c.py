#!/usr/bin/env python3
"""Benchmark: the emitted C (target x86-64-v3) against ONNX Runtime FP32 and int8 on the MNIST CNN.

Batch 1, one thread, the 500 fixture test images. In one run it:
  1. compiles models/mnist_cnn.onnx to .strata with the 256 fixture calibration images,
  2. emits C for K = 8, 6, 4, 3, 2 (`strata emit-c --target x86-64-v3`) and builds each with
     `gcc -std=c99 -O3 -march=x86-64-v3` into a timing harness; the first K's build is also
     timed through `model_run_planes` at lower run-time counts in every layer (--run-planes),
  3. quantizes the ONNX model with onnxruntime.quantization.quantize_static (QDQ, per-channel,
     int8 weights and activations, the same calibration images),
  4. times every engine over all images, interleaving the repetitions so that load from other
     processes hits them alike, and prints a markdown table of the median (and best-pass) µs
     per image, the weight bytes of each build, the ratios against the first K, ORT FP32 and
     ORT int8, and top-1 on the 500 images.

Usage (from anywhere): .venv/bin/python scripts/bench_c.py [--reps 15] [--planes 8,6,4,3,2]
                       [--run-planes 6,4,3,2] [--vnni]
Needs: gcc with x86-64-v3 support, an AVX2 CPU, the pinned .venv (onnxruntime, numpy).
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
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures" / "mnist"

HARNESS = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include "model.h"
/* usage: bench IMAGES.bin N REPS OUT.bin [K]: prints microseconds per image for each
 * repetition (batch 1: one model_run per image, or with K one model_run_planes at K planes in
 * every layer), then writes the logits of the last repetition. */
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
int main(int argc, char **argv)
{
    long n, i;
    int reps, r;
    float *x, *y;
    FILE *f;
    uint8_t ppl[MODEL_NUM_LAYERS];
    int k = argc == 6 ? atoi(argv[5]) : 0;
    if (argc != 5 && argc != 6) return 2;
    for (i = 0; i < MODEL_NUM_LAYERS; ++i) ppl[i] = (uint8_t)k;
    n = atol(argv[2]);
    reps = atoi(argv[3]);
    x = malloc(sizeof(float) * MODEL_INPUT_SIZE * (size_t)n);
    y = malloc(sizeof(float) * MODEL_OUTPUT_SIZE * (size_t)n);
    if (!x || !y) return 3;
    f = fopen(argv[1], "rb");
    if (!f || fread(x, sizeof(float) * MODEL_INPUT_SIZE, (size_t)n, f) != (size_t)n) return 4;
    fclose(f);
    for (r = 0; r < reps; ++r) {
        double t0 = now();
        for (i = 0; i < n; ++i) {
            float *xi = x + i * MODEL_INPUT_SIZE, *yi = y + i * MODEL_OUTPUT_SIZE;
            if ((k ? model_run_planes(xi, yi, ppl) : model_run(xi, yi)) != 0) return 5;
        }
        printf("%.3f\n", (now() - t0) / (double)n * 1e6);
    }
    f = fopen(argv[4], "wb");
    if (!f) return 6;
    fwrite(y, sizeof(float) * MODEL_OUTPUT_SIZE, (size_t)n, f);
    fclose(f);
    return 0;
}
"""


class Calib(CalibrationDataReader):
    """Feeds the calibration images one at a time (batch 1), as the model is run."""

    def __init__(self, name, images):
        self.name = name
        self.it = iter(images)

    def get_next(self):
        x = next(self.it, None)
        return None if x is None else {self.name: x[None]}


def run(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=15, help="timed passes over the images per engine")
    ap.add_argument("--planes", default="8,6,4,3,2", help="plane counts K to emit")
    ap.add_argument("--code-bits", default="fast", choices=["fast", "exact"],
                    help="strata emit-c --code-bits: the stored code widths (exact: K bits a weight)")
    ap.add_argument("--run-planes", default="6,4,3,2",
                    help="run-time counts k to time through model_run_planes on the first K's build "
                         "(every layer at k; empty: none)")
    ap.add_argument("--vnni", action="store_true",
                    help="also time every K built with -mavx512vnni -mavx512vl (vpdpbusd kernels; "
                         "needs a CPU with AVX512-VNNI, as onnxruntime's int8 kernels use there)")
    ap.add_argument("--out", default=str(ROOT / "target" / "bench_c"), help="work directory")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    images = np.load(FIX / "images.npy").astype(np.float32)
    labels = np.load(FIX / "labels.npy")
    calib = np.load(FIX / "calib.npy").astype(np.float32)
    n = len(images)
    images.tofile(out / "images.bin")

    print("building strata (release) …", file=sys.stderr)
    run(["cargo", "build", "--release", "-q", "-p", "strata-cli"], cwd=ROOT)
    strata = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "strata"
    model = out / "mnist.strata"
    run([strata, "compile", ROOT / "models" / "mnist_cnn.onnx", "--calib", FIX / "calib.npy", "-o", model])

    engines = {}  # name -> callable running one timed pass, returning µs/img
    logits = {}
    cc_version = run(["gcc", "--version"]).splitlines()[0]
    weight_bytes = {}  # name -> MODEL_WEIGHT_BYTES of the build it runs
    ks = [int(v) for v in args.planes.split(",")]
    mode = "" if args.code_bits == "fast" else f" ({args.code_bits} code bits)"
    for k in ks:
        d = out / f"k{k}"
        run([strata, "emit-c", model, "--planes", str(k), "--target", "x86-64-v3",
             "--code-bits", args.code_bits, "--name", "model", "-o", d])
        (d / "bench.c").write_text(HARNESS)
        exe = d / "bench"
        run(["gcc", "-std=c99", "-O3", "-march=x86-64-v3", "-o", exe, d / "model.c", d / "bench.c", "-lm"])
        header = (d / "model.h").read_text()
        wb = int(header.split("#define MODEL_WEIGHT_BYTES ")[1].split()[0])
        runs = [(f"strata C x86-64-v3{mode} K={k}", [], exe)]
        if k == ks[0] and args.run_planes:
            runs += [(f"strata C x86-64-v3{mode} K={k}, run_planes k={r}", [str(r)], exe)
                     for r in [int(v) for v in args.run_planes.split(",")]]
        if args.vnni:
            vexe = d / "bench_vnni"
            run(["gcc", "-std=c99", "-O3", "-march=x86-64-v3", "-mavx512vnni", "-mavx512vl", "-o", vexe,
                 d / "model.c", d / "bench.c", "-lm"])
            runs.append((f"strata C x86-64-v3+VNNI{mode} K={k}", [], vexe))
        for name, extra, exe in runs:

            def c_pass(exe=exe, d=d, name=name, extra=extra):
                t = float(run([exe, out / "images.bin", str(n), "1", d / "logits.bin", *extra]).split()[0])
                logits[name] = np.fromfile(d / "logits.bin", dtype=np.float32).reshape(n, -1)
                return t

            engines[name] = c_pass
            weight_bytes[name] = wb

    print("quantizing with onnxruntime (QDQ, per-channel, int8) …", file=sys.stderr)
    fp32_path = ROOT / "models" / "mnist_cnn.onnx"
    int8_path = out / "mnist_cnn.qdq.onnx"
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    input_name = ort.InferenceSession(str(fp32_path), so).get_inputs()[0].name
    quantize_static(
        str(fp32_path),
        str(int8_path),
        Calib(input_name, calib),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
    )
    for label, path in [("onnxruntime FP32", fp32_path), ("onnxruntime int8 (QDQ)", int8_path)]:
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])

        def ort_pass(sess=sess, label=label):
            ys = np.empty((n, 10), dtype=np.float32)
            t0 = time.perf_counter()
            for i in range(n):
                ys[i] = sess.run(None, {input_name: images[i : i + 1]})[0][0]
            t = (time.perf_counter() - t0) / n * 1e6
            logits[label] = ys
            return t

        engines[label] = ort_pass

    print(f"timing {len(engines)} engines, {args.reps} interleaved passes over {n} images …", file=sys.stderr)
    times = {name: [] for name in engines}
    for f in engines.values():  # warm-up
        f()
    for _ in range(args.reps):
        for name, f in engines.items():
            times[name].append(f())

    # The VNNI builds compute the same integers: their logits must be the AVX2 builds', bit for bit.
    for name in list(logits):
        if "+VNNI" in name:
            twin = name.replace("+VNNI", "")
            if not np.array_equal(logits[name].view(np.uint32), logits[twin].view(np.uint32)):
                sys.exit(f"{name}: logits differ from {twin}")

    med = {name: statistics.median(ts) for name, ts in times.items()}
    fp32 = med["onnxruntime FP32"]
    int8 = med["onnxruntime int8 (QDQ)"]
    print(f"\nMNIST CNN, batch 1, 1 thread, {n} images, median of {args.reps} passes; {cc_version}; "
          f"onnxruntime {ort.__version__}\n")
    best = {name: min(ts) for name, ts in times.items()}
    top = f"strata C x86-64-v3{mode} K={ks[0]}"
    print(f"| engine | weight bytes | µs/image (median) | × {top[-3:]} | × ORT FP32 | × ORT int8 "
          "| µs/image (best pass) | × ORT int8 (best) | top-1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in engines:
        acc = float((logits[name].argmax(1) == labels).mean())
        wb = f"{weight_bytes[name]:,}" if name in weight_bytes else "—"
        print(f"| {name} | {wb} | {med[name]:.1f} | {med[name] / med[top]:.2f} | {med[name] / fp32:.2f} "
              f"| {med[name] / int8:.2f} | {best[name]:.1f} | {best[name] / best['onnxruntime int8 (QDQ)']:.2f} "
              f"| {acc:.3f} |")
    print("\n(× = latency ratio; below 1.00 is faster than the reference. On a shared machine the "
          "best pass is the least disturbed one.)")


if __name__ == "__main__":
    main()
