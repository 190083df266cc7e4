"""The evaluation metrics a run computes per frame: --validation_metrics, --validation_metrics_crop_border.

The chosen metrics are added to every evaluation loss_dict (for any loss; a key the loss has is replaced),
averaged over frames, and written per frame to the run's frame records (utils/frame_records.py). Without
--validation_metrics the loss_dict is the loss's own and the records hold RECORD_DEFAULT.
"""
from typing import Dict, List, Optional, Sequence

import torch

from metrics.image import FrameMetric
from metrics.registry import METRICS

RECORD_DEFAULT = ("psnr", "psnr_rgb", "ssim_rgb")
INPUT_PREFIX = "input_"


class FrameMetrics:
    """The metrics `names` of every frame, each after a border crop of `crop_border` pixels.

    Args:
        names: registered metric names, in column order.
        crop_border: pixels removed on every side of output and target first.
        in_loss_dict: whether evaluation adds them to the loss_dict (--validation_metrics was given).
    """

    def __init__(self, names: Sequence[str], crop_border: int = 0, in_loss_dict: bool = True) -> None:
        names = list(names)
        for name in names:
            if name not in METRICS:
                raise ValueError(f"--validation_metrics: unknown metric {name!r}; registered: "
                                 f"{', '.join(METRICS.names())}")
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"--validation_metrics: {', '.join(duplicates)} given more than once")
        if crop_border < 0:
            raise ValueError(f"--validation_metrics_crop_border must be >= 0, got {crop_border}")
        self.names: List[str] = names
        self.crop_border = int(crop_border)
        self.in_loss_dict = in_loss_dict
        self.metrics: Dict[str, FrameMetric] = {name: METRICS.get(name)(crop_border=self.crop_border)
                                                for name in names}

    def protocols(self) -> Dict[str, str]:
        """One line per metric: how it is computed."""
        return {name: metric.protocol for name, metric in self.metrics.items()}

    def modes(self) -> Dict[str, str]:
        """'max' or 'min' per metric: which way is better."""
        return {name: metric.mode for name, metric in self.metrics.items()}

    def __call__(self, output: torch.Tensor, target: torch.Tensor, prefix: str = "") -> Dict[str, torch.Tensor]:
        """Every metric of every frame: {prefix + name: float64 (N,)}."""
        with torch.no_grad():
            return {prefix + name: metric(output, target) for name, metric in self.metrics.items()}


def from_settings(names: Optional[Sequence[str]], crop_border: int = 0) -> FrameMetrics:
    """The run's metrics: `names` (added to the loss_dict), or without them RECORD_DEFAULT for the records only."""
    if names:
        return FrameMetrics(names, crop_border, in_loss_dict=True)
    return FrameMetrics(RECORD_DEFAULT, crop_border, in_loss_dict=False)


def image_pair(model_dict: Dict[str, object], example_dict: Dict[str, object]) -> bool:
    """Whether the pass has image outputs to score: output1 and target1 of one shape with 3 channels
    (deblurring; not optical flow, whose target is a flow field)."""
    output, target = model_dict.get("output1"), example_dict.get("target1")
    return (torch.is_tensor(output) and torch.is_tensor(target) and output.shape == target.shape
            and output.dim() == 4 and output.size(1) == 3)


def resumed_best_values_note(checkpoint: Dict[str, object]) -> str:
    """For a checkpoint saved before per-frame metrics (its arguments have no validation_metrics): one line saying
    that its best values were computed the old way and are kept; '' for a newer checkpoint or no best values."""
    stored = checkpoint.get("args")
    if isinstance(stored, dict) and "validation_metrics" in stored:
        return ""
    best = checkpoint.get("best")
    keys = list(best.get("keys") or []) if isinstance(best, dict) else []
    values = list(best.get("values") or []) if isinstance(best, dict) else []
    if not keys or len(keys) != len(values):
        return ""
    shown = ", ".join(f"best_{key}={float(value):.4f}" for key, value in zip(keys, values))
    return (f"the stored best values ({shown}) were computed the old way, before per-frame evaluation metrics "
            f"(psnr: one shift per batch, the PSNR of the batch's mean MSE); they are kept as they are")
