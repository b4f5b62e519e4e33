#!/usr/bin/env bash
# Creates or updates the engine's virtual environment (batch/engine/.venv) and makes sure the toy
# model is in the model cache. Idempotent (python_env.sh): the install is skipped while the venv's
# stamp matches pyproject.toml, requirements.lock and the interpreter version.
#
# Environment: BAKEHOUSE_PYTHON picks the interpreter (default python3, 3.11 or newer);
# BAKEHOUSE_SKIP_TOY_MODEL=1 skips the toy-model build, for work that needs no model.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/python_env.sh"

# requirements.lock pins every transitive version; pyproject.toml pins the direct ones.
ensure_venv "$here/.venv" "the engine" "$here/pyproject.toml" "$here/requirements.lock" -- \
  --constraint "$here/requirements.lock" --editable "${here}[ml,dev]"

if [[ "${BAKEHOUSE_SKIP_TOY_MODEL:-}" != "1" ]]; then
  "$here/.venv/bin/python" -m bakehouse_engine toy-model build
fi
