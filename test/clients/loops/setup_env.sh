#!/usr/bin/env bash
# Creates or updates the environment of the official Loops SDK (test/clients/loops/.venv:
# baseten-loops 0.32.0, pinned with all its dependencies in requirements.txt). Idempotent and
# stamped like the other environments (batch/engine/python_env.sh); pip's downloads are cached,
# per package version, under ~/.cache/pip, so a fresh clone installs without downloading again.
#
# baseten-loops needs Python 3.12 or newer, which is often not the default python3. The first of
# these that is 3.12 or newer is used: $BAKEHOUSE_LOOPS_PYTHON; python3, python3.12, python3.13,
# python3.14 on PATH; the oldest 3.12+ CPython under `pyenv root`/versions (requirements.txt was
# frozen on 3.12, the version most likely to have every pinned wheel).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../../../batch/engine/python_env.sh"

is_312_or_newer() {
  "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1
}

find_python() {
  if [[ -n "${BAKEHOUSE_LOOPS_PYTHON:-}" ]]; then
    if is_312_or_newer "$BAKEHOUSE_LOOPS_PYTHON"; then echo "$BAKEHOUSE_LOOPS_PYTHON"; return 0; fi
    echo "BAKEHOUSE_LOOPS_PYTHON=$BAKEHOUSE_LOOPS_PYTHON is not a Python 3.12 or newer." >&2
    return 1
  fi
  local candidate
  # pyenv's shims are on PATH even for versions it has not activated, and fail when run, so every
  # candidate is tried rather than looked up.
  for candidate in python3 python3.12 python3.13 python3.14; do
    if is_312_or_newer "$candidate"; then command -v "$candidate"; return 0; fi
  done
  local pyenv_root
  pyenv_root="$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
  while read -r candidate; do
    if is_312_or_newer "$candidate"; then echo "$candidate"; return 0; fi
  done < <(ls -d "$pyenv_root"/versions/3.* 2>/dev/null | grep -E '/3\.[0-9]+\.[0-9]+$' | sort -V | sed 's|$|/bin/python|')
  cat >&2 <<EOF
The Loops SDK tests need Python 3.12 or newer (baseten-loops 0.32.0 requires it), and none was
found: not python3, python3.12, python3.13 or python3.14 on PATH, nor under $pyenv_root/versions.
Install one, e.g. \`pyenv install 3.12\` or \`apt-get install python3.12 python3.12-venv\`, or point
BAKEHOUSE_LOOPS_PYTHON at one, then run \`npm run setup\` again.
EOF
  return 1
}

python="$(find_python)"
BAKEHOUSE_PYTHON="$python" ensure_venv "$here/.venv" "the Loops SDK" "$here/requirements.txt" -- \
  --requirement "$here/requirements.txt"
