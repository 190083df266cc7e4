"""Losses: every implementation module is imported here so that it registers itself in LOSSES."""
from losses.registry import LOSSES  # noqa: F401
from losses import dbn_loss  # noqa: F401
from losses import multiscale_epe  # noqa: F401
