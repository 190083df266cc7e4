"""Evaluation metrics, registered in METRICS, computed per frame (see metrics/frame_metrics.py).

Every module of this folder is imported here, so a file dropped into it registers its metrics with no
edit anywhere else; a module that fails to import stops the program with an error naming its file.
"""
from metrics.registry import METRICS  # noqa: F401
from utils.registry import import_package_modules

import_package_modules(__name__, __path__)
