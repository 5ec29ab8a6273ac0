#!/usr/bin/env bash
# The test command of the README: sets up a fresh machine, then runs exactly
# what CI runs (and what `just ci` runs).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
echo "== cargo fmt --all --check"
cargo fmt --all --check
echo "== cargo clippy --workspace --all-targets --locked -- -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings
# The libraries and binaries alone: the bus as users build it, without the
# test-only fault code the simulator's tests switch on.
echo "== cargo clippy --workspace --lib --bins --locked -- -D warnings"
cargo clippy --workspace --lib --bins --locked -- -D warnings
echo "== cargo test --workspace --locked"
cargo test --workspace --locked
