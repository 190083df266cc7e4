"""Optimizers (every torch.optim optimizer plus AdaBound) and LR schedulers (torch.optim.lr_scheduler).

Every module of this folder is imported here, so that a file dropped into it registers its optimizers
or schedulers without an edit anywhere else (a module that fails to import stops, naming its file).
"""
import inspect

import torch

from optim.registry import LR_SCHEDULERS, OPTIMIZERS
from utils.registry import import_package_modules


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


import_package_modules(__name__, __path__)
_register_torch_classes()
