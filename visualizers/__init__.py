"""Visualizers: every implementation module is imported here so that it registers itself in VISUALIZERS."""
from visualizers.registry import VISUALIZERS  # noqa: F401
from visualizers import visualizer  # noqa: F401
