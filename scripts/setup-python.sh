#!/usr/bin/env bash
# Creates the pinned Python environment (.venv) that Strata's tests need and exposes the
# official ONNX backend node tests under .cache/onnx-node-tests. Idempotent: a marker file
# holding the requirements hash makes a second run a no-op.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

REQ="$ROOT/requirements.txt"
VENV="$ROOT/.venv"
CACHE="$ROOT/.cache"
NODE_TESTS="$CACHE/onnx-node-tests"
MARKER="$VENV/.strata-requirements.sha256"
PYTHON="${PYTHON:-python3}"

log() { echo "[setup-python] $*"; }

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    if [ "$PYTHON" = "python3" ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
        log "python3 not found; installing python3 and python3-venv with apt-get"
        apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3 python3-venv
    else
        log "error: $PYTHON not found. Install it, e.g.: sudo apt-get install -y python3 python3-venv" >&2
        exit 1
    fi
fi

want_hash="$(sha256sum "$REQ" | cut -d' ' -f1)"

node_tests_ok() {
    [ -d "$NODE_TESTS" ] && [ -f "$NODE_TESTS/test_abs/model.onnx" ]
}

if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$want_hash" ] && [ -x "$VENV/bin/python" ] && node_tests_ok; then
    log "up to date (.venv matches requirements.txt, node tests in .cache/onnx-node-tests)"
    exit 0
fi

# 1. The virtual environment.
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
    log "creating virtual environment in .venv"
    rm -rf "$VENV"
    venv_err="$(mktemp)"
    trap 'rm -f "$venv_err"' EXIT
    if ! "$PYTHON" -m venv "$VENV" 2>"$venv_err"; then
        rm -rf "$VENV"
        if grep -qiE 'ensurepip|venv' "$venv_err"; then
            pyver="$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
            if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
                log "python3 -m venv needs the Debian package python3-venv; installing it"
                apt-get update -q
                DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv "python${pyver}-venv" \
                    || DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3-venv
                "$PYTHON" -m venv "$VENV"
            else
                cat "$venv_err" >&2
                log "error: python3 -m venv is unavailable. Run:" >&2
                log "    sudo apt-get install -y python3-venv" >&2
                log "then re-run $0" >&2
                exit 1
            fi
        else
            cat "$venv_err" >&2
            exit 1
        fi
    fi
fi

# 2. The pinned packages.
if [ ! -f "$MARKER" ] || [ "$(cat "$MARKER")" != "$want_hash" ]; then
    log "installing pinned packages from requirements.txt"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQ"
    echo "$want_hash" >"$MARKER"
fi

# 3. The ONNX backend node tests, shipped inside the onnx wheel.
src="$("$VENV/bin/python" - <<'PY'
import os, onnx.backend.test
print(os.path.join(os.path.dirname(onnx.backend.test.__file__), "data", "node"))
PY
)"
if [ ! -d "$src" ]; then
    log "error: $src not found; the installed onnx does not ship the node tests (need onnx==1.22.0)" >&2
    exit 1
fi
log "copying ONNX node tests to .cache/onnx-node-tests"
mkdir -p "$CACHE"
rm -rf "$NODE_TESTS.tmp" "$NODE_TESTS"
cp -r "$src" "$NODE_TESTS.tmp"
mv "$NODE_TESTS.tmp" "$NODE_TESTS"
log "done: $(find "$NODE_TESTS" -mindepth 1 -maxdepth 1 -type d | wc -l) node tests"
