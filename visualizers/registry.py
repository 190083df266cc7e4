"""The visualizer registry: `@VISUALIZERS.register("Name")` on a visualizer class."""
from utils.registry import Registry

VISUALIZERS: Registry = Registry("visualizer")
