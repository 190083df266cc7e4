"""Visualizers: every implementation module is imported here so that it registers itself in VISUALIZERS."""
from visualizers.registry import VISUALIZERS  # noqa: F401
from visualizers import visualizer  # noqa: F401
from visualizers import flow_visualizer  # noqa: F401
from visualizers import gopro_inference  # noqa: F401
from visualizers import gopro_visualizer  # noqa: F401
