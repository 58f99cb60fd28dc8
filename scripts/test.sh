#!/usr/bin/env bash
# Strata's full test suite: installs the Debian tools the backend tests need
# (scripts/setup-system.sh, LLVM/MLIR 22 included), the pinned Python tooling and the ONNX node tests
# (scripts/setup-python.sh) and the PyTorch environment of python/strata_torch
# (scripts/setup-torch.sh, kept outside the clone), then runs every Rust test in the
# workspace, the strata_torch tests and a smoke run of every fuzz target (scripts/fuzz.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

source scripts/require-cargo.sh test

echo "[test] scripts/setup-system.sh"
scripts/setup-system.sh

echo "[test] scripts/setup-python.sh"
scripts/setup-python.sh

# The MLIR backend (strata-backend-mlir, and the CLI's `mlir` feature) links the LLVM/MLIR 22
# that setup-system.sh installed.
export MLIR_SYS_220_PREFIX="${MLIR_SYS_220_PREFIX:-/usr/lib/llvm-22}"
export TABLEGEN_220_PREFIX="${TABLEGEN_220_PREFIX:-/usr/lib/llvm-22}"
echo "[test] cargo test --workspace --all-targets --features strata-cli/mlir,strata-example-build-rs/mlir $*"
cargo test --workspace --all-targets --features strata-cli/mlir,strata-example-build-rs/mlir "$@"

echo "[test] scripts/setup-torch.sh"
TORCH_PYTHON="$(scripts/setup-torch.sh)"

echo "[test] python/strata_torch tests (with $TORCH_PYTHON)"
(cd python/strata_torch/tests && PYTHONDONTWRITEBYTECODE=1 "$TORCH_PYTHON" -W ignore -m unittest -v)

echo "[test] scripts/fuzz.sh (smoke run of every fuzz target)"
scripts/fuzz.sh
