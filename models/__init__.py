"""Models: every implementation module is imported here so that it registers itself in MODELS."""
from models.registry import MODELS  # noqa: F401
from models import dbn  # noqa: F401
from models import flowdbn  # noqa: F401
from models import flownet1s  # noqa: F401
from models import pwcnet  # noqa: F401
