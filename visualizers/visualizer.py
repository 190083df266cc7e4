"""Base class of runtime visualizers: hooks of the training loop (hooks.HookBase), no-ops by default.

A visualizer keeps the original's method names (spec 7.1): the loop's pass and step events reach
`on_epoch_init`, `on_step_init`, `on_step_finished` and `on_epoch_finished`, whose defaults dispatch to
no-op `on_train_*` / `on_valid_*` methods, so a visualizer written against the original plugs in unchanged.
"""
from typing import Any, Dict

import torch

from hooks import HookBase


class Visualizer(torch.nn.Module, HookBase):
    """Receives every epoch's and step's dictionaries; subclasses override the methods they need.

    Its `state_dict` is the module's (parameters and buffers): one that has some is saved with the run state.
    """

    # ---- the hook events, routed to the original's method names
    def after_input_baseline(self, baseline: Dict[str, float]) -> None:
        """See `on_input_baseline`."""
        self.on_input_baseline(baseline)

    def before_pass(self, lr: Any, train: bool, epoch: int, total_epochs: int) -> None:
        """See `on_epoch_init`."""
        self.on_epoch_init(lr, train, epoch, total_epochs)

    def after_pass(self, avg_loss_dict: Dict[str, float], train: bool, epoch: int, total_epochs: int) -> None:
        """See `on_epoch_finished`."""
        self.on_epoch_finished(avg_loss_dict, train, epoch, total_epochs)

    def before_step(self, example_dict: Dict[str, Any], train: bool, step: int, total_steps: int) -> None:
        """See `on_step_init`."""
        self.on_step_init(example_dict, train, step, total_steps)

    def after_step(self, example_dict: Dict[str, Any], model_dict: Dict[str, Any], loss_dict: Dict[str, Any],
                   train: bool, step: int, total_steps: int) -> None:
        """See `on_step_finished`."""
        self.on_step_finished(example_dict, model_dict, loss_dict, train, step, total_steps)

    # ---- the original's API
    def on_input_baseline(self, baseline: Dict[str, float]) -> None:
        """Called once before the first epoch with the validation metrics of the unprocessed input."""

    def on_epoch_init(self, lr: Any, train: bool, epoch: int, total_epochs: int) -> None:
        """Called before a training or validation pass."""
        if train:
            self.on_train_epoch_init(lr, epoch, total_epochs)
        else:
            self.on_valid_epoch_init(lr, epoch, total_epochs)

    def on_step_init(self, example_dict: Dict[str, Any], train: bool, step: int, total_steps: int) -> None:
        """Called before each step."""
        if train:
            self.on_train_step_init(example_dict, step, total_steps)
        else:
            self.on_valid_step_init(example_dict, step, total_steps)

    def on_step_finished(self, example_dict: Dict[str, Any], model_dict: Dict[str, Any],
                         loss_dict: Dict[str, Any], train: bool, step: int, total_steps: int) -> None:
        """Called after each step."""
        if train:
            self.on_train_step_finished(example_dict, model_dict, loss_dict, step, total_steps)
        else:
            self.on_valid_step_finished(example_dict, model_dict, loss_dict, step, total_steps)

    def on_epoch_finished(self, avg_loss_dict: Dict[str, float], train: bool, epoch: int,
                          total_epochs: int) -> None:
        """Called after a pass with its average losses."""
        if train:
            self.on_train_epoch_finished(avg_loss_dict, epoch, total_epochs)
        else:
            self.on_valid_epoch_finished(avg_loss_dict, epoch, total_epochs)

    def on_train_epoch_init(self, lr: Any, epoch: int, total_epochs: int) -> None:
        """Before a training pass (the default `on_epoch_init`'s target)."""

    def on_valid_epoch_init(self, lr: Any, epoch: int, total_epochs: int) -> None:
        """Before a validation pass."""

    def on_train_step_init(self, example_dict: Dict[str, Any], step: int, total_steps: int) -> None:
        """Before a training step."""

    def on_valid_step_init(self, example_dict: Dict[str, Any], step: int, total_steps: int) -> None:
        """Before a validation step."""

    def on_train_step_finished(self, example_dict: Dict[str, Any], model_dict: Dict[str, Any],
                               loss_dict: Dict[str, Any], step: int, total_steps: int) -> None:
        """After a training step."""

    def on_valid_step_finished(self, example_dict: Dict[str, Any], model_dict: Dict[str, Any],
                               loss_dict: Dict[str, Any], step: int, total_steps: int) -> None:
        """After a validation step."""

    def on_train_epoch_finished(self, avg_loss_dict: Dict[str, float], epoch: int, total_epochs: int) -> None:
        """After a training pass."""

    def on_valid_epoch_finished(self, avg_loss_dict: Dict[str, float], epoch: int, total_epochs: int) -> None:
        """After a validation pass."""
