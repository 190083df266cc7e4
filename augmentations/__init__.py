"""Runtime augmentations (applied to whole batches on the device): imported here so they register."""
from augmentations.registry import AUGMENTATIONS  # noqa: F401
