#!/usr/bin/env bash
# Installs what the browser tests need, and nothing that is already there:
# Debian's Chromium (never a downloaded browser build), the openssl CLI, and the pinned npm
# packages of tests/browser (playwright-core drives the system Chromium).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
chromium_bin="${CHROMIUM_BIN:-/usr/bin/chromium}"

# The TLS tests (browser and interop) make their certificates with the openssl CLI.
missing=()
[ -x "$chromium_bin" ] || missing+=(chromium fonts-dejavu-core)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)

if [ "${#missing[@]}" -gt 0 ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-browser-deps: $chromium_bin is missing and apt-get is not available" >&2
    exit 1
  fi
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo_cmd="sudo"
  fi
  echo "install-browser-deps: installing Debian's ${missing[*]}"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "install-browser-deps: node and npm are required (Debian: apt-get install nodejs npm)" >&2
  exit 1
fi

browser_tests="$repo_root/tests/browser"
if [ ! -d "$browser_tests/node_modules/playwright-core" ]; then
  echo "install-browser-deps: npm ci in tests/browser"
  (cd "$browser_tests" && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "install-browser-deps: ready ($("$chromium_bin" --version 2>/dev/null || echo chromium))"
