"""Losses, registered in LOSSES.

Every module of this folder is imported here, so a file dropped into it registers its classes with no
edit anywhere else; a module that fails to import stops the program with an error naming its file.
"""
from losses.registry import LOSSES  # noqa: F401
from utils.registry import import_package_modules

import_package_modules(__name__, __path__)
