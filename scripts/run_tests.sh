#!/usr/bin/env bash
# Runs the whole test suite (creating .venv from requirements.txt first if needed).
# Extra arguments go to pytest, e.g. `bash scripts/run_tests.sh -k checkpoints`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup_venv.sh"
cd "$ROOT"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
exec "$PYTHON" -m pytest -q --durations=15 tests "$@"
