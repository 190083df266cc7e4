"""Multi-scale endpoint-error loss for FlowNet1S / PWCNet training (spec §4.3)."""
from argparse import Namespace
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from losses.registry import LOSSES


def endpoint_error(flow: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel Euclidean distance between two (B, 2, H, W) flows → (B, H, W)."""
    return torch.linalg.vector_norm(flow - target, ord=2, dim=1)


def scale_weights(num_scales: int, num_highres_scales: int, coarsest_weight: float) -> List[float]:
    """Loss weights finest first: from the coarsest scale down, ÷4 per scale, ÷2 for the high-res ones.

    The defaults (5, 2, 0.32) give [0.005, 0.01, 0.02, 0.08, 0.32] for flow2..flow6.
    """
    if not 0 <= num_highres_scales < num_scales:
        raise ValueError(f"--loss_num_highres_scales must be in [0, --loss_num_scales), "
                         f"got {num_highres_scales} with {num_scales} scales")
    weights = [coarsest_weight]
    for j in range(1, num_scales):
        factor = 2.0 if j >= num_scales - num_highres_scales else 4.0
        weights.append(weights[-1] / factor)
    return weights[::-1]


@LOSSES.register("MultiScaleEPE")
class MultiScaleEPE(nn.Module):
    """Train: weighted sum of EPEs of flow2..flow6 against the scaled target; eval: mean EPE of flow1.

    Keys: total_loss and epe2..epe<num_scales+1> in training, epe in evaluation.

    Args:
        scale_factor: factor of the training loss total_loss.
        div_flow: scale of the model's training outputs (flow in pixels × div_flow); the target is scaled alike.
        num_scales: outputs flow2, flow3, ... that the training loss compares.
        num_highres_scales: finest scales whose weight halves (instead of quartering) from one scale to the next.
        coarsest_resolution_loss_weight: weight of the coarsest scale; the defaults give 0.005 ... 0.32.
    """

    def __init__(self, args: Optional[Namespace] = None, scale_factor: float = 1.0, div_flow: float = 0.05,
                 num_scales: int = 5, num_highres_scales: int = 2,
                 coarsest_resolution_loss_weight: float = 0.32) -> None:
        super().__init__()
        self.scale_factor = scale_factor
        self.div_flow = div_flow
        self.num_scales = num_scales
        self.weights = scale_weights(num_scales, num_highres_scales, coarsest_resolution_loss_weight)

    def forward(self, model_dict: Dict[str, torch.Tensor],
                example_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        target = example_dict["target1"]
        if not self.training:
            epe = endpoint_error(model_dict["flow1"] / self.div_flow, target).mean()
            return {"epe": epe}
        # Network outputs are in pixels × div_flow; so is the target they are compared with.
        scaled_target = target * self.div_flow
        epes = {}
        total_loss = 0.0
        for j, weight in enumerate(self.weights):
            key = f"flow{j + 2}"
            if key not in model_dict:
                raise KeyError(f"MultiScaleEPE: model_dict has no '{key}' (--loss_num_scales="
                               f"{self.num_scales}); keys: {sorted(model_dict)}")
            flow = model_dict[key]
            epe = endpoint_error(flow, F.adaptive_avg_pool2d(scaled_target, flow.shape[-2:]))
            total_loss = total_loss + weight * epe.sum()
            epes[f"epe{j + 2}"] = epe.mean().detach()
        return {"total_loss": self.scale_factor * total_loss, **epes}
