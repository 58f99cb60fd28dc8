#!/usr/bin/env bash
# Strata's full test suite: installs the Debian tools the backend tests need
# (scripts/setup-system.sh), the pinned Python tooling and the ONNX node tests
# (scripts/setup-python.sh), then runs every Rust test in the workspace and a smoke run of
# every fuzz target (scripts/fuzz.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

if ! command -v cargo >/dev/null 2>&1; then
    echo "[test] error: cargo not found. Install Rust with rustup:" >&2
    echo "    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh" >&2
    echo "then open a new shell (or: source \"\$HOME/.cargo/env\") and re-run $0" >&2
    exit 1
fi

echo "[test] scripts/setup-system.sh"
scripts/setup-system.sh

echo "[test] scripts/setup-python.sh"
scripts/setup-python.sh

echo "[test] cargo test --workspace --all-targets $*"
cargo test --workspace --all-targets "$@"

echo "[test] scripts/fuzz.sh (smoke run of every fuzz target)"
scripts/fuzz.sh
