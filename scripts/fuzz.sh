#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ (cargo-fuzz, libFuzzer) for SECONDS each, all at once in
# the background, each from its committed seeds (fuzz/seeds/TARGET) plus its growing corpus
# (fuzz/corpus/TARGET). A crash, a run over 10 s or over 2 GiB is a finding: libFuzzer saves
# the input under fuzz/artifacts/TARGET/ and this script fails, naming it.
#
#   scripts/fuzz.sh            # smoke run: 5 s per target (scripts/test.sh runs this)
#   scripts/fuzz.sh 1800       # long run: 30 minutes per target, logs in fuzz/logs/
#
# Only a stable toolchain is needed: cargo-fuzz's nightly-only flags (sanitizer, coverage)
# are enabled with RUSTC_BOOTSTRAP=1. Targets are built with AddressSanitizer, debug
# assertions and overflow checks. Where fuzzing cannot run (cargo-fuzz cannot be installed,
# an OS/architecture libFuzzer does not support) the script says why and exits 0.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS_PER_TARGET="${1:-5}"
say() { echo "[fuzz] $*"; }

case "$(uname -s)/$(uname -m)" in
    Linux/x86_64 | Linux/aarch64 | Darwin/x86_64 | Darwin/arm64) ;;
    *)
        say "skipped: libFuzzer does not support $(uname -s)/$(uname -m)"
        exit 0
        ;;
esac
if ! cargo fuzz --version >/dev/null 2>&1; then
    say "cargo-fuzz not found: cargo install cargo-fuzz --locked"
    if ! cargo install cargo-fuzz --locked; then
        say "skipped: cargo-fuzz could not be installed (offline?); install it and re-run $0"
        exit 0
    fi
fi
if ! rustc --version | grep -q nightly; then
    export RUSTC_BOOTSTRAP=1
fi

cd "$ROOT/fuzz"
build_started=$(date +%s)
say "cargo fuzz build (AddressSanitizer, debug assertions)"
cargo fuzz build
say "built in $(($(date +%s) - build_started)) s"

# The binaries are run directly (not through `cargo fuzz run`), so editing the sources while
# a long run is going does not rebuild them under it.
bin="target/$(rustc -vV | sed -n 's/^host: //p')/release"
mkdir -p logs
targets=$(cargo fuzz list)
pids=()
for t in $targets; do
    mkdir -p "corpus/$t" "artifacts/$t"
    # -timeout: one input over 10 s is a hang; -rss_limit_mb also caps single mallocs (ASan).
    nice -n 19 "$bin/$t" "corpus/$t" "seeds/$t" -artifact_prefix="artifacts/$t/" \
        -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"logs/$t.log" 2>&1 &
    pids+=("$!")
done

failed=0
i=0
for t in $targets; do
    status=0
    wait "${pids[$i]}" || status=$?
    i=$((i + 1))
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' || true)
    if [ "$status" -ne 0 ]; then
        failed=1
        say "$t: FAILED after ${execs:-?} executions; input: $(grep -o 'artifacts/[^ ]*' "logs/$t.log" | tail -1 || true) (log: fuzz/logs/$t.log)"
    else
        say "$t: ${execs:-?} executions, no findings"
    fi
done
exit "$failed"
