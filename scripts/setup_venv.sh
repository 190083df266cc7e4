#!/usr/bin/env bash
# Creates the project's virtual environment (.venv) from requirements.txt if it is missing or stale,
# then prints its python. Sourced by demo.sh and run_tests.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${DEBLUR_DEVIL_VENV:-$ROOT/.venv}"
STAMP="$VENV/.requirements.sha256"
WANTED="$(sha256sum "$ROOT/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "$WANTED" ]; then
    echo "==> Installing the virtual environment $VENV from requirements.txt (takes a few minutes once)" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet -r "$ROOT/requirements.txt" >&2
    echo "$WANTED" > "$STAMP"
fi
PYTHON="$VENV/bin/python"
