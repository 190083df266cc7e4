"""The runtime-augmentation registry: `@AUGMENTATIONS.register("Name")` on an augmentation class."""
from utils.registry import Registry

AUGMENTATIONS: Registry = Registry("augmentation")
