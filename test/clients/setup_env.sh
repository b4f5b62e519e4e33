#!/usr/bin/env bash
# Creates or updates the Python environment of the official client SDKs the tests drive
# (test/clients/.venv: aibread, schemathesis, pinned in requirements.txt). Idempotent: the install
# is skipped while the stamp in the venv matches the hash of requirements.txt and the interpreter
# version, so running it before every `npm test` costs a second. pip's downloads are cached under
# ~/.cache/pip (or $PIP_CACHE_DIR).
#
# Environment: BAKEHOUSE_PYTHON picks the interpreter (default python3, 3.11 or newer).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
stamp="$venv/.bakehouse-env-hash"
python="${BAKEHOUSE_PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "test/clients/setup_env.sh: the client SDKs need Python 3.11 or newer; set BAKEHOUSE_PYTHON to one." >&2
  exit 1
fi

want="$( { cat "$here/requirements.txt"; "$python" --version; } | sha256sum | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"

if [[ "$want" != "$have" ]]; then
  echo "Installing the client SDKs' Python environment into $venv …"
  if [[ -x "$venv/bin/python" && "$("$venv/bin/python" --version)" != "$("$python" --version)" ]]; then
    rm -rf "$venv"  # made by another interpreter: start over rather than mix versions
  fi
  [[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check --quiet \
    --cache-dir "${PIP_CACHE_DIR:-$HOME/.cache/pip}" --requirement "$here/requirements.txt"
  echo "$want" > "$stamp"
fi
