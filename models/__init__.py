"""Models: every implementation module is imported here so that it registers itself in MODELS."""
from models import (
    dbn,  # noqa: F401
    flowdbn,  # noqa: F401
    flownet1s,  # noqa: F401
    pwcnet,  # noqa: F401
)
from models.registry import MODELS  # noqa: F401
