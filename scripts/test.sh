#!/usr/bin/env bash
# The whole test suite: the manifest validator, formatting, lints, then every test. `.ci/run` runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# The manifest validator the install tests use (`install.sh --deps-only` installs it): missing or
# broken, the run stops here, loudly, rather than letting tests skip.
echo "==> manifest validator"
validator_python="${AMBIENT_VALIDATOR_VENV:-/opt/ambient-test/venv}/bin/python3"
if ! "$validator_python" scripts/validate-manifests.py tests/fixtures/manifests/valid.yaml; then
  echo "test.sh: the manifest validator ($validator_python) does not work: run \`bash install.sh --deps-only\` (as root)" >&2
  exit 1
fi

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
