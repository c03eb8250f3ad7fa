#!/usr/bin/env bash
# Installs what the interop tests (tests/interop) need, and nothing that is already there:
# the browser tests' set-up (Debian's Chromium, tests/browser's playwright-core, whose harness
# the interop tests reuse), the pinned npm packages of tests/interop (official Connect and
# gRPC-Web clients, the buf CLI, esbuild), and a Python venv with the pinned grpcio stack
# (target/interop-venv, or $INTEROP_VENV). Quiet unless something is installed; safe to rerun.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
interop="$repo_root/tests/interop"
venv="${INTEROP_VENV:-$repo_root/target/interop-venv}"
requirements="$interop/python/requirements.txt"

bash "$repo_root/scripts/install-browser-deps.sh" >/dev/null

# npm ci when node_modules is missing or older than the lock file.
stamp="$interop/node_modules/.interop-lock"
if [ ! -f "$stamp" ] || ! cmp -s "$interop/package-lock.json" "$stamp"; then
  echo "install-interop-deps: npm ci in tests/interop"
  (cd "$interop" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$interop/package-lock.json" "$stamp"
fi

# The venv, rebuilt when requirements.txt changed.
python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
  echo "install-interop-deps: $python is required (Debian: apt-get install python3 python3-venv)" >&2
  exit 1
fi
venv_stamp="$venv/.interop-requirements"
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$requirements" "$venv_stamp"; then
  echo "install-interop-deps: Python venv at $venv"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$requirements"
  cp "$requirements" "$venv_stamp"
fi

echo "install-interop-deps: ready (node $(node --version), $("$venv/bin/python" -c 'import grpc; print("grpcio", grpc.__version__)'))"
