#!/usr/bin/env bash
# Runs the whole test suite (creating .venv from requirements.txt first if needed).
# Extra arguments go to pytest, e.g. `bash scripts/run_tests.sh -k checkpoints` (`-n 0`: in this process only).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup_venv.sh"
cd "$ROOT"
# Most of a test's time is single-threaded Python (imports, data loading, small tensors), so one pytest-xdist
# worker per CPU (at most 8) halves the suite on 2 cores. The workers fill the cores, so each computes with
# one thread unless OMP_NUM_THREADS says otherwise (CI runs the suite at 2 threads and at 1). Waiting
# passively keeps idle OpenMP threads from spinning against the other workers' (spinning doubles the time).
workers="${TEST_WORKERS:-$("$PYTHON" -c 'import os; print(min(8, len(os.sched_getaffinity(0))))')}"
if [ "$workers" -gt 1 ]; then
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
else
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
fi
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec "$PYTHON" -m pytest -q -n "$workers" --durations=15 tests "$@"
