"""Datasets: every implementation module is imported here so that it registers itself in DATASETS."""
from datasets.registry import DATASETS  # noqa: F401
from datasets import gopro_common  # noqa: F401
from datasets import gopro_nah  # noqa: F401
from datasets import gopro_su  # noqa: F401
from datasets import flyingchairs  # noqa: F401
from datasets import sintel  # noqa: F401
