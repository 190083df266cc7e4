"""Losses: every implementation module is imported here so that it registers itself in LOSSES."""
from losses import (
    dbn_loss,  # noqa: F401
    multiscale_epe,  # noqa: F401
)
from losses.registry import LOSSES  # noqa: F401
