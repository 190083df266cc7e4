"""The metric registry: `@METRICS.register("name")` on a per-frame evaluation metric class."""
from utils.registry import Registry

METRICS: Registry = Registry("metric")
