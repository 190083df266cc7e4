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
set -euo pipefail
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/common.sh"

MODEL=PWCNet
TIME="${TIME:-$(date +%Y%m%d-%H%M%S)}"
SAVE_PATH="$EXPERIMENTS_HOME/release/$TIME-train-flyingchairs-with-sintel-$MODEL"

run_main \
    --batch_size=8 \
    --checkpoint=None \
    --loss=MultiScaleEPE \
    --lr_scheduler=MultiStepLR \
    --lr_scheduler_gamma=0.5 \
    --lr_scheduler_milestones="[108, 144, 180]" \
    --model="$MODEL" \
    --optimizer=Adam \
    --optimizer_lr=1e-4 \
    --optimizer_weight_decay=4e-4 \
    --save="$SAVE_PATH" \
    --total_epochs=216 \
    --training_augmentation=RandomAffineFlow \
    --training_dataset=FlyingChairsTrain \
    --training_dataset_num_examples=-1 \
    --training_dataset_photometric_augmentations=True \
    --training_dataset_root="$DATASETS_HOME/FlyingChairs_release/data/" \
    --validation_dataset=SintelTrainingCleanFull \
    --validation_dataset_num_workers=4 \
    --validation_dataset_root="$DATASETS_HOME/MPI-Sintel-complete/" \
    --validation_keys=epe \
    --visualizer=FlowVisualizer \
    "$@"
