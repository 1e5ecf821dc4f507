#!/usr/bin/env bash
# Installs everything the test suite needs beyond the Rust toolchain, idempotently:
#   - Debian: mesa-vulkan-drivers (the llvmpipe software Vulkan adapter the WGSL tests run on)
#   - Python: a project-local virtual environment .venv with the pinned packages of
#     scripts/requirements-test.txt (the official MCAP reader, python-tuf, pytest, ...).
# Safe to run repeatedly; does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_pkgs=(mesa-vulkan-drivers)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${missing[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: WARNING: ${missing[*]} missing and not root: WGSL tests will report that no adapter exists" >&2
  fi
fi

req=scripts/requirements-test.txt
# Re-install when any requirements file changes (the top file includes the per-suite ones).
reqs=("$req" $(sed -n 's|^-r \.\./||p' "$req"))
stamp=.venv/.installed-$(cat "${reqs[@]}" | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "setup: creating .venv from ${reqs[*]}"
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip==24.3.1 >/dev/null
  .venv/bin/python -m pip install -q --disable-pip-version-check -r "$req"
  rm -f .venv/.installed-*
  touch "$stamp"
fi
echo "setup: test dependencies ready"
