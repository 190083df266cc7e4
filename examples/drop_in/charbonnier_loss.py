"""A drop-in loss (copy into losses/): the Charbonnier loss, a smooth L1, plus PSNR as a metric.

`eps` becomes the flag `--loss_eps`. A loss returns a dict of scalars: `total_loss` is
back-propagated (`--training_key`), every entry is logged and can be a `--validation_keys` entry.
"""
import argparse
from typing import Dict, Optional

import torch
from torch import nn

from losses.registry import LOSSES


@LOSSES.register("CharbonnierLoss")
class CharbonnierLoss(nn.Module):
    """total_loss = mean of sqrt((output - target)^2 + eps^2); psnr = RGB PSNR of the clamped output (dB)."""

    def __init__(self, args: Optional[argparse.Namespace] = None, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, model_dict: Dict[str, torch.Tensor],
                example_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        output, target = model_dict["output1"], example_dict["target1"]
        total_loss = torch.sqrt((output - target) ** 2 + self.eps ** 2).mean()
        with torch.no_grad():
            mse = ((output.clamp(0.0, 1.0) - target) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-10)
            psnr = (-10.0 * torch.log10(mse)).mean()
        return {"total_loss": total_loss, "psnr": psnr}
