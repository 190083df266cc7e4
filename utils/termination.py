"""SIGTERM, as schedulers send it (SLURM, Kubernetes, torchrun forwarding its own), ends a run cleanly.

SLURM sends SIGTERM and SIGKILL about 30 s later. Inside an `interruptible()` block (the runtime's wait for a
batch and its forward/backward/optimizer step) the handler raises `Terminated` in the main thread at once, so
the run abandons the step in progress and stops with the records of its finished epochs. Anywhere else it only
records the signal, and the next `interruptible()` block (or the end of a `deferred()` one) raises: a
signal raised at an arbitrary bytecode could land in a library's constructor, a logging lock or a `__del__`
(where Python drops the exception and the run would go on). A checkpoint write is thus never cut, and
`deferred()` marks such writes explicitly.

Python runs signal handlers in the main thread between bytecodes, so a main thread blocked in C (a GPU
synchronisation waiting for an NCCL collective whose peers have already left) would never see the signal.
A watchdog thread, woken through `signal.set_wakeup_fd` even then, ends the process after `grace_s` if it
has not finished stopping by itself, before the scheduler's SIGKILL.
"""
import contextlib
import os
import signal
import threading
from typing import Any, Callable, Iterator, Optional

EXIT_CODE = 128 + signal.SIGTERM  # 143, what a shell reports for a process ended by SIGTERM
GRACE_SECONDS = 20.0  # SLURM's default KillWait is 30 s

_state: dict = {"received": None, "raised": False, "deferred": 0, "interruptible": 0, "pid": None}


class Terminated(BaseException):
    """Raised in the main thread when SIGTERM arrives (a BaseException: `except Exception` does not stop it)."""


def _handler(signum: int, frame: Any) -> None:
    if os.getpid() != _state["pid"]:  # a forked child (a DataLoader worker): ends as it would without the handler
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    _state["received"] = signum
    # A scheduler signals the whole job, so the DataLoader workers end on the same SIGTERM. PyTorch's SIGCHLD
    # handler would report each of them as a failed worker anywhere in the stopping code, even in an atexit
    # finalizer after the resume line. Their end is expected from now on (SIG_DFL, unlike SIG_IGN, reaps nothing).
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    if _state["interruptible"] and not _state["deferred"]:
        _raise_once()


def _raise_once() -> None:
    """Raise `Terminated` for the signal received, unless it was raised already (the run is stopping)."""
    if _state["received"] is not None and not _state["raised"]:
        _state["raised"] = True
        raise Terminated(f"received {signal.Signals(_state['received']).name}")


class _Watchdog:
    """Ends the process `grace_s` after SIGTERM unless `close` comes first; calls `on_stuck` before."""

    def __init__(self, grace_s: float, on_stuck: Callable[[], None]) -> None:
        self.grace_s = grace_s
        self.on_stuck = on_stuck
        self.done = threading.Event()
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.write_fd, False)
        self.previous_fd = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        self.thread = threading.Thread(target=self._watch, name="sigterm-watchdog", daemon=True)
        self.thread.start()

    def _watch(self) -> None:
        while True:  # the wakeup fd receives the number of every signal with a Python handler
            data = os.read(self.read_fd, 64)
            if self.done.is_set():
                return  # `close` woke it: the run ended
            if signal.SIGTERM in data:
                break
        if self.done.wait(self.grace_s):
            return
        try:
            self.on_stuck()
        finally:
            os._exit(EXIT_CODE)

    def close(self) -> None:
        self.done.set()
        signal.set_wakeup_fd(self.previous_fd)
        # A byte wakes the thread: closing the pipe would not, as forked DataLoader workers hold copies of it.
        os.write(self.write_fd, b"\0")
        self.thread.join()
        os.close(self.write_fd)
        os.close(self.read_fd)


def _after_fork_in_child() -> None:
    """A forked child (a DataLoader worker) gets SIGTERM's default action and no wakeup fd: a signal to it
    must neither raise `Terminated` there nor wake the parent's watchdog through the shared pipe."""
    if signal.getsignal(signal.SIGTERM) is _handler:
        with contextlib.suppress(ValueError):  # forked from another thread than the main one: nothing to reset
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)


os.register_at_fork(after_in_child=_after_fork_in_child)


def install(on_stuck: Optional[Callable[[], None]] = None, grace_s: float = GRACE_SECONDS) -> Any:
    """Let SIGTERM raise `Terminated` in the main thread (at once inside `interruptible()`, else at the next
    one; once: a second SIGTERM while stopping is ignored), and end the process `grace_s` after it (calling
    `on_stuck` first) if it is still running then.

    Returns what `uninstall` needs, or None outside the main thread (where Python allows no handler).
    """
    _state.update(received=None, raised=False, deferred=0, interruptible=0, pid=os.getpid())
    if threading.current_thread() is not threading.main_thread():
        return None
    previous = signal.signal(signal.SIGTERM, _handler)
    return previous, _Watchdog(grace_s, on_stuck or (lambda: None))


def uninstall(installed: Any) -> None:
    """Stop the watchdog and give SIGTERM the handler it had before `install` (nothing if `install` set none)."""
    if installed is not None:
        previous, watchdog = installed
        watchdog.close()
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
    if _state["deferred"] == 0:
        _raise_once()


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """A block that a SIGTERM abandons at once (raising `Terminated`); one that came before raises on entry.

    For the long work of a step: the wait for a batch and the model's computation, whose state a stopped
    run discards anyway. Not for code whose half-done state outlives the exception (files, locks, objects
    being built).
    """
    if _state["deferred"] == 0:
        _raise_once()
    _state["interruptible"] += 1
    try:
        yield
    finally:
        _state["interruptible"] -= 1
