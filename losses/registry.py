"""The loss registry: `@LOSSES.register("Name")` on a loss class."""
from utils.registry import Registry

LOSSES: Registry = Registry("loss")
