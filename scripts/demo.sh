#!/usr/bin/env bash
# Strata's main job on a real network: builds the release CLI, inspects the MNIST CNN and
# runs it on the 500 committed test images, printing top-1 accuracy.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! command -v cargo >/dev/null 2>&1; then
    echo "[demo] error: cargo not found. Install Rust with rustup:" >&2
    echo "    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh" >&2
    echo "then open a new shell (or: source \"\$HOME/.cargo/env\") and re-run $0" >&2
    exit 1
fi

run() {
    echo "[demo] $*"
    "$@"
}

run cargo build --release -p strata-compiler --bin strata
STRATA="$ROOT/target/release/strata"

run "$STRATA" inspect models/mnist_cnn.onnx
run "$STRATA" run models/mnist_cnn.onnx \
    --input tests/fixtures/mnist/images.npy \
    --labels tests/fixtures/mnist/labels.npy \
    --out target/demo
echo "[demo] outputs written to target/demo/"
