"""Visualizers: every implementation module is imported here so that it registers itself in VISUALIZERS."""
from visualizers import (
    flow_visualizer,  # noqa: F401
    gopro_inference,  # noqa: F401
    gopro_visualizer,  # noqa: F401
    visualizer,  # noqa: F401
)
from visualizers.registry import VISUALIZERS  # noqa: F401
