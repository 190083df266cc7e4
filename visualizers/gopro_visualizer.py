"""TensorBoard while training a deblurring model (spec §7.3): scalars every step and epoch, images of
randomly chosen steps of tracked epochs.

Deviations from the original, on purpose:
* `train/lr` is written whether or not there is an LR scheduler (the original crashed without one).
* All N input frames and every `warped<i>` the model returns are shown, so N=7 works (the original
  always showed input1..input5 and crashed on the missing `warped4` for N=7).
* The summary mosaic shows the reference frame (input3 for N=5, input4 for N=7).
* Steps are drawn from a private random generator, so visualizing does not change the training's
  random stream.
"""
import abc
import argparse
import random
from typing import Any, Dict, List, Optional, Sequence

import torch

from contrib.colormap import colorize_normalized
from utils import summary
from visualizers.registry import VISUALIZERS
from visualizers.visualizer import Visualizer


def _first_float(lr: Any) -> Optional[float]:
    if lr is None:
        return None
    if isinstance(lr, (list, tuple)):
        return float(lr[0]) if lr else None
    return float(lr)


def _image(tensor: torch.Tensor) -> torch.Tensor:
    """Batch element 0 as a CPU (C, H, W) float image clamped to [0, 1]."""
    return tensor[0].detach().float().clamp(0.0, 1.0).cpu()


def example_name(example_dict: Dict[str, Any], step: int) -> str:
    """'<sequence>_<frame>' of batch element 0 (basename with '/' replaced), or 'step<k>' without names."""
    names = example_dict.get("basename")
    if isinstance(names, (list, tuple)) and names:
        return str(names[0]).replace("/", "_")
    return f"step{step}"


