#!/usr/bin/env bash
# The whole test suite: formatting, lints, then every test. `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy"
cargo clippy --locked --all-targets -- -D warnings

echo "==> tests"
cargo nextest run --locked --all-targets --no-fail-fast
