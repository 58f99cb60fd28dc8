#!/usr/bin/env bash
# Strata's main job on a real network: builds the release CLI, inspects the MNIST CNN, runs
# it on the 500 committed test images (FP32 top-1), compiles it into one vertically layered
# .strata file calibrated on 256 bundled training images, evaluates every plane count beside
# the baselines, cuts a 4-plane model out of the file as a plain byte prefix, picks the plane
# count that fits a 200 KiB flash, emits C for K = 4, and compiles the same file through the
# MLIR backend: every plane count through the JIT, and a native object for K = 4 (LLVM/MLIR 22
# is installed first: scripts/setup-system.sh --mlir).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

source scripts/require-cargo.sh demo

run() {
    echo "[demo] $*"
    "$@"
}

run scripts/setup-system.sh --mlir
export MLIR_SYS_220_PREFIX="${MLIR_SYS_220_PREFIX:-/usr/lib/llvm-22}"
export TABLEGEN_220_PREFIX="${TABLEGEN_220_PREFIX:-/usr/lib/llvm-22}"
run cargo build --release -p strata-cli --bin strata --features mlir
STRATA="$ROOT/target/release/strata"

run "$STRATA" inspect models/mnist_cnn.onnx
run "$STRATA" run models/mnist_cnn.onnx \
    --input tests/fixtures/mnist/images.npy \
    --labels tests/fixtures/mnist/labels.npy \
    --out target/demo
run "$STRATA" compile models/mnist_cnn.onnx \
    --calib tests/fixtures/mnist/calib.npy \
    -o target/demo/mnist_cnn.strata
run "$STRATA" eval target/demo/mnist_cnn.strata \
    --data tests/fixtures/mnist/images.npy \
    --labels tests/fixtures/mnist/labels.npy \
    --baselines --plot target/demo/accuracy.svg
run "$STRATA" strip target/demo/mnist_cnn.strata --planes 4 -o target/demo/mnist_cnn.4.strata
run "$STRATA" run target/demo/mnist_cnn.4.strata \
    --input tests/fixtures/mnist/images.npy \
    --labels tests/fixtures/mnist/labels.npy \
    --out target/demo/k4
run "$STRATA" manifest target/demo/mnist_cnn.strata --target armv7m --fit-flash 200K
run "$STRATA" emit-c target/demo/mnist_cnn.strata --planes 4 --target x86-64-v3 \
    --name mnist_cnn -o target/demo/c
run "$STRATA" eval target/demo/mnist_cnn.strata --backend mlir \
    --data tests/fixtures/mnist/images.npy \
    --labels tests/fixtures/mnist/labels.npy
run "$STRATA" build target/demo/mnist_cnn.strata --backend mlir --planes 4 \
    --name mnist_cnn -o target/demo/mlir
echo "[demo] outputs, the .strata files, accuracy.svg, the emitted C and the MLIR object are in target/demo/"
