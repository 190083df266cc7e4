#!/usr/bin/env bash
# Sourced by every launcher under scripts/: dataset and experiment folders, thread settings, the python
# to use, `wait-for-gpu` and `run_main`.
#
# Environment (all optional):
#   DATASETS_HOME     dataset roots: GOPRO_Large/, DeepVideoDeblurring_Dataset/ (default $HOME/Datasets)
#   EXPERIMENTS_HOME  run folders and prewarping_networks/pwcnet.ckpt (default $HOME/Experiments)
#   PYTHON            interpreter (default: $DEBLUR_DEVIL_VENV or the repository's .venv; setup_venv.sh
#                     creates it when missing)
#   FRAME_CACHE_DIR   uint8 copy of every decoded training frame (--training_dataset_cache_dir; default
#                     $EXPERIMENTS_HOME/frame_cache; the first epoch fills it, ~12 GB for GOPRO_Large's training
#                     frames; a node's local scratch is fastest; `none` turns it off)
#   GPU_WAIT_SECS     longest wait for our GPU to have no other compute process (default 3600; 0: no wait)
#   DRY_RUN=1         print the command line, check that it parses and warn about each missing dataset folder,
#                     prewarping network or checkpoint it names (scripts/dry_run.py); run nothing
# Extra arguments given to a launcher are appended to its command line (the last value of a flag wins).

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Site-specific environment manager of the original setup; ignored when not configured.
if [ -n "${MASON_DEFAULT_LOCATION:-}" ] && [ -f "$MASON_DEFAULT_LOCATION" ]; then
    # shellcheck disable=SC1090
    source "$MASON_DEFAULT_LOCATION"
    if [ -n "${MASON_DEV_ENVIRONMENT:-}" ] && command -v mason >/dev/null 2>&1; then
        mason load "$MASON_DEV_ENVIRONMENT"
    fi
fi

: "${DATASETS_HOME:=$HOME/Datasets}"
: "${EXPERIMENTS_HOME:=$HOME/Experiments}"
# Decoding 1280x720 PNGs would take 12-25 cores per GPU (bench/README.md); from the cache a worker supplies
# about 20 times more crops. Its entries are named by the frames' content, so a copied dataset reuses them.
: "${FRAME_CACHE_DIR:=$EXPERIMENTS_HOME/frame_cache}"
export DATASETS_HOME EXPERIMENTS_HOME FRAME_CACHE_DIR

if [ -z "${PYTHON:-}" ]; then
    # The project's virtual environment (DEBLUR_DEVIL_VENV, else the repository's .venv), created from
    # requirements.txt when missing, as for demo.sh: the system python lacks torch.
    source "$REPO_ROOT/scripts/setup_venv.sh"
fi

# One thread per process: the data-loader workers run in parallel already.
for variable in MKL_NUM_THREADS NUMEXPR_NUM_THREADS OMP_NUM_THREADS OPENBLAS_NUM_THREADS VECLIB_MAXIMUM_THREADS; do
    export "$variable=${!variable:-1}"
done

echo "python: $PYTHON"
echo "DATASETS_HOME: $DATASETS_HOME"
echo "EXPERIMENTS_HOME: $EXPERIMENTS_HOME"
echo "FRAME_CACHE_DIR: $FRAME_CACHE_DIR"

# Wait while another process computes on our GPU (the first of CUDA_VISIBLE_DEVICES), at most GPU_WAIT_SECS
# seconds (default 3600; 0 skips the wait), then start anyway: a process that never leaves (an MPS server, a
# monitoring agent, another container's job) must not hold a launcher forever. No-op without nvidia-smi.
wait-for-gpu() {
    command -v nvidia-smi >/dev/null 2>&1 || return 0
    local limit="${GPU_WAIT_SECS:-3600}"
    if ! [[ "$limit" =~ ^[0-9]+$ ]]; then
        echo "GPU_WAIT_SECS=$limit: expected a whole number of seconds (0 skips the wait)" >&2
        return 2
    fi
    [ "$limit" -eq 0 ] && return 0
    local device="${CUDA_VISIBLE_DEVICES:-0}"
    device="${device%%,*}"
    local pids waited=0 step
    pids="$(nvidia-smi -i "$device" --query-compute-apps=pid --format=csv,noheader 2>/dev/null | paste -sd, -)"
    [ -z "$pids" ] && return 0
    echo "$(date '+%Y-%m-%d %H:%M:%S') GPU $device is busy (compute processes: $pids): waiting up to ${limit}s" \
         "for it to be free (GPU_WAIT_SECS; 0 skips the wait)"
    while [ -n "$pids" ] && [ "$waited" -lt "$limit" ]; do
        step=$(( limit - waited < 60 ? limit - waited : 60 ))
        sleep "$step"
        waited=$(( waited + step ))
        pids="$(nvidia-smi -i "$device" --query-compute-apps=pid --format=csv,noheader 2>/dev/null | paste -sd, -)"
    done
    if [ -n "$pids" ]; then
        echo "$(date '+%Y-%m-%d %H:%M:%S') GPU $device still has compute processes ($pids) after ${waited}s:" \
             "starting anyway"
    else
        echo "$(date '+%Y-%m-%d %H:%M:%S') GPU $device is free after ${waited}s"
    fi
}

# run_main ARGS...: show the command line, then run main.py from the repository root (DRY_RUN=1: check only).
run_main() {
    echo "$PYTHON $REPO_ROOT/main.py \\"
    local argument
    for argument in "$@"; do
        printf '    %q \\\n' "$argument"
    done
    echo
    if [ "${DRY_RUN:-0}" = "1" ]; then
        (cd "$REPO_ROOT" && "$PYTHON" scripts/dry_run.py "$@")
        return
    fi
    wait-for-gpu || return
    cd "$REPO_ROOT" && exec "$PYTHON" main.py "$@"
}
