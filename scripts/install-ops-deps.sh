#!/usr/bin/env bash
# Installs what the operations tests need, and nothing that is already there: Debian's
# Prometheus server, which the dashboard test (crates/octaneweb/tests/observability.rs) starts
# on a loopback port to run every query of docs/grafana/octaneweb.json against a live gateway.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-ops-deps: prometheus is missing and apt-get is not available" >&2
  exit 1
fi
sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then
  sudo_cmd="sudo"
fi
echo "install-ops-deps: installing Debian's prometheus"
$sudo_cmd apt-get update -qq
# The package's post-install script starts a system service where there is an init system;
# policy-rc.d keeps it from running one (the tests start their own, on a free port).
policy=/usr/sbin/policy-rc.d
created_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $sudo_cmd tee "$policy" >/dev/null
  $sudo_cmd chmod +x "$policy"
  created_policy=1
fi
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
  prometheus >/dev/null
if [ -n "$created_policy" ]; then
  $sudo_cmd rm -f "$policy"
fi
