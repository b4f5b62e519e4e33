#!/usr/bin/env bash
# The web console's browser test (test/e2e/console.test.ts) and benchmark drive Debian's
# `chromium` with playwright-core, which downloads no browser of its own. Installs it with apt
# when it is missing; a machine without apt needs a Chromium on PATH or CHROMIUM_PATH.
set -euo pipefail

if [[ -n "${CHROMIUM_PATH:-}" ]] || command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "Chromium is missing and there is no apt-get to install it: install Chromium and put it on PATH (or set CHROMIUM_PATH)." >&2
  exit 1
fi
as_root=()
if [[ "$(id -u)" != 0 ]]; then
  if ! command -v sudo >/dev/null 2>&1; then
    echo "Chromium is missing: install it as root with \`apt-get install -y chromium\`, or set CHROMIUM_PATH." >&2
    exit 1
  fi
  as_root=(sudo)
fi
echo "Installing Chromium for the console's browser test (apt-get install chromium)…"
"${as_root[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends chromium
