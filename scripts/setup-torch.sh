#!/usr/bin/env bash
# Creates the PyTorch environment that python/strata_torch's tests and the once-QAT example
# need, OUTSIDE the clone (it is ~5.6 GB: torch from PyPI is the CUDA build, which runs on the
# CPU too): $STRATA_TORCH_VENV, default ~/.cache/strata/torch-venv. Installs only what is
# missing, so every clone on a machine shares it and a second run is a no-op. Prints the
# venv's python on its last line.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQ="$ROOT/requirements-torch.txt"
VENV="${STRATA_TORCH_VENV:-$HOME/.cache/strata/torch-venv}"
MARKER="$VENV/.strata-requirements.sha256"
PYTHON="${PYTHON:-python3}"

log() { echo "[setup-torch] $*" >&2; }

want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
    log "up to date ($VENV)"
    echo "$VENV/bin/python"
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    log "creating $VENV"
    mkdir -p "$(dirname "$VENV")"
    # scripts/setup-python.sh has already made sure python3 -m venv works.
    "$PYTHON" -m venv "$VENV"
fi
log "installing requirements-torch.txt into $VENV (first time: ~5.6 GB, several minutes)"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir -r "$REQ"
echo "$want" >"$MARKER"
log "done"
echo "$VENV/bin/python"
