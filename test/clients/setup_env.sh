#!/usr/bin/env bash
# Creates or updates the Python environment of the official client SDKs the tests drive
# (test/clients/.venv: aibread, schemathesis, pinned in requirements.txt). Idempotent, like the
# engine's (batch/engine/python_env.sh); pip's downloads are cached under ~/.cache/pip.
#
# Environment: BAKEHOUSE_PYTHON picks the interpreter (default python3, 3.11 or newer).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../../batch/engine/python_env.sh"

ensure_venv "$here/.venv" "the client SDKs" "$here/requirements.txt" -- --requirement "$here/requirements.txt"
