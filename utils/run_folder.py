"""The run folder (--save): checked before anything is written, and locked while a run writes into it.

Policy: one run per folder. A new run (not `--resume`) refuses a folder that already holds a run (its
checkpoints or per-epoch records), so the records and checkpoints of two runs never mix; `--resume=<folder>`
continues the run that is there. A second process on a folder that a run holds exits at once naming the
holder. The lock is a POSIX record lock on `<folder>/.lock`: the kernel drops it when its process ends,
however it ends, so a lock left by a killed run is taken over by the next one.
"""
import contextlib
import datetime
import fcntl
import glob
import json
import os
import socket
from typing import Dict, List, Optional

LOCK_FILENAME = ".lock"
_HELD: List["RunLock"] = []  # the locks this process holds: writes under their folders check they still exist


class RunFolderError(ValueError):
    """A run folder that cannot be used: not writable, held by another process, or holding another run."""


def check_writable(folder: str) -> None:
    """Raise RunFolderError unless `folder` is, or can be created as, a folder this process can write into."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise RunFolderError(f"--save={folder} is a file, not a folder: choose a folder for the run's records")
    existing = os.path.abspath(folder)
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise RunFolderError(f"--save={folder}: {existing} is a file, so the folder cannot be created there")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "the folder" if existing == os.path.abspath(folder) else f"its parent {existing}"
        raise RunFolderError(f"--save={folder}: cannot write into {what} (permission denied or read-only)")


def run_records(folder: str) -> List[str]:
    """The records that show `folder` holds a run: checkpoints and per-epoch CSV records (relative paths).

    A folder with only the arguments, logbook and partial records of a training run that ended before its
    first checkpoint holds nothing to lose, so a new run may take it.
    """
    escaped = glob.escape(folder)
    found = glob.glob(os.path.join(escaped, "*.ckpt"))
    if found or not _unfinished_training_run(folder):
        found += glob.glob(os.path.join(escaped, "csv", "*.csv"))
    return sorted(os.path.relpath(path, folder) for path in found if os.path.isfile(path))


def _unfinished_training_run(folder: str) -> bool:
    """A training run writes a checkpoint after every epoch: without one, its records are of an epoch that
    never finished (a new run rewrites them). Evaluation-only runs write records and no checkpoint."""
    try:
        with open(os.path.join(folder, "args.json"), encoding="utf-8") as handle:
            return json.load(handle).get("training_dataset") is not None
    except (OSError, ValueError, AttributeError):
        return False


def check_new_run(folder: str) -> None:
    """Raise RunFolderError if `folder` already holds a run (a new run must not mix its records into it)."""
    found = run_records(folder)
    if found:
        shown = ", ".join(found[:3]) + (", ..." if len(found) > 3 else "")
        raise RunFolderError(f"--save={folder} already holds a run ({shown}): continue it with --resume={folder}, "
                             f"or choose another --save")


class RunLock:
    """Exclusive lock of a run folder, held from `acquire` until `release` or the end of the process."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.filename = os.path.join(folder, LOCK_FILENAME)
        self._handle = None
        self._created = False

    def acquire(self) -> Optional[Dict[str, object]]:
        """Take the lock; returns the record of a holder that ended without releasing it (killed), else None.

        Raises RunFolderError naming the holder when another live process has the lock.
        """
        os.makedirs(self.folder, exist_ok=True)
        self._created = not os.path.exists(self.filename)
        handle = open(self.filename, "a+", encoding="utf-8")  # noqa: SIM115 -- held open while the run lasts
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            who = describe_holder(read_holder(handle))
            handle.close()
            raise RunFolderError(f"--save={self.folder} is in use by {who}: wait for that run to end, "
                                 f"or choose another --save") from None
        stale = read_holder(handle)
        write_holder(handle)
        self._handle = handle
        _HELD.append(self)
        return stale

    def check_present(self) -> None:
        """Raise RunFolderError if the folder was deleted (or replaced) since `acquire`: its lock file is gone."""
        try:
            present = os.path.samestat(os.fstat(self._handle.fileno()), os.stat(self.filename))
        except OSError:
            present = False
        if not present:
            raise RunFolderError(f"--save={self.folder} was deleted or replaced during the run (its {LOCK_FILENAME} "
                                 f"is gone): stopping, and writing nothing more there")

    def release(self, remove_if_created: bool = False) -> None:
        """Clear the holder record and unlock.

        The file stays (removing a lock file that others may open races with a new holder), except with
        `remove_if_created` for a run that failed to start, which leaves the folder as it found it.
        """
        if self._handle is None:
            return
        _HELD.remove(self)
        if remove_if_created and self._created:
            with contextlib.suppress(OSError):
                os.remove(self.filename)
        try:
            self._handle.seek(0)
            self._handle.truncate()
            self._handle.flush()
        except OSError:
            pass  # a full disk must not keep the lock: closing the file releases it all the same
        self._handle.close()
        self._handle = None


def check_held_folders(path: str) -> None:
    """Before writing `path`: raise RunFolderError if it lies in a run folder this process locked that was
    deleted since (the write would recreate part of it)."""
    path = os.path.abspath(path)
    for lock in _HELD:
        folder = os.path.abspath(lock.folder)
        if path == folder or path.startswith(folder + os.sep):
            lock.check_present()


def write_holder(handle) -> None:  # noqa: ANN001 -- a text file object
    """Record this process (pid, host, since) in a lock file it holds, replacing what was there."""
    handle.seek(0)
    handle.truncate()
    handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}))
    handle.flush()


def read_holder(handle) -> Optional[Dict[str, object]]:  # noqa: ANN001 -- a text file object
    """The holder (pid, host, since) a lock file records, or None when it records none readable."""
    handle.seek(0)
    try:
        holder = json.loads(handle.read() or "null")
    except ValueError:
        return None
    return holder if isinstance(holder, dict) else None


def describe_holder(holder: Optional[Dict[str, object]]) -> str:
    """'pid 1234 on host (since ...)' of a lock's holder ('another process' when unknown)."""
    if not holder:
        return "another process"
    return f"pid {holder.get('pid')} on {holder.get('host')} (since {holder.get('since')})"


def describe_stale_holder(holder: Dict[str, object]) -> str:
    """Log line for a lock taken over from a run that ended without releasing it."""
    return f"took over the lock of {describe_holder(holder)}, which ended without releasing it"
