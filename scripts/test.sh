#!/usr/bin/env bash
# Strata's full test suite: installs the Debian tools the backend tests need
# (scripts/setup-system.sh), the pinned Python tooling and the ONNX node tests
# (scripts/setup-python.sh), then runs every Rust test in the workspace and a smoke run of
# every fuzz target (scripts/fuzz.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

source scripts/require-cargo.sh test

echo "[test] scripts/setup-system.sh"
scripts/setup-system.sh

echo "[test] scripts/setup-python.sh"
scripts/setup-python.sh

echo "[test] cargo test --workspace --all-targets $*"
cargo test --workspace --all-targets "$@"

echo "[test] scripts/fuzz.sh (smoke run of every fuzz target)"
scripts/fuzz.sh