def error_image(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel squared error summed over channels, min-max normalised, jet-coloured → uint8 (3, H, W)."""
    error = ((output.float() - target.float()) ** 2).sum(dim=0, keepdim=True)
    colored = colorize_normalized(error)[0]
    return (colored * 255.0).round().to(torch.uint8)


def summary_mosaic(reference: torch.Tensor, target: torch.Tensor, error: torch.Tensor,
                   output: torch.Tensor) -> torch.Tensor:
    """[reference | ground truth ; error | output] at half resolution (nearest), float (3, H, W)."""
    top = torch.cat([reference, target], dim=2)
    bottom = torch.cat([error.float() / 255.0, output], dim=2)
    return torch.cat([top, bottom], dim=1)[:, ::2, ::2].contiguous()


class TrackedStepsVisualizer(Visualizer, abc.ABC):
    """Writes `train/lr`, `train/<key>` per step and `valid/<key>` per epoch; subclasses add images
    for `keep_num_*_steps` random steps of every tracked epoch via `write_images`.

    Args:
        images_every_n_epochs: write images in every n-th epoch.
        keep_num_training_steps: training steps with images in such an epoch, drawn at random.
        keep_num_validation_steps: validation steps with images in such an epoch, drawn at random.
        track_epochs: write images in epochs 1 and 2 as well.
    """

    def __init__(self, args: argparse.Namespace, images_every_n_epochs: int, keep_num_training_steps: int,
                 keep_num_validation_steps: int, track_epochs: bool, train_loader: Optional[Any] = None) -> None:
        super().__init__()
        if images_every_n_epochs < 1:
            raise ValueError(f"--visualizer_images_every_n_epochs must be positive, got {images_every_n_epochs}")
        for flag, value in (("keep_num_training_steps", keep_num_training_steps),
                            ("keep_num_validation_steps", keep_num_validation_steps)):
            if value < 0:
                raise ValueError(f"--visualizer_{flag} must be >= 0, got {value}")
        self.images_every_n_epochs = images_every_n_epochs
        self.keep_num_training_steps = keep_num_training_steps
        self.keep_num_validation_steps = keep_num_validation_steps
        self.track_epochs = track_epochs
        # A resumed run continues the step axis where the earlier run's curves end.
        start_epoch = int(getattr(args, "start_epoch", 1) or 1)
        self.global_train_step = (start_epoch - 1) * len(train_loader) if train_loader is not None else 0
        self.epoch = 0
        self.track_epoch = False
        self.selected_steps: Optional[List[int]] = None
        seed = getattr(args, "seed", None)
        self._random = random.Random(seed if seed is not None else 0)

    def is_tracked(self, epoch: int) -> bool:
        """Images in epochs 1 and 2 (with track_epochs) and in every images_every_n_epochs-th epoch."""
        return (self.track_epochs and epoch <= 2) or epoch % self.images_every_n_epochs == 0

    def on_epoch_init(self, lr: Any, train: bool, epoch: int, total_epochs: int) -> None:
        self.epoch = epoch
        if train:
            rates = lr if isinstance(lr, (list, tuple)) else [lr]
            if _first_float(lr) is not None:
                summary.scalar("train/lr", _first_float(lr), global_step=epoch)
                for index, rate in enumerate(rates[1:], start=1):
                    summary.scalar(f"train/lr_group{index}", float(rate), global_step=epoch)
        self.track_epoch = self.is_tracked(epoch)
        self.selected_steps = None

    def _select_steps(self, train: bool, total_steps: int) -> List[int]:
        keep = self.keep_num_training_steps if train else self.keep_num_validation_steps
        return sorted(self._random.sample(range(total_steps), min(keep, total_steps)))

    def on_step_init(self, example_dict: Dict[str, Any], train: bool, step: int, total_steps: int) -> None:
        if self.track_epoch and self.selected_steps is None:
            self.selected_steps = self._select_steps(train, total_steps)

    def on_step_finished(self, example_dict: Dict[str, Any], model_dict: Dict[str, Any],
                         loss_dict: Dict[str, Any], train: bool, step: int, total_steps: int) -> None:
        if train:
            self.global_train_step += 1
            for key, value in loss_dict.items():
                summary.scalar(f"train/{key}", float(value.detach()) if torch.is_tensor(value) else float(value),
                               global_step=self.global_train_step)
        if not self.track_epoch:
            return
        if self.selected_steps is None:
            self.selected_steps = self._select_steps(train, total_steps)
        if step in self.selected_steps:
            image_step = self.global_train_step if train else self.epoch
            self.write_images(example_dict, model_dict, train, step, image_step)

    def on_epoch_finished(self, avg_loss_dict: Dict[str, float], train: bool, epoch: int,
                          total_epochs: int) -> None:
        if not train:
            for key, value in avg_loss_dict.items():
                summary.scalar(f"valid/{key}", float(value), global_step=epoch)

    @abc.abstractmethod
    def write_images(self, example_dict: Dict[str, Any], model_dict: Dict[str, Any], train: bool, step: int,
                     image_step: int) -> None:
        """Write the images of one selected step (batch element 0)."""


def _numbered_keys(dictionary: Dict[str, Any], prefix: str) -> Sequence[str]:
    """'<prefix><number>' keys in numeric order (input1, input2, ..., input10)."""
    keys = [k for k in dictionary if k.startswith(prefix) and k[len(prefix):].isdigit()]
    return sorted(keys, key=lambda k: int(k[len(prefix):]))


@VISUALIZERS.register("GoProVisualizer")
class GoProVisualizer(TrackedStepsVisualizer):
    """Deblurring progress in TensorBoard: inputs, ground truth, output, error map, mosaic, warped frames."""

    def __init__(self, args: argparse.Namespace, model_and_loss: Optional[torch.nn.Module] = None,
                 optimizer: Optional[torch.optim.Optimizer] = None, param_scheduler: Optional[Any] = None,
                 lr_scheduler: Optional[Any] = None, train_loader: Optional[Any] = None,
                 validation_loader: Optional[Any] = None, images_every_n_epochs: int = 5,
                 keep_num_training_steps: int = 30, keep_num_validation_steps: int = 30,
                 track_epochs: bool = False) -> None:
        super().__init__(args, images_every_n_epochs, keep_num_training_steps, keep_num_validation_steps,
                         track_epochs, train_loader)

    def write_images(self, example_dict: Dict[str, Any], model_dict: Dict[str, Any], train: bool, step: int,
                     image_step: int) -> None:
        prefix = f"{example_name(example_dict, step)}_{'train' if train else 'valid'}/"
        inputs = _numbered_keys(example_dict, "input")
        if "output1" not in model_dict or "target1" not in example_dict or not inputs:
            raise KeyError(f"GoProVisualizer needs input<i> and target1 in example_dict and output1 in "
                           f"model_dict; got {sorted(example_dict)} and {sorted(model_dict)}")
        for key in inputs:
            summary.image(prefix + key, _image(example_dict[key]), global_step=image_step)
        target = _image(example_dict["target1"])
        output = _image(model_dict["output1"])
        error = error_image(output, target)
        summary.image(prefix + "gt", target, global_step=image_step)
        summary.image(prefix + "output", output, global_step=image_step)
        summary.image(prefix + "error", error, global_step=image_step)
        reference = _image(example_dict[inputs[len(inputs) // 2]])
        summary.image(prefix + "summary", summary_mosaic(reference, target, error, output), global_step=image_step)
        for key in _numbered_keys(model_dict, "warped"):
            summary.image(prefix + key, _image(model_dict[key]), global_step=image_step)
