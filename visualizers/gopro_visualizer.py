"""TensorBoard while training a deblurring model (spec §7.3): scalars every step and epoch, images of
chosen steps of tracked epochs.

What a run shows, and on which step axis (TensorBoard groups tags into sections by their first '/' part):
* `train/<key>`: every training step's losses, at the global training step (the only per-step section).
* `train_epoch/<key>`, `valid/<key>`: the epoch averages of training and validation, at the epoch.
* `valid/<key>_input_baseline`: the unprocessed input's value (utils/baseline.py), at every epoch, so that
  it draws a flat line; the Custom Scalars dashboard shows each key with its baseline in one chart.
* `lr/group<i>`: the learning rate of parameter group i (0 is the first --optimizer_group, the last is
  every other parameter), at the epoch.
* Images in two sections, `train_images` and `valid_images`: `<section>/<slot>/<image>` for the slot-th
  chosen step (00, 01, ...), at the global training step (training) or the epoch (validation); the same
  validation steps are chosen every epoch, so a slot's slider shows one example's progress. The text
  `<section>/examples` names each slot's example.

Deviations from the original, on purpose:
* The learning rate is written whether or not there is an LR scheduler (the original crashed without one),
  per parameter group, in a per-epoch section of its own (the original's `train/lr` was group 0's only).
* All N input frames and every `warped<i>` the model returns are shown, so N=7 works (the original
  always showed input1..input5 and crashed on the missing `warped4` for N=7).
* The summary mosaic shows the reference frame (input3 for N=5, input4 for N=7).
* Error maps carry a colour bar labelled with the squared error of its ends.
* Image tags do not name the example (the original's made new sections every epoch).
* Steps are drawn from a private random generator, so visualizing does not change the training's
  random stream.
"""
import abc
import argparse
import functools
import random
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from contrib.colormap import colorize, colorize_normalized
from utils import summary
from visualizers.registry import VISUALIZERS
from visualizers.visualizer import Visualizer

COLOUR_BAR_WIDTH = 48  # pixels: an 8-pixel scale and its labels
LABEL_HEIGHT = 11  # pixels of one line of PIL's default font


def _learning_rates(lr: Any) -> List[float]:
    """The learning rate of every parameter group ([] without optimizer)."""
    if lr is None:
        return []
    return [float(rate) for rate in lr] if isinstance(lr, (list, tuple)) else [float(lr)]


def _image(tensor: torch.Tensor) -> torch.Tensor:
    """Batch element 0 as a CPU (C, H, W) float image clamped to [0, 1]."""
    return tensor[0].detach().float().clamp(0.0, 1.0).cpu()


def example_name(example_dict: Dict[str, Any], step: int) -> str:
    """'<sequence>_<frame>' of batch element 0 (basename with '/' replaced), or 'step<k>' without names."""
    names = example_dict.get("basename")
    if isinstance(names, (list, tuple)) and names:
        return str(names[0]).replace("/", "_")
    return f"step{step}"


