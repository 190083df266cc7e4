"""Classification loss (spec §13): cross entropy `xe` and top-k accuracies in percent."""
from argparse import Namespace
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from losses.registry import LOSSES
from metrics.classification import topk_accuracies

REDUCTIONS = ("mean", "sum", "none")


@LOSSES.register("ClassificationLoss")
class ClassificationLoss(nn.Module):
    """Cross entropy of `output1` (B, C) scores against `target1` (B,) class indices, and top-k accuracies.

    Keys: `xe` (back-propagate it with --training_key=xe) and `top<k>` for every k of `topk`, in percent of
    the batch, shape (1,). There is no `total_loss`.

    Args:
        topk: the k of the accuracies, e.g. [1, 5]; the largest must not exceed the number of classes.
        reduction: how `xe` combines the batch: mean, sum or none (per example; not for training runs).
    """

    def __init__(self, args: Optional[Namespace] = None, topk: Sequence[int] = (1, 2, 3),
                 reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f"--loss_reduction={reduction}: expected one of {', '.join(REDUCTIONS)}")
        topk = tuple(int(k) for k in topk)
        if not topk or min(topk) < 1:
            raise ValueError(f"--loss_topk={list(topk)}: expected a list of positive integers, e.g. [1, 5]")
        self.topk, self.reduction = topk, reduction

    def forward(self, model_dict: Dict[str, torch.Tensor],
                example_dict: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        """The loss_dict: `xe`, then `top<k>` in the order of `topk`."""
        scores, target = model_dict["output1"], example_dict["target1"]
        if max(self.topk) > scores.size(1):
            raise ValueError(f"--loss_topk={list(self.topk)}: top{max(self.topk)} needs at least that many classes, "
                             f"the model gives {scores.size(1)}")
        return {"xe": F.cross_entropy(scores, target, reduction=self.reduction),
                **topk_accuracies(scores, target, self.topk)}
