# Sourced by the top-level scripts: stops with how to install Rust when cargo is missing.
# Usage: source scripts/require-cargo.sh TAG   (TAG prefixes the message, e.g. "demo")
if ! command -v cargo >/dev/null 2>&1; then
    echo "[$1] error: cargo not found. Install Rust with rustup:" >&2
    echo "    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh" >&2
    echo "then open a new shell (or: source \"\$HOME/.cargo/env\") and re-run $0" >&2
    exit 1
fi
