#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian/Ubuntu machine and says what
# it did: redis-server (the tests start their own on free ports), promtool
# (Debian's prometheus package: the tests check /metrics with it), chromium
# (a test loads the simulator's live dashboard in it) and the rustfmt/clippy
# components. Safe to run again: it only installs what is
# missing.
set -euo pipefail

sudo=""
apt_updated=""

# need COMMAND PACKAGE WHAT: installs Debian's PACKAGE unless COMMAND is on PATH.
need() {
  local command="$1" package="$2" what="$3"
  if command -v "$command" >/dev/null 2>&1; then
    echo "setup: $command found"
    return
  fi
  echo "setup: $command ($what) is missing; installing Debian's $package package"
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "setup: not root and no sudo: install $package yourself (apt-get install -y $package)" >&2
      exit 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: no apt-get here: install $what yourself (the $package package of your system)" >&2
    exit 1
  fi
  if [ -z "$apt_updated" ]; then
    $sudo apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$package" >/dev/null
  command -v "$command" >/dev/null 2>&1 || {
    echo "setup: installed $package but $command is still not on PATH" >&2
    exit 1
  }
  echo "setup: installed $package ($command)"
}

need redis-server redis-server "Redis >= 6.2, or set REDIS_URL"
need promtool prometheus "Prometheus's promtool, which checks /metrics"
need chromium chromium "Chromium, in which a test loads the live dashboard"

if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
      echo "setup: adding the ${component} component"
      rustup component add "${component}"
    fi
  done
fi
