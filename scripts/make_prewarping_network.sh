#!/usr/bin/env bash
# Trains a PWC-Net prewarping network for FlowDBN from scratch on generated flow data and writes it
# in the original's prewarping format ({"state_dict": {"model.pwcnet_impl.*": ...}}), for when the
# released prewarping networks are not available:
#
#   bash scripts/make_prewarping_network.sh "$EXPERIMENTS_HOME/prewarping_networks/pwcnet.ckpt"
#   python main.py --model=FlowDBN --model_pretrained_pwcnet=<that file> ...
#
# 1. python -m tools.synthetic_flow writes FlyingChairs-layout pairs (real photographs moved by
#    known affine motions, exact flow) into a temporary folder;
# 2. main.py trains --model=PWCNet with --loss=MultiScaleEPE on them (--model_div_flow=0.05, the value
#    FlowDBN builds its flow network with, so the inter-level warping is trained at the scale it is
#    used at);
# 3. scripts/prewarping_network.py exports the weights, loads the file exactly as FlowDBN does, and
#    prints its end-point error on held-out generated pairs next to the error of zero flow.
#
# The defaults take about 2-3 minutes on a 2-core CPU (a GPU is used when available). That gives a
# working file, not a good flow network: expect an EPE near the zero-flow EPE. Train longer for
# useful prewarping (e.g. PREWARPING_EPOCHS=100 PREWARPING_PAIRS=2000), or use the released networks.
#
# Environment (optional): PREWARPING_EPOCHS (4), PREWARPING_PAIRS (160 generated pairs, every 5th held
# out), PREWARPING_SIZE (64, square frames), PREWARPING_BATCH (4), PREWARPING_LR (0.0005),
# PREWARPING_WORK (keep data and run folder there instead of a temporary folder), PYTHON.
# Extra arguments are appended to the main.py command line (e.g. --training_augmentation=RandomAffineFlow).
set -euo pipefail

if [ $# -lt 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    [ $# -lt 1 ] && { echo "error: give the checkpoint file to write as first argument" >&2; exit 2; }
    exit 0
fi
OUTPUT="$1"
shift

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The project's virtual environment (DEBLUR_DEVIL_VENV or .venv, created if missing) unless PYTHON is set.
if [ -z "${PYTHON:-}" ]; then source "$ROOT/scripts/setup_venv.sh"; fi
# A single process trains here, so it may use every core.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"

EPOCHS="${PREWARPING_EPOCHS:-4}"
PAIRS="${PREWARPING_PAIRS:-160}"
SIZE="${PREWARPING_SIZE:-64}"
BATCH="${PREWARPING_BATCH:-4}"
LR="${PREWARPING_LR:-0.0005}"
if [ -n "${PREWARPING_WORK:-}" ]; then
    WORK="$PREWARPING_WORK"
    mkdir -p "$WORK"
else
    WORK="$(mktemp -d)"
    trap 'rm -rf "$WORK"' EXIT
fi
DATA="$WORK/FlyingChairs_generated/data"
RUN="$WORK/run-PWCNet"
case "$OUTPUT" in /*) ;; *) OUTPUT="$PWD/$OUTPUT" ;; esac

cd "$ROOT"
echo "==> Generating $PAIRS flow pairs of ${SIZE}x${SIZE} in $DATA"
"$PYTHON" -m tools.synthetic_flow --layout=flyingchairs --output="$DATA" --num_examples="$PAIRS" \
    --height="$SIZE" --width="$SIZE" --seed=0

echo "==> Training PWC-Net for $EPOCHS epochs (run folder $RUN)"
"$PYTHON" main.py \
    --model=PWCNet \
    --model_div_flow=0.05 \
    --loss=MultiScaleEPE \
    --optimizer=Adam \
    --optimizer_lr="$LR" \
    --batch_size="$BATCH" \
    --total_epochs="$EPOCHS" \
    --seed=0 \
    --training_dataset=FlyingChairsTrain \
    --training_dataset_root="$DATA" \
    --training_dataset_photometric_augmentations=False \
    --training_dataset_num_workers=0 \
    --prefix=prewarping \
    --proctitle=prewarping-pwcnet \
    --save="$RUN" \
    "$@"

echo "==> Exporting and checking the prewarping network"
"$PYTHON" scripts/prewarping_network.py --run="$RUN" --output="$OUTPUT" --data="$DATA"
echo "Use it with: --model=FlowDBN --model_pretrained_pwcnet=$OUTPUT"
