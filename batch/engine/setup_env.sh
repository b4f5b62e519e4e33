#!/usr/bin/env bash
# Creates or updates the engine's virtual environment (batch/engine/.venv) and makes sure the toy
# model is in the model cache. Idempotent: the install is skipped while the stamp in the venv
# matches the hash of pyproject.toml, requirements.lock and the interpreter version, so running it
# before every `npm start` / `npm test` costs a second.
#
# Environment: BAKEHOUSE_PYTHON picks the interpreter (default python3, 3.11 or newer);
# BAKEHOUSE_SKIP_TOY_MODEL=1 skips the toy-model build, for work that needs no model.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv"
stamp="$venv/.bakehouse-env-hash"
python="${BAKEHOUSE_PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "setup_env.sh: the engine needs Python 3.11 or newer; set BAKEHOUSE_PYTHON to one." >&2
  exit 1
fi

want="$( { cat "$here/pyproject.toml" "$here/requirements.lock"; "$python" --version; } | sha256sum | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"

if [[ "$want" != "$have" ]]; then
  echo "Installing the engine's Python environment into $venv …"
  if [[ -x "$venv/bin/python" && "$("$venv/bin/python" --version)" != "$("$python" --version)" ]]; then
    rm -rf "$venv"  # made by another interpreter: start over rather than mix versions
  fi
  [[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
  # requirements.lock pins every transitive version; pyproject.toml pins the direct ones.
  "$venv/bin/python" -m pip install --disable-pip-version-check --quiet \
    --constraint "$here/requirements.lock" --editable "${here}[ml,dev]"
  echo "$want" > "$stamp"
fi

if [[ "${BAKEHOUSE_SKIP_TOY_MODEL:-}" != "1" ]]; then
  "$venv/bin/python" -m bakehouse_engine toy-model build
fi
