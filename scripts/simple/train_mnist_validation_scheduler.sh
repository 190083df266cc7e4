#!/usr/bin/env bash
# Train LeNet on MNIST with a validation-driven LR schedule and a parameter schedule (addendum §20): Adam
# 1e-2, ReduceLROnPlateau on the validation top1 (mode max, patience 2), and LeNet's unused scalar `peter`
# set to 100·0.7^(E−1) at the start of epoch E by --param_scheduler_group; its --optimizer_group with lr 0
# keeps the optimizer off it. Unlike the original, the groups hold their parameters (the original's were
# empty). Extra arguments are appended (the last value of a flag wins).
# Needs $DATASETS_HOME/mnist (python scripts/get_data.py mnist).
# The flags: configs/simple/train_mnist_validation_scheduler.json (on base.json); scripts/launch.sh runs it.
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/launch.sh"
launch simple/train_mnist_validation_scheduler "$TIME-simple-LeNet" "$@"
