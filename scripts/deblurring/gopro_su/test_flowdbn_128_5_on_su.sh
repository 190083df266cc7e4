#!/usr/bin/env bash
# Deblur the DeepVideoDeblurring (Su et al.) test set with a FlowDBN (N=5, trained on 128x128 crops) checkpoint.
# Hyperparameters of the released script (spec section 9.2).
# Evaluation only: writes the deblurred frames to $SAVE_PATH/inference/<sequence>/<frame>.png and the
# metrics table to $SAVE_PATH/inference_metrics.csv. Set CHECKPOINT to the trained FlowDBN checkpoint.
# The flags: configs/deblurring/gopro_su/test_flowdbn_128_5_on_su.json (on its _base_ files); scripts/launch.sh runs it.
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/launch.sh"
launch deblurring/gopro_su/test_flowdbn_128_5_on_su "$TIME-flowdbn-128-5-su-FlowDBN-inference" \
    --checkpoint="${CHECKPOINT:-$EXPERIMENTS_HOME/path/to/checkpoint.ckpt}" "$@"
