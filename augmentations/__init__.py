"""Runtime augmentations (applied to whole batches on the device): imported here so they register."""
from augmentations import random_affine_flow  # noqa: F401
from augmentations.registry import AUGMENTATIONS  # noqa: F401
