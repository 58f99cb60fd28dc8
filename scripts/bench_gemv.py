#!/usr/bin/env python3
"""Benchmark: a memory-bound GEMV (fully connected layer at batch 1) in the emitted C per plane count.

One thread, in one run:
  1. writes an ONNX model of one Gemm, ROWS x COLS weights (default 4096 x 4096), input [1, COLS],
     and compiles it with `strata compile` on 16 random calibration rows,
  2. emits C (`--target x86-64-v3`) for every K in --planes and builds each into a harness that
     calls model_run on one input REPS times and prints the median µs per call,
  3. builds a STREAM-style reference that reads the same number of bytes as each K's
     MODEL_WEIGHT_BYTES (an AVX2 sum over a buffer on transparent huge pages, cold in cache
     the same way: a 256 MiB buffer is read between calls in both),
  4. runs them interleaved, --rounds times, and prints the median µs of the GEMV and of the
     stream read per K, t(K)/t(8), the goal K/8 + 0.1, and t(K)/stream(K).

Usage: .venv/bin/python scripts/bench_gemv.py [--rows 4096] [--cols 4096] [--planes 8,6,4,3,2] [--code-bits stream]
Needs: gcc with x86-64-v3 support, an AVX2 CPU, the pinned .venv (numpy, onnx).
"""

import argparse
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from bench_c import run  # the same checked subprocess call (this directory is on sys.path)

ROOT = Path(__file__).resolve().parent.parent

# Monotonic seconds and a comparison for qsort of doubles, for both C programs.
TIMING = r"""static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}"""

HARNESS = r"""
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "model.h"
/* usage: bench REPS: median microseconds of one model_run over REPS calls. A buffer larger
 * than the caches is read between calls so the weights come from memory every time. */
TIMING
int main(int argc, char **argv)
{
    static float x[MODEL_INPUT_SIZE], y[MODEL_OUTPUT_SIZE];
    size_t flush_n = (size_t)256 << 20, i;
    volatile unsigned char *flush = malloc(flush_n);
    int reps = argc > 1 ? atoi(argv[1]) : 21, r;
    double *t = malloc(sizeof(double) * (size_t)reps);
    unsigned sink = 0;
    if (!flush || !t) return 3;
    for (i = 0; i < flush_n; ++i) flush[i] = (unsigned char)i;
    for (i = 0; i < MODEL_INPUT_SIZE; ++i) x[i] = (float)((i * 37u) % 101u) / 50.0f - 1.0f;
    for (r = 0; r < reps; ++r) {
        double t0;
        for (i = 0; i < flush_n; i += 64) sink += flush[i];
        t0 = now();
        if (model_run(x, y) != 0) return 5;
        t[r] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof(double), cmp);
    printf("%.3f %u\n", t[reps / 2] * 1e6, sink & 1u);
    return 0;
}
"""

