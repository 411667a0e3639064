#!/usr/bin/env bash
# The test suite's one set-up step (scripts/test runs it first; safe to run again): installs the
# Debian packages the packaging tests need when they are missing (systemd, for
# `systemd-analyze verify`), then starts PostgreSQL and Redis (scripts/services.sh). Tests
# themselves never install anything: a tool still missing after this is a clear failure there.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
if ((${#missing[@]})); then
  echo "setup: installing Debian package(s): ${missing[*]}"
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: apt-get is not available; install ${missing[*]} by hand" >&2
    exit 1
  fi
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo=sudo
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || {
    $sudo apt-get update >/dev/null
    $sudo apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null
  }
fi

bash scripts/services.sh
