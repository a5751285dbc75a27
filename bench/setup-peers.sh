#!/usr/bin/env bash
# Creates the throwaway virtualenv with the peer libraries used by bench/*.py,
# OUTSIDE the repository (never a project dependency).
# Usage: bench/setup-peers.sh [more packages, e.g. implicit threadpoolctl]
# (AISLE_PEER_VENV overrides the location)
set -euo pipefail
venv="${AISLE_PEER_VENV:-${TMPDIR:-/tmp}/aisle-peers}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check pandas "$@"
echo "$venv"
