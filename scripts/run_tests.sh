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
# The tests write about 8 GB of run folders (checkpoints of up to 176 MB, removed after each passing test;
# at most about 2 GB at a time). On a RAM disk that takes a tenth less time than on a virtual disk, so they
# go to TEST_TMPDIR, else to /dev/shm when it has 6 GB free, else to pytest's default (the system's temp).
# A run that passes leaves nothing behind; one with failed tests keeps their folders and says where.
parent="${TEST_TMPDIR:-}"
if [ -z "$parent" ] && [ -d /dev/shm ] && [ -w /dev/shm ] \
        && [ "$(df -Pk /dev/shm | awk 'NR == 2 {print $4}')" -ge $((6 * 1024 * 1024)) ]; then
    parent=/dev/shm
fi
basetemp=()
if [ -n "$parent" ]; then
    mkdir -p "$parent"
    folder="$(mktemp -d "$parent/deblur-devil-tests.XXXXXX")"
    basetemp=(--basetemp="$folder")
    trap 'rm -rf "$folder"' EXIT  # passed, interrupted or never started: nothing is left behind
fi
# One test at a time per worker (--maxschedchunk=1), slow ones first (tests/conftest.py): no worker sits idle
# while the other still has a queue of tests.
status=0
"$PYTHON" -m pytest -q -n "$workers" --maxschedchunk=1 --durations=15 "${basetemp[@]}" tests "$@" || status=$?
if [ -n "$parent" ] && [ "$status" -eq 1 ]; then  # pytest's exit status for failed tests
    trap - EXIT
    echo "==> The failed tests' temporary folders are in $folder (remove it when done)" >&2
fi
exit "$status"
