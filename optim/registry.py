"""Optimizer and LR-scheduler registries."""
from utils.registry import Registry

OPTIMIZERS: Registry = Registry("optimizer")
LR_SCHEDULERS: Registry = Registry("lr_scheduler")
