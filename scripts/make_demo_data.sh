#!/usr/bin/env bash
# Generates the demo data (default: <repo>/demo_data) with tools/synthetic_gopro.py:
#   <OUT>/GOPRO_Large                  Nah layout: 2 train sequences x 16 frames, 1 test sequence x 8 frames
#   <OUT>/DeepVideoDeblurring_Dataset  Su layout: validation sequence IMG_0030 (98 frames), 2 training
#                                      sequences x 16 frames, 1 qualitative sequence x 16 frames
# at 256x144 (16:9 like GoPro's 1280x720, divisible by 8 for DBN): small enough that DBN trains a few
# epochs on 32x32 crops and validates on full frames on a CPU in a few minutes. Nothing is regenerated
# when <OUT>/.synthetic_gopro.stamp says the same settings and generator produced the data already.
# Usage: scripts/make_demo_data.sh [OUT]; DEMO_WIDTH / DEMO_HEIGHT override the frame size.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$(realpath -m "${1:-$ROOT/demo_data}")"
# The project's virtual environment (DEBLUR_DEVIL_VENV or .venv, created if missing), as demo.sh uses:
# the system python lacks torch and scikit-image.
source "$ROOT/scripts/setup_venv.sh"

ARGS=(--out "$OUT" --width "${DEMO_WIDTH:-256}" --height "${DEMO_HEIGHT:-144}" --layout both --seed 0
      --train_sequences 2 --num_frames 16 --test_sequences 1 --test_frames 8
      --su_sequences 2 --su_valid_sequences 1 --su_qualitative_sequences 1 --su_frames 16)
STAMP="$OUT/.synthetic_gopro.stamp"
WANTED="$(sha256sum "$ROOT/tools/synthetic_gopro.py" | cut -d' ' -f1) ${ARGS[*]}"
if [ "$(cat "$STAMP" 2>/dev/null)" == "$WANTED" ]; then
    echo "==> Demo data in $OUT is up to date"
    exit 0
fi

echo "==> Generating demo data in $OUT"
rm -rf "$OUT/GOPRO_Large" "$OUT/DeepVideoDeblurring_Dataset" "$STAMP"
mkdir -p "$OUT"
cd "$ROOT"
"$PYTHON" -m tools.synthetic_gopro "${ARGS[@]}"
echo "$WANTED" > "$STAMP"
