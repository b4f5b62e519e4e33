#!/usr/bin/env bash
# Creates or updates one environment per tinker SDK version the Tinker tests drive (loops-api.md
# §2.14: 0.38.0, the newest; 0.25.0, the first protobuf-only; 0.16.1, the last JSON-only), each
# pinned with all its dependencies in test/clients/tinker/<version>/requirements.txt. They live
# outside the tree, under $BAKEHOUSE_TINKER_ENVS (default ~/.cache/bakehouse/tinker-sdk)/<version>,
# so every checkout on a machine shares them; each is stamped like the other environments
# (batch/engine/python_env.sh) and reinstalled only when its pins or the interpreter change.
# pip's downloads are cached under ~/.cache/pip.
#
# Environment: BAKEHOUSE_PYTHON picks the interpreter (default python3, 3.11 or newer).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../../../batch/engine/python_env.sh"

envs="${BAKEHOUSE_TINKER_ENVS:-$HOME/.cache/bakehouse/tinker-sdk}"
for requirements in "$here"/*/requirements.txt; do
  version="$(basename "$(dirname "$requirements")")"
  ensure_venv "$envs/$version" "the tinker SDK $version" "$requirements" -- --requirement "$requirements"
done
