"""SIGTERM, as schedulers send it (SLURM, Kubernetes, torchrun forwarding its own), ends a run cleanly.

SLURM sends SIGTERM and SIGKILL about 30 s later. The handler abandons the step in progress by raising
`Terminated` in the main thread, so the run stops at once with the records of its finished epochs; a
checkpoint write in progress is not cut: `deferred()` holds the signal back until the write is complete.
"""
import contextlib
import os
import signal
import threading
from typing import Any, Iterator, Optional

EXIT_CODE = 128 + signal.SIGTERM  # 143, what a shell reports for a process ended by SIGTERM

_state = {"received": None, "raised": False, "deferred": 0, "pid": None}


class Terminated(BaseException):
    """Raised in the main thread when SIGTERM arrives (a BaseException: `except Exception` does not stop it)."""


def _handler(signum: int, frame: Any) -> None:
    if os.getpid() != _state["pid"]:  # a forked child (a DataLoader worker): ends as it would without the handler
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _state["received"] = signum
    if _state["deferred"] == 0 and not _state["raised"]:
        _state["raised"] = True
        raise Terminated(f"received {signal.Signals(signum).name}")


def install() -> Any:
    """Let SIGTERM raise `Terminated` in the main thread (once: a second SIGTERM while stopping is ignored);
    returns the previous handler, for `uninstall`, or None outside the main thread (where Python allows none)."""
    _state.update(received=None, raised=False, deferred=0, pid=os.getpid())
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _handler)


def uninstall(previous: Any) -> None:
    """Give SIGTERM the handler it had before `install` (nothing if `install` set none)."""
    if previous is not None:
        signal.signal(signal.SIGTERM, previous)


def received() -> Optional[int]:
    """The signal received since `install` (None if none)."""
    return _state["received"]


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGTERM back for the block (a checkpoint write completes); raise `Terminated` after it if one came."""
    _state["deferred"] += 1
    try:
        yield
    finally:
        _state["deferred"] -= 1
    if _state["deferred"] == 0 and _state["received"] is not None and not _state["raised"]:
        _state["raised"] = True
        raise Terminated(f"received {signal.Signals(_state['received']).name}")
