"""Datasets: every implementation module is imported here so that it registers itself in DATASETS."""
from datasets import (
    flyingchairs,  # noqa: F401
    gopro_common,  # noqa: F401
    gopro_nah,  # noqa: F401
    gopro_su,  # noqa: F401
    sintel,  # noqa: F401
)
from datasets.registry import DATASETS  # noqa: F401