STREAM = r"""
#define _DEFAULT_SOURCE
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
/* usage: stream BYTES REPS: median microseconds to read BYTES (AVX2 sum), from memory. The
 * buffer asks for transparent huge pages (madvise), as TLB misses on 4 KiB pages made a
 * plain malloc'd read slower than the GEMV streaming its weights from the binary's pages. */
TIMING
int main(int argc, char **argv)
{
    size_t n = (size_t)atol(argv[1]) / 32 * 32, flush_n = (size_t)256 << 20, i;
    int reps = atoi(argv[2]), r;
    size_t huge = (size_t)2 << 20, alloc = (n + 128 + huge - 1) / huge * huge;
    unsigned char *buf = aligned_alloc(huge, alloc);
    volatile unsigned char *flush = malloc(flush_n);
    double *t = malloc(sizeof(double) * (size_t)reps);
    unsigned sink = 0;
    if (!buf || !flush || !t) return 3;
    madvise(buf, alloc, MADV_HUGEPAGE);
    for (i = 0; i < n; ++i) buf[i] = (unsigned char)(i * 7u);
    for (i = 0; i < flush_n; ++i) flush[i] = (unsigned char)i;
    for (r = 0; r < reps; ++r) {
        __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
        double t0;
        for (i = 0; i < flush_n; i += 64) sink += flush[i];
        t0 = now();
        for (i = 0; i + 128 <= n; i += 128) {
            a0 = _mm256_add_epi8(a0, _mm256_load_si256((const __m256i *)(buf + i)));
            a1 = _mm256_add_epi8(a1, _mm256_load_si256((const __m256i *)(buf + i + 32)));
            a2 = _mm256_add_epi8(a2, _mm256_load_si256((const __m256i *)(buf + i + 64)));
            a3 = _mm256_add_epi8(a3, _mm256_load_si256((const __m256i *)(buf + i + 96)));
        }
        t[r] = now() - t0;
        a0 = _mm256_add_epi8(_mm256_add_epi8(a0, a1), _mm256_add_epi8(a2, a3));
        sink += (unsigned)_mm256_extract_epi8(a0, 0);
    }
    qsort(t, (size_t)reps, sizeof(double), cmp);
    printf("%.3f %u\n", t[reps / 2] * 1e6, sink & 1u);
    return 0;
}
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=4096)
    ap.add_argument("--cols", type=int, default=4096)
    ap.add_argument("--planes", default="8,6,4,3,2", help="plane counts K to emit (the first is the reference)")
    ap.add_argument("--code-bits", default="stream", choices=["fast", "exact", "stream"],
                    help="strata emit-c --code-bits: the stored code widths (default stream: the widths "
                         "a fully connected layer read from memory runs fastest at; exact: K bits a weight)")
    ap.add_argument("--reps", type=int, default=21, help="calls per measurement (median)")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median of the medians)")
    ap.add_argument("--out", default=str(ROOT / "target" / "bench_gemv"), help="work directory")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)

    onnx_path = out / "gemv.onnx"
    w = (rng.standard_normal((args.rows, args.cols)) / np.sqrt(args.cols)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)],
        "gemv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, args.cols])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, args.rows])],
        [numpy_helper.from_array(w, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), onnx_path)
    calib = out / "calib.npy"
    np.save(calib, rng.uniform(-1, 1, (16, args.cols)).astype(np.float32))

    print("building strata (release) …", file=sys.stderr)
    run(["cargo", "build", "--release", "-q", "-p", "strata-cli"], cwd=ROOT)
    strata = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "strata"
    model = out / "gemv.strata"
    ks = [int(v) for v in args.planes.split(",")]
    run([strata, "compile", onnx_path, "--calib", calib, "--planes", ",".join(map(str, sorted(ks))), "-o", model])

    (out / "stream.c").write_text(STREAM.replace("TIMING", TIMING))
    stream = out / "stream"
    run(["gcc", "-O3", "-march=x86-64-v3", "-o", stream, out / "stream.c"])
    cc_version = run(["gcc", "--version"]).splitlines()[0]
    builds = {}
    for k in ks:
        d = out / f"k{k}"
        print(f"emitting and building K = {k} …", file=sys.stderr)
        run([strata, "emit-c", model, "--planes", str(k), "--target", "x86-64-v3",
             "--code-bits", args.code_bits, "--name", "model", "-o", d])
        (d / "bench.c").write_text(HARNESS.replace("TIMING", TIMING))
        exe = d / "bench"
        run(["gcc", "-std=c99", "-O3", "-march=x86-64-v3", "-o", exe, d / "model.c", d / "bench.c", "-lm"])
        wb = int((d / "model.h").read_text().split("#define MODEL_WEIGHT_BYTES ")[1].split()[0])
        builds[k] = (exe, wb)

    times = {k: [] for k in ks}
    streams = {k: [] for k in ks}
    for _ in range(args.rounds):
        for k, (exe, wb) in builds.items():
            times[k].append(float(run([exe, str(args.reps)]).split()[0]))
            streams[k].append(float(run([stream, str(wb), str(args.reps)]).split()[0]))
    med = {k: statistics.median(v) for k, v in times.items()}
    smed = {k: statistics.median(v) for k, v in streams.items()}
    ref = ks[0]
    print(f"\nGEMV {args.rows} x {args.cols}, batch 1, 1 thread, weights from memory, --code-bits {args.code_bits}; median of "
          f"{args.rounds} interleaved rounds of {args.reps} calls; {cc_version}\n")
    print(f"| K | weight bytes | µs/call | t(K)/t({ref}) | goal K/8 + 0.1 | stream µs (same bytes) | t(K)/stream |")
    print("|---|---|---|---|---|---|---|")
    for k in ks:
        _, wb = builds[k]
        print(f"| {k} | {wb:,} | {med[k]:.1f} | {med[k] / med[ref]:.2f} | {k / 8 + 0.1:.3f} "
              f"| {smed[k]:.1f} | {med[k] / smed[k]:.2f} |")


if __name__ == "__main__":
    main()
