"""The dataset registry: `@DATASETS.register("Name")` on a dataset class."""
from utils.registry import Registry

DATASETS: Registry = Registry("dataset")
