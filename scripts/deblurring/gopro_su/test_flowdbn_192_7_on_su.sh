#!/usr/bin/env bash
# Deblur the DeepVideoDeblurring (Su et al.) test set with a FlowDBN (N=7, trained on 192x192 crops) checkpoint.
# Hyperparameters of the released script (spec section 9.2).
# Evaluation only: writes the deblurred frames to $SAVE_PATH/inference/<sequence>/<frame>.png and the
# metrics table to $SAVE_PATH/inference_metrics.csv. Set CHECKPOINT to the trained FlowDBN checkpoint.
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/common.sh"

PREFIX=flowdbn-192-7-su
MODEL=FlowDBN
TIME="${TIME:-$(date +%Y%m%d-%H%M%S)}"
SAVE_PATH="$EXPERIMENTS_HOME/$TIME-$PREFIX-$MODEL-inference"
CHECKPOINT="${CHECKPOINT:-$EXPERIMENTS_HOME/path/to/checkpoint.ckpt}"
PWCNET="$EXPERIMENTS_HOME/prewarping_networks/pwcnet.ckpt"

run_main \
    --batch_size=1 \
    --checkpoint="$CHECKPOINT" \
    --loss=DBNLoss \
    --model="$MODEL" \
    --model_pretrained_pwcnet="$PWCNET" \
    --prefix="$PREFIX" \
    --save="$SAVE_PATH" \
    --validation_dataset=GoProSuQuantitativeValid \
    --validation_dataset_sequence_length=7 \
    --validation_dataset_num_workers=12 \
    --validation_dataset_root="$DATASETS_HOME/DeepVideoDeblurring_Dataset/" \
    --validation_keys=psnr \
    --validation_modes=max \
    --visualizer=GoProInference \
    --visualizer_save="$SAVE_PATH/inference" \
    "$@"
