"""Classification metrics: top-k accuracies (spec §13), used by losses.ClassificationLoss."""
from typing import Dict, Sequence

import torch


def topk_accuracies(scores: torch.Tensor, target: torch.Tensor, topk: Sequence[int]) -> Dict[str, torch.Tensor]:
    """`top<k>`: percentage of rows of `scores` (B, C) whose `target` class is among the k highest, shape (1,)."""
    with torch.no_grad():
        batch_size = target.size(0)
        _, predicted = scores.topk(max(topk), dim=1, largest=True, sorted=True)
        correct = predicted.t().eq(target.view(1, -1).expand(max(topk), -1))
        # reshape, not view: the slice of the transposed tensor is not contiguous (the original's crash, §13).
        return {f"top{k}": correct[:k].reshape(-1).float().sum(0, keepdim=True).mul_(100.0 / batch_size)
                for k in topk}
