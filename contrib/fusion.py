"""Fold BatchNorm layers into the convolutions before them, for networks that are only evaluated.

In eval mode a BatchNorm2d is a fixed per-channel affine map, y = s·(x − mean) + beta with
s = gamma / sqrt(var + eps), so a Conv2d or ConvTranspose2d directly before it can absorb it:
weight' = s·weight (per output channel) and bias' = s·(bias − mean) + beta. DBN's conv(bias=False)+BN
and deconv+BN blocks become single convolutions with a bias and the BN modules become Identity, so
module indices (conv at `.0`) stay where they were. The folded network computes the same function up
to float rounding but no longer has the BN parameters and buffers: fold after loading a checkpoint,
and never fold a network that is still trained.
"""
import logging
from typing import Union

import torch
import torch.nn as nn

Convolution = Union[nn.Conv2d, nn.ConvTranspose2d]


def fold_conv_batchnorm(conv: Convolution, bn: nn.BatchNorm2d) -> None:
    """Fold an eval-mode `bn` into the preceding `conv` in place (conv gains a bias)."""
    if bn.training:
        raise ValueError("fold_batchnorm: BatchNorm is in training mode; call .eval() first (folding freezes "
                         "the running statistics)")
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("fold_batchnorm: BatchNorm without running statistics (track_running_stats=False) "
                         "normalises with batch statistics and cannot be folded")
    if bn.num_features != conv.out_channels:
        raise ValueError(f"fold_batchnorm: BatchNorm2d({bn.num_features}) does not follow a convolution with "
                         f"{conv.out_channels} output channels")
    with torch.no_grad():
        # float64 keeps the folded weights as close as possible to conv-then-BN.
        scale = bn.running_var.double().add(bn.eps).rsqrt()
        if bn.weight is not None:
            scale = scale * bn.weight.double()
        shift = -bn.running_mean.double() * scale
        if bn.bias is not None:
            shift = shift + bn.bias.double()
        bias = conv.bias.double() * scale + shift if conv.bias is not None else shift
        weight = conv.weight.double()
        if isinstance(conv, nn.ConvTranspose2d):
            groups = conv.groups
            in_per_group, out_per_group = weight.size(0) // groups, weight.size(1)
            factors = scale.view(groups, 1, out_per_group, 1, 1)
            weight = (weight.view(groups, in_per_group, out_per_group, *weight.shape[2:]) * factors) \
                .view_as(conv.weight)
        else:
            weight = weight * scale.view(-1, 1, 1, 1)
        conv.weight.copy_(weight.to(conv.weight.dtype))
        if conv.bias is None:
            conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad)
        else:
            conv.bias.copy_(bias.to(conv.bias.dtype))


def fold_batchnorm(module: nn.Module) -> int:
    """Fold every BatchNorm2d that directly follows a Conv2d/ConvTranspose2d inside an nn.Sequential.

    The module must be in eval mode. Returns the number of folded pairs; BatchNorms elsewhere are left.
    """
    if module.training:
        raise ValueError("fold_batchnorm: the module is in training mode; call .eval() first "
                         "(folding is for evaluated or frozen networks)")
    folded = 0
    for sequential in [m for m in module.modules() if isinstance(m, nn.Sequential)]:
        names = list(sequential._modules)
        for previous, name in zip(names, names[1:]):
            conv, bn = sequential._modules[previous], sequential._modules[name]
            if isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(bn, nn.BatchNorm2d):
                fold_conv_batchnorm(conv, bn)
                sequential._modules[name] = nn.Identity()
                folded += 1
    logging.getLogger(__name__).info("folded %d BatchNorm layers into convolutions", folded)
    return folded
