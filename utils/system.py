"""Source code snapshot (git hash, src.zip), process titles and the CPUs available."""
import os
import random
import subprocess
import zipfile
from typing import Dict, Iterable, List, Optional, Set, Tuple

from utils import files

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


def _git_files(root: str) -> Optional[List[str]]:
    """Files git tracks under `root`, plus those it would track (untracked, not ignored); None outside git."""
    try:
        result = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                                capture_output=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    names = [name for name in result.stdout.decode("utf-8", "surrogateescape").split("\0") if name]
    return [os.path.join(root, name) for name in names]


def _inside_run_folder(path: str, root: str, excluded: Set[str], known: Dict[str, bool]) -> bool:
    """Whether a folder between `root` and `path` is excluded or is a run folder (holds args.json)."""
    folder = os.path.dirname(path)
    while folder.startswith(root + os.sep):
        if folder not in known:
            known[folder] = folder in excluded or os.path.isfile(os.path.join(folder, "args.json"))
        if known[folder]:
            return True
        folder = os.path.dirname(folder)
    return False


def source_files(root: str = REPOSITORY_ROOT, exclude: Iterable[str] = ()) -> List[str]:
    """Source files under `root`: code only, never virtual envs, data, run folders or hidden folders.

    In a git checkout these are the source files git tracks or would track (so a token file or notes that
    .gitignore keeps out stay out); elsewhere every source file outside skipped folders.
    """
    excluded = {os.path.abspath(path) for path in exclude}
    tracked = _git_files(root)
    if tracked is not None:
        run_folders: Dict[str, bool] = {}
        return sorted(path for path in tracked
                      if path.endswith(SOURCE_EXTENSIONS) and os.path.isfile(path)
                      and not _inside_run_folder(os.path.abspath(path), os.path.abspath(root), excluded, run_folders))
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
    sources = source_files(root, exclude)

    def write(path: str) -> None:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            for source in sources:
                archive.write(source, os.path.join("src", os.path.relpath(source, root)))

    files.write_atomically(filename, write)
    return len(sources)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask: what taskset, Slurm or a container grant), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1


def loader_workers(requested: int, processes: int = 1) -> Tuple[int, str]:
    """How many of `requested` DataLoader workers to start, and the note saying why when fewer.

    A machine's CPUs are shared by the `processes` training processes on it (torchrun's local world size),
    each with its own workers: 8 processes with 12 workers each on 16 CPUs would start 96 workers, each
    decoding frames in parallel with the others and with the training processes themselves.
    """
    cpus = available_cpus()
    share = max(1, cpus // max(processes, 1))
    workers = min(requested, share)
    if workers == requested:
        return workers, ""
    if processes > 1:
        return workers, f" ({requested} requested, {cpus} CPUs for {processes} processes on this machine)"
    return workers, f" ({requested} requested, {cpus} CPUs)"


def random_fantasy_name() -> str:
    """A random name for the process title."""
    return random.SystemRandom().choice(_FANTASY_NAMES)
