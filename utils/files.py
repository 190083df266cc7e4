"""Writing run records safely: every file appears complete or not at all, under a temporary name of its own.

A temporary file is named `<name>.<random>.tmp` beside its destination, so two writers never share one,
and it is removed when its write fails. A failed write raises `WriteError`, one line that names the file
and the cause in words ("no space left on device") instead of what the writing library said.
"""
import contextlib
import errno
import functools
import os
import re
import shutil
import tempfile
from typing import Callable, Iterator, List, Optional, Tuple

from utils import run_folder

# What torch's zip writer says when the disk fills up: it reports its own stream position, not errno.
_DISK_FULL_MESSAGES = ("unexpected pos", "file write failed", "No space left on device")
# What temporary_path names: '<name>.<8 random characters of mkstemp>.tmp'.
_TEMPORARY_NAME = re.compile(r".+\.[a-z0-9_]{8}\.tmp")


def process_umask() -> int:
    """The process's umask, read without changing it: Linux's /proc/self/status, else once by `_umask_by_setting`."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _umask_by_setting()


@functools.lru_cache(maxsize=None)
def _umask_by_setting() -> int:
    # Elsewhere (no /proc, or a kernel before 4.7) os.umask is the only reader, and it sets the mask while it
    # reads it: done once, at the first record written, never at import.
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


class WriteError(OSError):
    """A record or checkpoint that could not be written; the message names the file and the cause."""


def describe_write_failure(error: BaseException, directory: str) -> str:
    """The cause of a failed write in words: 'no space left on device', 'permission denied', ..."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return "no space left on device"
    if isinstance(error, OSError) and error.errno == errno.EDQUOT:
        return "disk quota exceeded"
    if isinstance(error, OSError) and error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied" if error.errno != errno.EROFS else "read-only file system"
    text = str(error)
    if any(message in text for message in _DISK_FULL_MESSAGES):
        return "no space left on device"
    try:
        if shutil.disk_usage(directory).free < 1 << 20:  # a library that hides errno: judge by what is left
            return "no space left on device"
    except OSError:
        pass
    first_line = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__


def temporary_path(filename: str) -> str:
    """A new, empty file beside `filename` whose name no other writer uses."""
    directory, name = os.path.split(os.path.abspath(filename))
    handle, path = tempfile.mkstemp(prefix=f"{name}.", suffix=".tmp", dir=directory)
    os.close(handle)
    os.chmod(path, 0o666 & ~process_umask())  # mkstemp makes it owner-only; a record gets a new file's mode
    return path


def remove_quietly(path: str) -> None:
    """Remove a file if it exists."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


@contextlib.contextmanager
def staged(filenames: List[str]) -> Iterator[List[str]]:
    """Temporary paths for `filenames`; when the block succeeds, each replaces its destination in order.

    The destinations change only after every temporary file is complete, one rename after the other, so
    files that belong together (a checkpoint and its .json) disagree at most for the time between two
    renames. The replaced files are kept alive by a hard link until all renames are done: freeing a large
    old checkpoint inside a rename would otherwise widen that gap to milliseconds. When the block fails,
    the temporary files are removed and WriteError names the failing file.
    """
    for filename in filenames:
        run_folder.check_held_folders(filename)
    pairs: List[Tuple[str, str]] = []
    try:
        for filename in filenames:
            pairs.append((temporary_path(filename), filename))
        yield [temporary for temporary, _ in pairs]
    except BaseException as error:
        for temporary, _ in pairs:
            remove_quietly(temporary)
        if not isinstance(error, Exception) or isinstance(error, WriteError):  # interrupts, SIGTERM, exits
            raise
        what = filenames[0] + (f" (and {len(filenames) - 1} more files)" if len(filenames) > 1 else "")
        cause = describe_write_failure(error, os.path.dirname(os.path.abspath(filenames[0])))
        raise WriteError(f"cannot write {what}: {cause}") from error
    kept = [_keep_alive(filename) for _, filename in pairs]
    for temporary, filename in pairs:
        os.replace(temporary, filename)
    for link in kept:
        if link is not None:
            remove_quietly(link)


def _keep_alive(filename: str) -> Optional[str]:
    """A second, temporary name for an existing file (None where there is none or links are not supported)."""
    if not os.path.isfile(filename):
        return None
    try:  # an optimisation only: without the link (a full disk, no hard links) the renames still happen
        link = temporary_path(filename)
        os.remove(link)
        os.link(filename, link)
    except OSError:
        return None
    return link


def remove_stale_temporaries(folder: str) -> List[str]:
    """Remove the temporary files that writers killed in mid-write left in `folder` (call it holding the
    folder's lock, when no other writer can be at work there); returns their names."""
    removed = []
    for directory, _, names in os.walk(folder):
        for name in names:
            if _TEMPORARY_NAME.fullmatch(name):
                remove_quietly(os.path.join(directory, name))
                removed.append(os.path.relpath(os.path.join(directory, name), folder))
    return sorted(removed)


def make_folder(directory: str) -> None:
    """os.makedirs(exist_ok=True), unless `directory` lies in a locked run folder that was deleted."""
    run_folder.check_held_folders(directory)
    os.makedirs(directory, exist_ok=True)


def write_atomically(filename: str, write: Callable[[str], None]) -> None:
    """Call `write(temporary_path)`, then rename the finished file to `filename`."""
    with staged([filename]) as (temporary,):
        write(temporary)


def write_text(filename: str, text: str) -> None:
    """Write a text file atomically."""

    def write(path: str) -> None:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)

    write_atomically(filename, write)
