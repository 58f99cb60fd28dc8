#!/usr/bin/env bash
# Installs the Debian packages the test suite needs beyond a Rust toolchain: clang and the
# cross toolchains + qemu-user that check the emitted C on aarch64, armhf and riscv64, cmake
# for the CMake example, and LLVM/MLIR 22 for the MLIR backend (Debian 12 carries 22.1.8 in
# bookworm-security; only LLVM/MLIR packages are added and zstd/libxml2 move within Debian
# 12). Idempotent: does nothing when every tool and package is already there.
#
#   scripts/setup-system.sh          everything the test suite needs
#   scripts/setup-system.sh --mlir   only LLVM/MLIR 22 (what scripts/demo.sh needs)
set -euo pipefail

ONLY_MLIR=0
case "${1-}" in
    "") ;;
    --mlir) ONLY_MLIR=1 ;;
    *) echo "usage: $0 [--mlir]" >&2; exit 2 ;;
esac

log() { echo "[setup-system] $*"; }

# tool on PATH -> Debian package that provides it
TOOLS=(
    "clang:clang"
    "cmake:cmake"
    "aarch64-linux-gnu-gcc:gcc-aarch64-linux-gnu"
    "arm-linux-gnueabihf-gcc:gcc-arm-linux-gnueabihf"
    "riscv64-linux-gnu-gcc:gcc-riscv64-linux-gnu"
    "qemu-aarch64:qemu-user"
    "qemu-arm:qemu-user"
    "qemu-riscv64:qemu-user"
)

# Libraries without a tool on PATH, checked with dpkg: what `melior` 0.27 (mlir-sys 220,
# tblgen) links. Without libpolly-22-dev tblgen fails with "could not find native static
# library Polly".
PACKAGES=(
    llvm-22-dev
    libmlir-22-dev
    mlir-22-tools
    libpolly-22-dev
    libzstd-dev
    libz3-dev
    libxml2-dev
)
if [ "$ONLY_MLIR" = 1 ]; then
    TOOLS=()
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
for entry in ${TOOLS[@]+"${TOOLS[@]}"}; do
    tool="${entry%%:*}"
    pkg="${entry#*:}"
    if ! command -v "$tool" >/dev/null 2>&1; then
        case " ${missing[*]-} " in *" $pkg "*) ;; *) missing+=("$pkg") ;; esac
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    if [ "$ONLY_MLIR" = 1 ]; then
        log "up to date (LLVM/MLIR 22)"
    else
        log "up to date (clang, cmake, cross gcc for aarch64/armhf/riscv64, qemu-user, LLVM/MLIR 22)"
    fi
    exit 0
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    log "installing with apt-get: ${missing[*]}"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
else
    log "error: missing tools. Install them with:" >&2
    log "    sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
