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

# The benchmarks' smoke mode (without --bench): each bench exercises every code path briefly and
# checks its figures are sane, so the harness cannot rot. Needs root, like the tests above. Named
# benches only: `--benches` would also build and rerun the lib and bin unit tests.
echo "==> benchmark smoke runs"
cargo test --locked --bench mesh --bench controlplane --bench micro
