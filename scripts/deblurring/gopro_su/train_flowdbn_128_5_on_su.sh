#!/usr/bin/env bash
# Train FlowDBN (N=5, 128x128 crops, PWC-Net prewarping) on DeepVideoDeblurring (Su et al.).
# Hyperparameters of the released script (spec section 9.2).
# No validation set, as released. Unlike the original, this project steps the LR schedule and writes
# checkpoint_latest_.ckpt after every epoch without one (spec section 2.4). To follow a validation
# score, append
#   --validation_dataset=GoProSuQuantitativeValid --validation_dataset_root=$DATASETS_HOME/DeepVideoDeblurring_Dataset/
#   --validation_dataset_sequence_length=5 --validation_keys=psnr --validation_modes=max
# Training data, schedule and hyperparameters stay the same (the data loader's random draws after
# epoch 1 differ); checkpoint_best_psnr.ckpt is added and each epoch takes longer.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/common.sh"

PREFIX=flowdbn-128-5-su
MODEL=FlowDBN
TIME="${TIME:-$(date +%Y%m%d-%H%M%S)}"
SAVE_PATH="$EXPERIMENTS_HOME/$TIME-$PREFIX-$MODEL"
CHECKPOINT=None
PWCNET="$EXPERIMENTS_HOME/prewarping_networks/pwcnet.ckpt"

run_main \
    --batch_size=8 \
    --checkpoint="$CHECKPOINT" \
    --loss=DBNLoss \
    --lr_scheduler=MultiStepLR \
    --lr_scheduler_gamma=0.5 \
    --lr_scheduler_milestones="[108, 126, 144, 162, 180, 198]" \
    --total_epochs=216 \
    --model="$MODEL" \
    --model_pretrained_pwcnet="$PWCNET" \
    --optimizer=Adam \
    --optimizer_lr=0.005 \
    --prefix="$PREFIX" \
    --save="$SAVE_PATH" \
    --training_dataset=GoProSuQuantitativeTrain \
    --training_dataset_sequence_length=5 \
    --training_dataset_random_crop="[128, 128]" \
    --training_dataset_num_samples_per_example=8 \
    --training_dataset_num_workers=12 \
    --training_dataset_num_examples=-1 \
    --training_dataset_cache_dir="$FRAME_CACHE_DIR" \
    --training_dataset_root="$DATASETS_HOME/DeepVideoDeblurring_Dataset/" \
    "$@"
