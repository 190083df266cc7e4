#!/usr/bin/env bash
# Train FlowDBN (N=7, 192x192 crops, PWC-Net prewarping) on DeepVideoDeblurring (Su et al.).
# Hyperparameters of the released script (spec section 9.2).
# No validation set, as released. Unlike the original, this project steps the LR schedule and writes
# checkpoint_latest_.ckpt after every epoch without one (spec section 2.4). To follow a validation
# score, append
#   --validation_dataset=GoProSuQuantitativeValid --validation_dataset_root=$DATASETS_HOME/DeepVideoDeblurring_Dataset/
#   --validation_dataset_sequence_length=7 --validation_keys=psnr --validation_modes=max
# Training data, schedule and hyperparameters stay the same (the data loader's random draws after
# epoch 1 differ); checkpoint_best_psnr.ckpt is added and each epoch takes longer.
# The flags: configs/deblurring/gopro_su/train_flowdbn_192_7_on_su.json (on its _base_ files); scripts/launch.sh runs it.
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/launch.sh"
launch deblurring/gopro_su/train_flowdbn_192_7_on_su "$TIME-flowdbn-192-7-su-FlowDBN" "$@"
