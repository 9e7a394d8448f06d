#!/usr/bin/env bash
# Installs what ambient needs on a Debian machine (as root), then builds and installs `ambient`
# and its shell completions. Idempotent: packages already present are not reinstalled.
#
#   bash install.sh              # system packages + build + install the binary and completions
#   bash install.sh --deps-only  # system packages (and test tools) only
set -euo pipefail

cd "$(dirname "$0")"

deps_only=false
for arg in "$@"; do
  case "$arg" in
    --deps-only) deps_only=true ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

# What the mesh runs with: firewall tools for traffic redirection, iproute2 for namespaces and
# veths, the reference CNI plugins for `ambient local`, curl and python3 for the demo's pods,
# iperf3 and wrk for benchmarks (`cargo bench --bench mesh`), python3-venv for the manifest
# validator's venv (below).
packages=(iptables nftables iproute2 containernetworking-plugins curl python3 python3-venv iperf3 wrk ca-certificates git)

if [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (it installs Debian packages with apt-get)" >&2
  exit 1
fi

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "==> Debian packages already installed"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "install.sh: cargo not found. ambient needs Rust 1.89 or newer (edition 2024); install it with rustup and re-run." >&2
  exit 1
fi

# Test runner used by scripts/test.sh.
if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "==> installing cargo-nextest"
  cargo install cargo-nextest --locked
fi
for component in rustfmt clippy; do
  if ! cargo "${component/rustfmt/fmt}" --version >/dev/null 2>&1; then
    echo "==> adding rustup component $component"
    rustup component add "$component"
  fi
done

# The manifest validator (scripts/validate-manifests.py, run by the tests): kubernetes-validate and
# its dependencies, pinned in scripts/validator-requirements.txt, in a venv of Debian's python3.
# Skipped when the venv already holds exactly those pins.
validator_venv="${AMBIENT_VALIDATOR_VENV:-/opt/ambient-test/venv}"
validator_requirements=scripts/validator-requirements.txt
if [ -x "$validator_venv/bin/python3" ] \
  && cmp -s "$validator_requirements" "$validator_venv/ambient-requirements.txt" \
  && "$validator_venv/bin/python3" -c 'import kubernetes_validate, jsonschema, yaml' 2>/dev/null; then
  echo "==> manifest validator already installed in $validator_venv"
else
  echo "==> installing the manifest validator into $validator_venv"
  /usr/bin/python3 -m venv --clear "$validator_venv"
  "$validator_venv/bin/python3" -m pip install --quiet --disable-pip-version-check --no-input \
    --require-virtualenv -r "$validator_requirements"
  cp "$validator_requirements" "$validator_venv/ambient-requirements.txt"
fi

if $deps_only; then
  exit 0
fi

echo "==> building and installing ambient"
cargo install --path . --locked --force

bin_dir="${CARGO_HOME:-$HOME/.cargo}/bin"
echo "==> installing shell completions"
install -D -m 0644 completions/ambient.bash /usr/share/bash-completion/completions/ambient
install -D -m 0644 completions/_ambient /usr/share/zsh/vendor-completions/_ambient
install -D -m 0644 completions/ambient.fish /usr/share/fish/vendor_completions.d/ambient.fish

if ! command -v ambient >/dev/null 2>&1; then
  ln -sf "$bin_dir/ambient" /usr/local/bin/ambient
fi
echo "==> installed: $(ambient version)"
