"""Deblurring loss and metrics (spec §4.1)."""
from argparse import Namespace
from typing import Dict, Optional

import torch
import torch.nn as nn

from contrib.psnr import fitting_ssim_window, koehler_psnr, psnr_rgb, ssim
from losses.registry import LOSSES
from metrics.image import paper_psnr

SSIM_WINDOW = 11


@LOSSES.register("DBNLoss")
class DBNLoss(nn.Module):
    """total_loss = 0.5·SSE over the batch; psnr (grayscale, Köhler-optimised in eval), psnr_rgb, ssim.

    These four keys are the loss_dict in training and evaluation: the choices of --training_key and
    --validation_keys. In evaluation psnr is the paper's protocol per frame (each frame its own scale and
    shift, metrics.image.paper_psnr) averaged over the batch; the original's value of the whole batch (one
    shift per batch) is --validation_metrics=psnr_batched. No parameters.
    """

    def __init__(self, args: Optional[Namespace] = None) -> None:
        super().__init__()
        self.args = args

    def forward(self, model_dict: Dict[str, torch.Tensor],
                example_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        output = model_dict["output1"]
        target = example_dict["target1"]
        if output.shape != target.shape:
            raise ValueError(f"DBNLoss: model output1 {tuple(output.shape)} and target1 "
                             f"{tuple(target.shape)} differ in shape")
        # Summed, not averaged: the loss scale (and thus the learning rate) of the original.
        total_loss = 0.5 * ((output - target) ** 2).sum()
        with torch.no_grad():
            clamped = output.clamp(0.0, 1.0)
            if self.training:
                psnr = koehler_psnr(clamped, target)
            else:
                # The model already clamps in eval mode; the metric sees exactly its output.
                psnr = paper_psnr(output, target).mean()
            rgb = psnr_rgb(clamped, target).mean()
            structural = ssim(clamped, target, window_size=fitting_ssim_window(*target.shape[-2:], SSIM_WINDOW)).mean()
        return {"total_loss": total_loss, "psnr": psnr, "psnr_rgb": rgb, "ssim": structural}
