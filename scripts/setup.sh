#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian/Ubuntu machine and says what
# it did: redis-server (the tests start their own on free ports) and the
# rustfmt/clippy components. Safe to run again: it only installs what is
# missing.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
  echo "setup: $(redis-server --version | cut -d' ' -f1-3) found"
else
  echo "setup: redis-server is missing; installing Debian's redis-server package"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "setup: not root and no sudo: install redis-server yourself (apt-get install -y redis-server) or set REDIS_URL" >&2
      exit 1
    fi
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: no apt-get here: install Redis >= 6.2 yourself (for example 'brew install redis') or set REDIS_URL" >&2
    exit 1
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq redis-server >/dev/null
  echo "setup: installed $(redis-server --version | cut -d' ' -f1-3)"
fi

if command -v rustup >/dev/null 2>&1; then
  for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
      echo "setup: adding the ${component} component"
      rustup component add "${component}"
    fi
  done
fi
