"""TensorBoard while training an optical-flow network (spec §7.5).

Scalars as GoProVisualizer's (visualizers/gopro_visualizer.py); in epochs 1, 2 and every
`images_every_n_epochs`-th epoch, for chosen steps, the image `<train|valid>_images/<slot>/progress` =
[input1 | input2 | predicted flow | ground-truth flow] (Middlebury colours, one colour scale for
both flows, images resized to the prediction's size, mosaic scaled to a height of 128).

Predictions are compared in full-resolution pixels: training outputs (`flow2`, in units of
--loss_div_flow) are divided by it, and the ground truth is average-pooled to the prediction's size.
Unlike the original, nothing in the example or model dictionaries is modified.
"""
import argparse
from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F

from contrib.flow_colors import flow_to_color
from utils import summary
from visualizers.gopro_visualizer import TrackedStepsVisualizer
from visualizers.registry import VISUALIZERS

MOSAIC_HEIGHT = 128


def _resize(image: torch.Tensor, size: torch.Size) -> torch.Tensor:
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)


def progress_mosaic(input1: torch.Tensor, input2: torch.Tensor, prediction: torch.Tensor,
                    target: torch.Tensor, height: int = MOSAIC_HEIGHT) -> torch.Tensor:
    """[input1 | input2 | prediction | target] of (1, C, H, W) tensors at `height` rows → (3, height, W')."""
    size = prediction.shape[-2:]
    target = F.adaptive_avg_pool2d(target, size) if tuple(target.shape[-2:]) != tuple(size) else target
    # One colour scale for both flows, set by the ground truth (by the prediction if the truth is all zero).
    known = target.norm(dim=1)[torch.isfinite(target).all(dim=1)]
    max_radius = float(known.max()) if known.numel() else 0.0
    if max_radius == 0.0:
        max_radius = float(prediction.norm(dim=1).max())
    scale = max_radius if max_radius > 0.0 else None
    colors = [_resize(input1, size).clamp(0, 1), _resize(input2, size).clamp(0, 1),
              flow_to_color(prediction, scale), flow_to_color(target, scale)]
    mosaic = torch.cat(colors, dim=3)
    width = max(1, round(mosaic.size(3) * height / mosaic.size(2)))
    return _resize(mosaic, torch.Size((height, width)))[0].clamp(0, 1)


@VISUALIZERS.register("FlowVisualizer")
class FlowVisualizer(TrackedStepsVisualizer):
    """Optical-flow training progress in TensorBoard."""

    def __init__(self, args: Optional[argparse.Namespace] = None, model_and_loss: Optional[torch.nn.Module] = None,
                 optimizer: Optional[torch.optim.Optimizer] = None, param_scheduler: Optional[Any] = None,
                 lr_scheduler: Optional[Any] = None, train_loader: Optional[Any] = None,
                 validation_loader: Optional[Any] = None, images_every_n_epochs: int = 8,
                 keep_num_training_steps: int = 30, keep_num_validation_steps: int = 30, *,
                 div_flow: float = 1.0, start_epoch: int = 1, seed: Optional[int] = None) -> None:
        """Keyword-only parameters make no flags: main.py passes the loss's div_flow, the first epoch and --seed."""
        super().__init__(images_every_n_epochs, keep_num_training_steps, keep_num_validation_steps,
                         track_epochs=True, train_loader=train_loader, start_epoch=start_epoch, seed=seed)
        self.div_flow = float(div_flow)

    def write_images(self, example_dict: Dict[str, Any], model_dict: Dict[str, Any], train: bool, prefix: str,
                     image_step: int) -> None:
        if "flow1" in model_dict:
            prediction = model_dict["flow1"]
        elif "flow2" in model_dict:
            prediction = model_dict["flow2"] / self.div_flow
        else:
            raise KeyError(f"FlowVisualizer needs 'flow1' (eval) or 'flow2' (training) in model_dict, "
                           f"got {sorted(model_dict)}")
        for key in ("input1", "input2", "target1"):
            if key not in example_dict:
                raise KeyError(f"FlowVisualizer needs '{key}' in example_dict, got {sorted(example_dict)}")
        first = slice(0, 1)
        mosaic = progress_mosaic(example_dict["input1"][first].detach().float().cpu(),
                                 example_dict["input2"][first].detach().float().cpu(),
                                 prediction[first].detach().float().cpu(),
                                 example_dict["target1"][first].detach().float().cpu())
        summary.image(prefix + "progress", mosaic, global_step=image_step)
