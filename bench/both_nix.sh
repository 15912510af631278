#!/usr/bin/env bash
# The benchmarks on both nix versions in one run: here (Debian 12: nix 2.8) and in a fresh
# Debian 13 root (nix 2.26, .ci/fresh-root), one summary table each. Run as root after
# `bash .ci/setup`, on a machine nobody else is loading:
#   bash bench/both_nix.sh
set -euo pipefail
cd "$(dirname "$0")/.."
echo "===== this machine: $(nix --version) ====="
.venv/bin/python bench/run_all.py
echo "===== a fresh Debian 13 root ====="
bash .ci/fresh-root trixie --command 'bash .ci/setup >/dev/null && .venv/bin/python bench/run_all.py'