def squared_error(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel squared error summed over channels → (1, H, W)."""
    return ((output.float() - target.float()) ** 2).sum(dim=0, keepdim=True)


def error_image(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-pixel squared error summed over channels, min-max normalised, jet-coloured → uint8 (3, H, W)."""
    colored = colorize_normalized(squared_error(output, target))[0]
    return (colored * 255.0).round().to(torch.uint8)


@functools.lru_cache(maxsize=1)
def _font():  # noqa: ANN202 -- a PIL font, imported on first use
    from PIL import ImageFont

    return ImageFont.load_default()


def colour_bar(height: int, low: float, high: float) -> torch.Tensor:
    """A vertical jet scale, `high` at the top and `low` at the bottom, both written beside it (only `high`
    when the image is too short for two labels) → uint8 (3, height, COLOUR_BAR_WIDTH) on white."""
    from PIL import Image, ImageDraw

    ramp = torch.linspace(1.0, 0.0, height, dtype=torch.float64).view(height, 1).expand(height, 8)
    canvas = np.full((height, COLOUR_BAR_WIDTH, 3), 255, dtype=np.uint8)
    canvas[:, 2:10] = (colorize(ramp) * 255.0).round().to(torch.uint8).numpy()
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    draw.text((12, 0), f"{high:.2g}", fill=(0, 0, 0), font=_font())
    if height >= 2 * LABEL_HEIGHT + 2:
        draw.text((12, height - LABEL_HEIGHT), f"{low:.2g}", fill=(0, 0, 0), font=_font())
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()


def with_colour_bar(image: torch.Tensor, error: torch.Tensor) -> torch.Tensor:
    """A uint8 (3, H, W) or float image with the colour bar of `error`'s range appended on the right → uint8."""
    if image.is_floating_point():
        image = (image.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    bar = colour_bar(image.size(1), float(error.min()), float(error.max()))
    return torch.cat([image, bar], dim=2)


def error_with_scale(output: torch.Tensor, target: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """(error image with its colour bar, the squared error map it shows)."""
    error = squared_error(output, target)
    colored = (colorize_normalized(error)[0] * 255.0).round().to(torch.uint8)
    return with_colour_bar(colored, error), error


def summary_mosaic(reference: torch.Tensor, target: torch.Tensor, error: torch.Tensor,
                   output: torch.Tensor) -> torch.Tensor:
    """[reference | ground truth ; error | output] at half resolution (nearest), float (3, H, W)."""
    top = torch.cat([reference, target], dim=2)
    bottom = torch.cat([error.float() / 255.0, output], dim=2)
    return torch.cat([top, bottom], dim=1)[:, ::2, ::2].contiguous()


class TrackedStepsVisualizer(Visualizer, abc.ABC):
    """Writes the scalars of the module docstring; subclasses add images for `keep_num_*_steps` chosen
    steps of every tracked epoch via `write_images` (random training steps, the same validation steps
    every epoch).

    Args:
        images_every_n_epochs: write images in every n-th epoch.
        keep_num_training_steps: training steps with images in such an epoch, drawn at random.
        keep_num_validation_steps: validation steps with images in such an epoch (the same ones every epoch).
        track_epochs: write images in epochs 1 and 2 as well.
    """

    def __init__(self, images_every_n_epochs: int, keep_num_training_steps: int, keep_num_validation_steps: int,
                 track_epochs: bool, train_loader: Optional[Any] = None, *, start_epoch: int = 1,
                 seed: Optional[int] = None) -> None:
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
        self.global_train_step = (start_epoch - 1) * len(train_loader) if train_loader is not None else 0
        self.epoch = 0
        self.track_epoch = False
        self.selected_steps: Optional[List[int]] = None
        self._validation_steps: Dict[int, List[int]] = {}  # by the number of validation steps
        self._examples: List[str] = []  # the example of every slot written in this pass
        self.input_baseline: Dict[str, float] = {}
        self._random = random.Random(seed if seed is not None else 0)

    def is_tracked(self, epoch: int) -> bool:
        """Images in epochs 1 and 2 (with track_epochs) and in every images_every_n_epochs-th epoch."""
        return (self.track_epochs and epoch <= 2) or epoch % self.images_every_n_epochs == 0

    def on_input_baseline(self, baseline: Dict[str, float]) -> None:
        """Keep the input's validation metrics; lay out each key beside its baseline (Custom Scalars)."""
        self.input_baseline = dict(baseline)
        charts = {key: ["Multiline", [f"valid/{key}", f"valid/{key}_input_baseline"]] for key in baseline}
        if charts:
            summary.custom_scalars({"validation vs input": charts})

    def on_epoch_init(self, lr: Any, train: bool, epoch: int, total_epochs: int) -> None:
        self.epoch = epoch
        if train:
            for index, rate in enumerate(_learning_rates(lr)):
                summary.scalar(f"lr/group{index}", rate, global_step=epoch)
        self.track_epoch = self.is_tracked(epoch)
        self.selected_steps = None
        self._examples = []

    def _select_steps(self, train: bool, total_steps: int) -> List[int]:
        if train:
            return sorted(self._random.sample(range(total_steps), min(self.keep_num_training_steps, total_steps)))
        if total_steps not in self._validation_steps:  # chosen once: a slot shows one example every epoch
            keep = min(self.keep_num_validation_steps, total_steps)
            self._validation_steps[total_steps] = sorted(self._random.sample(range(total_steps), keep))
        return self._validation_steps[total_steps]

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
            prefix = f"{image_section(train)}/{len(self._examples):02d}/"
            self._examples.append(example_name(example_dict, step))
            self.write_images(example_dict, model_dict, train, prefix, image_step)
            summary.text(f"{image_section(train)}/examples",
                         "  \n".join(f"{slot:02d}: {name}" for slot, name in enumerate(self._examples)),
                         global_step=image_step)

    def on_epoch_finished(self, avg_loss_dict: Dict[str, float], train: bool, epoch: int,
                          total_epochs: int) -> None:
        section = "train_epoch" if train else "valid"
        for key, value in avg_loss_dict.items():
            summary.scalar(f"{section}/{key}", float(value), global_step=epoch)
            if not train and key in self.input_baseline:
                summary.scalar(f"valid/{key}_input_baseline", self.input_baseline[key], global_step=epoch)

    @abc.abstractmethod
    def write_images(self, example_dict: Dict[str, Any], model_dict: Dict[str, Any], train: bool, prefix: str,
                     image_step: int) -> None:
        """Write the images of one selected step (batch element 0) under the tag `prefix` + name."""


def image_section(train: bool) -> str:
    """The TensorBoard section of training or validation images."""
    return "train_images" if train else "valid_images"


def _numbered_keys(dictionary: Dict[str, Any], prefix: str) -> Sequence[str]:
    """'<prefix><number>' keys in numeric order (input1, input2, ..., input10)."""
    keys = [k for k in dictionary if k.startswith(prefix) and k[len(prefix):].isdigit()]
    return sorted(keys, key=lambda k: int(k[len(prefix):]))


@VISUALIZERS.register("GoProVisualizer")
class GoProVisualizer(TrackedStepsVisualizer):
    """Deblurring progress in TensorBoard: inputs, ground truth, output, error map, mosaic, warped frames."""

    def __init__(self, args: Optional[argparse.Namespace] = None, model_and_loss: Optional[torch.nn.Module] = None,
                 optimizer: Optional[torch.optim.Optimizer] = None, param_scheduler: Optional[Any] = None,
                 lr_scheduler: Optional[Any] = None, train_loader: Optional[Any] = None,
                 validation_loader: Optional[Any] = None, images_every_n_epochs: int = 5,
                 keep_num_training_steps: int = 30, keep_num_validation_steps: int = 30,
                 track_epochs: bool = False, *, start_epoch: int = 1, seed: Optional[int] = None) -> None:
        """Keyword-only parameters make no flags: main.py passes the run's first epoch and --seed."""
        super().__init__(images_every_n_epochs, keep_num_training_steps, keep_num_validation_steps,
                         track_epochs, train_loader, start_epoch=start_epoch, seed=seed)

    def write_images(self, example_dict: Dict[str, Any], model_dict: Dict[str, Any], train: bool, prefix: str,
                     image_step: int) -> None:
        inputs = _numbered_keys(example_dict, "input")
        if "output1" not in model_dict or "target1" not in example_dict or not inputs:
            raise KeyError(f"GoProVisualizer needs input<i> and target1 in example_dict and output1 in "
                           f"model_dict; got {sorted(example_dict)} and {sorted(model_dict)}")
        for key in inputs:
            summary.image(prefix + key, _image(example_dict[key]), global_step=image_step)
        target = _image(example_dict["target1"])
        output = _image(model_dict["output1"])
        error, squared = error_with_scale(output, target)
        summary.image(prefix + "gt", target, global_step=image_step)
        summary.image(prefix + "output", output, global_step=image_step)
        summary.image(prefix + "error", error, global_step=image_step)
        reference = _image(example_dict[inputs[len(inputs) // 2]])
        mosaic = summary_mosaic(reference, target, error_image(output, target), output)
        summary.image(prefix + "summary", with_colour_bar(mosaic, squared), global_step=image_step)
        for key in _numbered_keys(model_dict, "warped"):
            summary.image(prefix + key, _image(model_dict[key]), global_step=image_step)
