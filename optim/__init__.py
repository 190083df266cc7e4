"""Optimizers (every torch.optim optimizer plus AdaBound) and LR schedulers (torch.optim.lr_scheduler)."""
import inspect

import torch

from optim import adabound  # noqa: F401  (registers AdaBound)
from optim.registry import LR_SCHEDULERS, OPTIMIZERS


def _register_torch_classes() -> None:
    for name, cls in sorted(vars(torch.optim).items()):
        if inspect.isclass(cls) and issubclass(cls, torch.optim.Optimizer) and cls is not torch.optim.Optimizer:
            OPTIMIZERS.register(name, cls)
    scheduler_module = torch.optim.lr_scheduler
    base_classes = (scheduler_module.LRScheduler, scheduler_module.ReduceLROnPlateau)
    for name, cls in sorted(vars(scheduler_module).items()):
        if (inspect.isclass(cls) and issubclass(cls, base_classes) and not name.startswith("_")
                and cls is not scheduler_module.LRScheduler and cls.__module__ == scheduler_module.__name__):
            LR_SCHEDULERS.register(name, cls)


_register_torch_classes()
