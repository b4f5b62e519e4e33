# Sourced by the setup scripts of the project's Python environments (the engine's, the test
# clients'). ensure_venv VENV LABEL FILE… -- PIP_INSTALL_ARGS… creates or updates VENV with
# `pip install PIP_INSTALL_ARGS`, skipping the install while the stamp in VENV matches the hash of
# the FILEs and the interpreter version, so running it before every `npm start` / `npm test` costs
# a second. BAKEHOUSE_PYTHON picks the interpreter (default python3, 3.11 or newer).

ensure_venv() {
  local venv="$1" label="$2"
  shift 2
  local inputs=()
  while [[ "$1" != "--" ]]; do inputs+=("$1"); shift; done
  shift
  local python="${BAKEHOUSE_PYTHON:-python3}" stamp="$venv/.bakehouse-env-hash"

  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "$label needs Python 3.11 or newer; set BAKEHOUSE_PYTHON to one." >&2
    return 1
  fi

  local want have
  want="$( { cat "${inputs[@]}"; "$python" --version; } | sha256sum | cut -d' ' -f1)"
  have="$(cat "$stamp" 2>/dev/null || true)"
  [[ "$want" == "$have" ]] && return 0

  echo "Installing the Python environment of $label into $venv …"
  if [[ -x "$venv/bin/python" && "$("$venv/bin/python" --version)" != "$("$python" --version)" ]]; then
    rm -rf "$venv"  # made by another interpreter: start over rather than mix versions
  fi
  [[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --disable-pip-version-check --quiet \
    --cache-dir "${PIP_CACHE_DIR:-$HOME/.cache/pip}" "$@"
  echo "$want" > "$stamp"
}
