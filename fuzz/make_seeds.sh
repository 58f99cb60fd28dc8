#!/usr/bin/env bash
# Regenerates fuzz/seeds/<target>/: the test fixtures of each format, small ONNX models and
# .npy files from make_seeds.py, and .strata containers and IR text made from them with the
# strata CLI. The seeds are committed; run this after a format change. Needs the workspace's
# `.venv` (scripts/setup-python.sh) and builds the CLI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SEEDS="$ROOT/fuzz/seeds"
PY="$ROOT/.venv/bin/python"
cd "$ROOT"
cargo build -q -p strata-cli
STRATA="$ROOT/target/debug/strata"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

rm -rf "$SEEDS"
mkdir -p "$SEEDS"/{onnx_import,strata_reader,strata_structured,npy_reader,ir_text,qat_tables}
"$PY" fuzz/make_seeds.py

# Fixtures as they are (the large MNIST arrays and models would only slow the fuzzers).
cp tests/fixtures/bad_onnx/*.onnx tests/fixtures/dynamic/conv_hw.onnx "$SEEDS/onnx_import/"
cp tests/fixtures/mnist/labels.npy "$SEEDS/npy_reader/mnist_labels.npy"
cp tests/fixtures/dynamic/labels.npy "$SEEDS/npy_reader/dynamic_labels.npy"
cp tests/fixtures/dynamic/images_12x10.npy "$SEEDS/npy_reader/"
# QAT tables sidecars as numpy writes them (savez and savez_compressed).
cp tests/fixtures/qat_tables/tables.npz tests/fixtures/qat_tables/tables_compressed.npz "$SEEDS/qat_tables/"
# Filetests without their `test <mode>` header line: plain IR text.
for f in filetests/cases/*/*.sir; do
    grep -v '^test ' "$f" >"$SEEDS/ir_text/$(basename "$(dirname "$f")")_$(basename "$f")"
done
grep -v '^test ' filetests/cases/opt/vl_quantize.sir >"$WORK/tiny.sir"

# Containers: several bit widths, plane sets and layer kinds, stripped prefixes, metadata.
"$PY" - "$WORK" <<'EOF'
import sys
import numpy as np
r = np.random.default_rng(1)
for name, shape in (("x1x4x4", (32, 1, 4, 4)), ("x8", (32, 8))):
    np.save(f"{sys.argv[1]}/calib_{name}.npy", r.standard_normal(shape).astype(np.float32))
EOF
compile() { "$STRATA" compile "$1" --calib "$WORK/$2" -o "$SEEDS/strata_reader/$3.strata" "${@:4}" 2>/dev/null; }
compile "$WORK/tiny.sir" calib_x1x4x4.npy tiny_sir_b4 --bits 4 --planes 2,4
compile "$SEEDS/onnx_import/gen_gemm_relu.onnx" calib_x8.npy gemm_b3 --bits 3
compile "$SEEDS/onnx_import/gen_conv_pool_flatten.onnx" calib_x1x4x4.npy conv_b8 --planes 2,8
compile "$WORK/tiny.sir" calib_x1x4x4.npy tiny_sir_mixed \
    --planes 2,4,8 --budget-bytes 200
"$STRATA" strip "$SEEDS/strata_reader/conv_b8.strata" --planes 1 -o "$SEEDS/strata_reader/conv_b8_strip1.strata"
"$STRATA" strip "$SEEDS/strata_reader/gemm_b3.strata" --planes 2 -o "$SEEDS/strata_reader/gemm_b3_strip2.strata"
cp "$SEEDS"/strata_reader/*.strata "$SEEDS/strata_structured/"

# IR text: every generated ONNX seed and container printed in full, so it parses back.
for m in "$SEEDS"/onnx_import/gen_*.onnx "$SEEDS"/strata_reader/{tiny_sir_b4,gemm_b3}.strata; do
    base="$(basename "${m%.*}")"
    "$STRATA" opt "$m" --passes infer-shapes --elide-constants-over 0 -o "$SEEDS/ir_text/$base.sir"
done
echo "seeds: $(find "$SEEDS" -type f | wc -l) files in $SEEDS"
