"""The model registry: `@MODELS.register("Name")` on a model class."""
from utils.registry import Registry

MODELS: Registry = Registry("model")
