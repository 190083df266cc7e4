"""Base class of runtime visualizers: hooks called by the training loop, no-ops by default."""
from typing import Any, Dict

import torch


class Visualizer(torch.nn.Module):
    """Receives every epoch's and step's dictionaries; subclasses override the hooks they need."""

    def on_input_baseline(self, baseline: Dict[str, float]) -> None:
        """Called once before the first epoch with the validation metrics of the unprocessed input."""

    def on_epoch_init(self, lr: Any, train: bool, epoch: int, total_epochs: int) -> None:
        """Called before a training or validation pass."""

    def on_step_init(self, example_dict: Dict[str, Any], train: bool, step: int, total_steps: int) -> None:
        """Called before each step."""

    def on_step_finished(self, example_dict: Dict[str, Any], model_dict: Dict[str, Any],
                         loss_dict: Dict[str, Any], train: bool, step: int, total_steps: int) -> None:
        """Called after each step."""

    def on_epoch_finished(self, avg_loss_dict: Dict[str, float], train: bool, epoch: int,
                          total_epochs: int) -> None:
        """Called after a pass with its average losses."""
