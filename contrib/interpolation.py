"""Resizing helpers shared by the flow networks (spec §3.1)."""
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

_LINEAR_MODES = ("linear", "bilinear", "bicubic", "trilinear")


def resize2d(x: torch.Tensor, size: Sequence[int], mode: str = "bilinear",
             align_corners: Optional[bool] = True) -> torch.Tensor:
    """Resize an NCHW tensor to `size` = (h, w): unchanged, adaptive average pooling, or interpolation.

    The choice between pooling and interpolation compares (h, w) with the input size as Python
    tuples, i.e. lexicographically. This reproduces the original: a target (10, 20) for an input
    (8, 30) counts as "not smaller" and is interpolated. Flow magnitudes are not rescaled.
    """
    if x.dim() != 4:
        raise ValueError(f"resize2d expects an NCHW tensor, got shape {tuple(x.shape)}")
    target = (int(size[0]), int(size[1]))
    source = (int(x.size(2)), int(x.size(3)))
    if target == source:
        return x
    if target < source:
        return F.adaptive_avg_pool2d(x, target)
    # interpolate() rejects align_corners for modes without corners (nearest, area).
    if mode not in _LINEAR_MODES:
        align_corners = None
    return F.interpolate(x, size=target, mode=mode, align_corners=align_corners)


def resize2d_as(x: torch.Tensor, target_as: torch.Tensor, mode: str = "bilinear",
                align_corners: Optional[bool] = True) -> torch.Tensor:
    """Resize `x` to the spatial size of `target_as` with the rules of `resize2d`."""
    return resize2d(x, target_as.shape[-2:], mode=mode, align_corners=align_corners)
