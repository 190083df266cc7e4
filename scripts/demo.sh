#!/usr/bin/env bash
# The demo: creates .venv if needed, generates GoPro-like demo data from real photographs, trains DBN
# on 32x32 crops on the CPU for a few epochs with validation after each, reports the PSNR of the
# blurred input and of the deblurred result, and writes <run folder>/before_after.png (blurred input |
# deblurred | sharp, one test frame deblurred by deblur.py with the best checkpoint, full size, and below
# them a 4x zoom of the region where deblurring changed the frame most).
# Where the CPU multiplies bf16 natively (AMX or AVX512-BF16) it trains in bf16 autocast with channels-last,
# about 1.4x as fast per epoch (validation 1.7x, training on 32x32 crops 1.2x), and spends the time saved on
# more epochs (22 instead of 16: the same total time).
# Override with DEMO_AMP (auto; bf16 or none force the precision), DEMO_EPOCHS (22 in bf16, 16 in float32),
# DEMO_EXAMPLES (training examples per epoch; -1: all 32), DEMO_DATA (demo_data), DEMO_SAVE
# (experiments/<time>-demo-DBN) and DEMO_WIDTH / DEMO_HEIGHT (256x144, the generated frames; multiples of 8,
# at least 32). DEMO_EPOCHS=1 DEMO_EXAMPLES=4 is a quick smoke run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup_venv.sh"
cd "$ROOT"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"
DATA="${DEMO_DATA:-$ROOT/demo_data}"
SAVE="${DEMO_SAVE:-$ROOT/experiments/$(date +%Y%m%d-%H%M%S)-demo-DBN}"
AMP="${DEMO_AMP:-auto}"
EXAMPLES="${DEMO_EXAMPLES:--1}"
case "$AMP" in
    auto) NATIVE="$("$PYTHON" -c 'import torch; from contrib.precision import native_bf16
print(native_bf16(torch.device("cpu")) or "")')"
          if [ -n "$NATIVE" ]; then AMP=bf16; WHY="this CPU has $NATIVE"; else AMP=none; WHY="no native bf16"; fi ;;
    bf16|none) WHY="DEMO_AMP=$AMP" ;;
    *) echo "demo.sh: error: DEMO_AMP=$AMP: expected auto, bf16 or none" >&2; exit 2 ;;
esac
if [ "$AMP" = bf16 ]; then
    PRECISION=(--amp=bf16 --channels_last=true); EPOCHS="${DEMO_EPOCHS:-22}"
    echo "==> Training in bf16 autocast with channels-last ($WHY): $EPOCHS epochs"
else
    PRECISION=(); EPOCHS="${DEMO_EPOCHS:-16}"
    echo "==> Training in float32 ($WHY): $EPOCHS epochs"
fi

bash "$ROOT/scripts/make_demo_data.sh" "$DATA"

# DBN ends in a batch-norm layer whose unit gain makes the initial residual pure noise; the paper's
# 10^5 steps make that irrelevant, a few-minute demo does not: its own parameter group with a 10x
# learning rate lets that gain shrink within a few dozen steps.
"$PYTHON" main.py --model=DBN --loss=DBNLoss --cuda=false --seed=0 "${PRECISION[@]}" \
    --optimizer=Adam --optimizer_lr=0.005 --optimizer_group="{'params': '*f15.1.*', 'lr': 0.05}" \
    --lr_scheduler=MultiStepLR --lr_scheduler_milestones="[$((EPOCHS * 3 / 4))]" --lr_scheduler_gamma=0.5 \
    --batch_size=4 --total_epochs="$EPOCHS" \
    --training_dataset=GoProNahTrain --training_dataset_root="$DATA/GOPRO_Large" \
    --training_dataset_sequence_length=5 --training_dataset_random_crop="[32, 32]" \
    --training_dataset_num_samples_per_example=4 --training_dataset_num_workers=1 \
    --training_dataset_num_examples="$EXAMPLES" \
    --validation_dataset=GoProNahTest --validation_dataset_root="$DATA/GOPRO_Large" \
    --validation_dataset_sequence_length=5 --validation_dataset_num_workers=1 \
    --validation_keys="[psnr]" --validation_modes="[max]" \
    --visualizer=GoProVisualizer --visualizer_images_every_n_epochs=4 \
    --prefix=demo --save="$SAVE"

"$PYTHON" scripts/demo_summary.py --data="$DATA/GOPRO_Large" --save="$SAVE" --amp="$AMP"
