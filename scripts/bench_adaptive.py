#!/usr/bin/env python3
"""Benchmark: adaptive precision against uniform plane counts, in the emitted C (x86-64-v3).

One thread, batch 1. In one run it:
  1. compiles MODEL to .strata on the calibration images (`strata compile`),
  2. fits one adaptive policy per target on the fitting images (`strata adapt`: training
     images, no labels; the test images are never seen),
  3. evaluates every uniform K, every policy and their average bit-operations on the test
     images with the runtime (`strata eval --adaptive --json`),
  4. emits each file as C for x86-64-v3 with `PREFIX_run_adaptive`, builds a timing harness
     (`gcc -O3 -march=x86-64-v3`), and times the uniform counts through `model_run_planes`
     (every layer at k, on the K = 8 build) and each policy through `model_run_adaptive`,
     interleaving the repetitions so that load from other processes hits them alike,
  5. checks the C logits' top-1 against the runtime's, and prints a markdown table: top-1,
     agreement with K = 8, bit-operations and median µs per image, each as a ratio to K = 8.

Usage: .venv/bin/python scripts/bench_adaptive.py --model M.onnx --calib C.npy --fit F.npy
           --data X.npy --labels Y.npy [--targets budget=0.3,max-drop=0.1] [--reps 7]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

HARNESS = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "model.h"
/* usage: bench IMAGES.bin N REPS OUT.bin (K | adaptive): prints microseconds per image for
 * each repetition (batch 1: model_run_planes with K planes in every layer, or
 * model_run_adaptive), then writes the outputs of the last repetition. */
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
int main(int argc, char **argv)
{
    long n, i;
    int reps, r, k, adaptive;
    float *x, *y;
    FILE *f;
    uint8_t ppl[MODEL_NUM_LAYERS + 1];
    if (argc != 6) return 2;
    adaptive = strcmp(argv[5], "adaptive") == 0;
    k = adaptive ? 0 : atoi(argv[5]);
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
#ifdef MODEL_ADAPTIVE_STAGES
            if ((adaptive ? model_run_adaptive(xi, yi, NULL) : model_run_planes(xi, yi, ppl)) != 0) return 5;
#else
            if (adaptive || model_run_planes(xi, yi, ppl) != 0) return 5;
#endif
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


def run(cmd, **kw):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="the ONNX model")
    ap.add_argument("--calib", required=True, help="calibration images (.npy)")
    ap.add_argument("--fit", required=True, help="images to fit the policies on (.npy, training set)")
    ap.add_argument("--data", required=True, help="test images (.npy)")
    ap.add_argument("--labels", required=True, help="test labels (.npy)")
    ap.add_argument("--targets", default="budget=0.3,budget=0.4,budget=0.5,max-drop=0.5,max-drop=0.1")
    ap.add_argument("--planes", default="8,7,6,5,4,3,2", help="uniform counts to time (first = full)")
    ap.add_argument("--time-images", type=int, default=1000, help="test images per timed pass")
    ap.add_argument("--reps", type=int, default=7, help="timed passes per engine")
    ap.add_argument("--out", default=str(ROOT / "target" / "bench_adaptive"), help="work directory")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run(["cargo", "build", "--release", "-q", "-p", "strata-cli"], cwd=ROOT)
    strata = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "strata"
    base = out / "model.strata"
    print("compiling …", file=sys.stderr)
    run([strata, "compile", args.model, "--calib", args.calib, "-o", base])
    targets = [t for t in args.targets.split(",") if t]
    files = {}
    for t in targets:
        f = out / f"{t.replace('=', '_')}.strata"
        print(f"fitting {t} …", file=sys.stderr)
        run([strata, "adapt", base, "--adaptive", t, "--data", args.fit, "-o", f])
        files[t] = f
    print("evaluating with the runtime …", file=sys.stderr)
    # One eval: every uniform count and every policy (fitted again in memory on the same
    # images, which gives the same policy: the fit is deterministic).
    report = json.loads(run([strata, "eval", base, "--data", args.data, "--labels", args.labels,
                             "--adaptive", "--fit", ",".join(targets), "--fit-data", args.fit,
                             "--json"]))
    cost = {(r["method"], r["label"]): r for r in report["cost"]["rows"]}

    images = np.load(args.data).astype(np.float32)
    labels = np.load(args.labels)
    n = min(args.time_images, len(images))
    images[:n].tofile(out / "images.bin")
    ks = [int(v) for v in args.planes.split(",")]

    def build(name, strata_file):
        d = out / name
        run([strata, "emit-c", strata_file, "--planes", str(ks[0]), "--target", "x86-64-v3",
             "--name", "model", "-o", d])
        (d / "bench.c").write_text(HARNESS)
        run(["gcc", "-std=c99", "-O3", "-march=x86-64-v3", "-o", d / "bench", d / "model.c",
             d / "bench.c", "-lm"])
        return d

    engines = {}
    rows = {}
    uniform_dir = build("uniform", base)
    for k in ks:
        engines[f"uniform k={k}"] = (uniform_dir, str(k))
        rows[f"uniform k={k}"] = cost[("uniform", f"k={k}")]
    for t, f in files.items():
        engines[f"adaptive {t}"] = (build(t.replace("=", "_"), f), "adaptive")
        rows[f"adaptive {t}"] = cost[("adaptive", t)]

    logits = {}

    def timed(name):
        d, mode = engines[name]
        o = d / f"out_{mode}.bin"
        t = float(run([d / "bench", out / "images.bin", n, 1, o, mode]).split()[0])
        logits[name] = np.fromfile(o, dtype=np.float32).reshape(n, -1)
        return t

    print(f"timing {len(engines)} engines, {args.reps} interleaved passes over {n} images …",
          file=sys.stderr)
    times = {name: [] for name in engines}
    for name in engines:
        timed(name)
    for _ in range(args.reps):
        for name in engines:
            times[name].append(timed(name))
    med = {name: statistics.median(ts) for name, ts in times.items()}
    full = f"uniform k={ks[0]}"
    cc_version = run(["gcc", "--version"]).splitlines()[0]
    print(f"\n{Path(args.model).name}: top-1 / agreement / bit-ops from the runtime on all "
          f"{len(images)} test images; C time: batch 1, 1 thread, {n} images, median of "
          f"{args.reps} passes, x86-64-v3, {cc_version}\n")
    print(f"| config | top-1 % | agree with K={ks[0]} % | bit-ops × K={ks[0]} | µs/image (C) "
          f"| time × K={ks[0]} | C top-1 % (timed {n}) |")
    print("|---|---|---|---|---|---|---|")
    for name in engines:
        r = rows[name]
        acc_c = float((logits[name].argmax(1) == labels[:n]).mean())
        print(f"| {name} | {100 * r['top1']:.2f} | {100 * r['agreement']:.2f} | {r['bit_ops']:.3f} "
              f"| {med[name]:.1f} | {med[name] / med[full]:.2f} | {100 * acc_c:.2f} |")


if __name__ == "__main__":
    main()
