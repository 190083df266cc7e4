#!/usr/bin/env bash
# Train LeNet on MNIST, validating on the MNIST test set after every epoch: the framework's smallest
# complete example. Hyperparameters of the original's scripts/simple/train_mnist_lenet.sh (addendum §20):
# Adam 1e-4 (biases 1e-2 without weight decay), Loshchilov weight decay 0.01, LR halved after epochs 5, 10
# and 15, 20 epochs of batch 64. Unlike the original, the bias group really holds the biases (the original's
# was empty, so its biases never trained). Extra arguments are appended (the last value of a flag wins).
# Needs $DATASETS_HOME/mnist (python scripts/get_data.py mnist).
# The flags: configs/simple/train_mnist_lenet.json (on base.json); scripts/launch.sh runs it.
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/launch.sh"
launch simple/train_mnist_lenet "$TIME-simple-LeNet" "$@"
