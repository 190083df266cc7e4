#!/usr/bin/env bash
# Train PWCNet on FlyingChairs (RandomAffineFlow + photometric augmentation), validating on the
# Sintel training set (clean pass) after every epoch. Hyperparameters of the released script
# (spec section 9.3); extra arguments are appended (the last value of a flag wins).
# The trained network serves as FlowDBN prewarping network as it is:
#   --model_pretrained_pwcnet=<run folder>/checkpoint_best_epe.ckpt
# As in the original, --model_div_flow stays 1.0 while the loss compares against flow x 0.05, so the
# network learns to output flow x 0.05 (what FlowDBN expects when it builds the net with div_flow 0.05).
# Needs $DATASETS_HOME/FlyingChairs_release/data/ (with FlyingChairs_train_val.txt there or one folder
# up) and $DATASETS_HOME/MPI-Sintel-complete/.
# The flags: configs/flow/train_pwcnet_with_sintel.json (on its _base_ files); scripts/launch.sh runs it.
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/launch.sh"
launch flow/train_pwcnet_with_sintel "release/$TIME-train-flyingchairs-with-sintel-PWCNet" "$@"
