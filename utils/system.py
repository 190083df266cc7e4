"""Source code snapshot (git hash, src.zip) and process titles."""
import os
import random
import subprocess
import zipfile
from typing import Iterable, List

REPOSITORY_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_EXTENSIONS = (".py", ".txt", ".md", ".sh", ".c", ".cpp", ".cu", ".cuh", ".h")
_SKIPPED_DIRECTORIES = {".git", "__pycache__", ".pytest_cache", "node_modules", ".venv", "venv", "env"}

_FANTASY_NAMES = ["Aelwyn", "Brannoc", "Caelith", "Dravenor", "Elowen", "Faelar", "Gwydion", "Halvard",
                  "Isolde", "Jorund", "Kaelen", "Lirael", "Morwen", "Nimue", "Orrin", "Peregrin",
                  "Quillon", "Rhiannon", "Sylvar", "Thalion", "Ulfric", "Vaelis", "Wystan", "Yrsa", "Zephyra"]


def git_hash(directory: str = REPOSITORY_ROOT) -> str:
    """`git rev-parse HEAD` of `directory`, or 'N/A'."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True,
                                timeout=10, check=True)
        return result.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "N/A"


def source_files(root: str = REPOSITORY_ROOT, exclude: Iterable[str] = ()) -> List[str]:
    """Source files under `root`: code only, never virtual envs, data, run folders or hidden folders."""
    excluded = {os.path.abspath(path) for path in exclude}
    files = []
    for directory, subdirectories, names in os.walk(root):
        subdirectories[:] = sorted(
            d for d in subdirectories
            if d not in _SKIPPED_DIRECTORIES and not d.startswith(".")
            and os.path.abspath(os.path.join(directory, d)) not in excluded
            and not os.path.exists(os.path.join(directory, d, "pyvenv.cfg"))
            and not os.path.exists(os.path.join(directory, d, "args.json")))  # other run folders
        files.extend(os.path.join(directory, n) for n in sorted(names) if n.endswith(SOURCE_EXTENSIONS))
    return files


def zip_source(filename: str, root: str = REPOSITORY_ROOT, exclude: Iterable[str] = ()) -> int:
    """Write the source files into `filename` as src/<relative path>; returns how many were stored."""
    files = source_files(root, exclude)
    with zipfile.ZipFile(filename, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, os.path.join("src", os.path.relpath(path, root)))
    return len(files)


def random_fantasy_name() -> str:
    """A random name for the process title."""
    return random.SystemRandom().choice(_FANTASY_NAMES)
