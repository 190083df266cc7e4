"""TensorBoard for a run: a `RunSummary` object, and the original's module-level calls that write to it.

A run creates its `RunSummary` (the writer of `<save>/tb`) and hands it to the trainer; while the run
is active, `summary.scalar(tag, value)` and the other `summary.<x>` calls (every `add_<x>` method of
TensorBoard's SummaryWriter) write to that run's writer, and a call without `global_step` uses the
run's current epoch. Outside a run they do nothing. Which run is current is a context variable, so a
second run in the same process (or thread) never writes into the first one's events.
"""
import contextlib
import contextvars
import functools
import logging
from typing import Any, Callable, Dict, Iterator, List, Optional

from torch.utils.tensorboard import SummaryWriter

import constants


class RunSummary:
    """One run's TensorBoard writer and its default step (the epoch)."""

    def __init__(self, logdir: str, flush_secs: int = constants.TENSORBOARD_FLUSH_SECS) -> None:
        self.writer = SummaryWriter(log_dir=logdir, max_queue=10, flush_secs=flush_secs)
        self.global_step = 0
        logging.info("Tensorboard: logdir %s, flush_secs %d", logdir, flush_secs)

    def set_global_step(self, step: int) -> None:
        """Default step for calls that give none."""
        self.global_step = step

    def write(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Call the writer's `add_<x>` method, with the default step unless one is given."""
        if "global_step" not in kwargs and len(args) < 3:
            kwargs["global_step"] = self.global_step
        getattr(self.writer, method)(*args, **kwargs)

    def flush(self) -> None:
        """Write pending events to disk."""
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the writer."""
        self.writer.close()


_current: contextvars.ContextVar[Optional[RunSummary]] = contextvars.ContextVar("run_summary", default=None)


def current() -> Optional[RunSummary]:
    """The summary of the active run (None outside a run)."""
    return _current.get()


@contextlib.contextmanager
def active(run_summary: Optional[RunSummary]) -> Iterator[Optional[RunSummary]]:
    """Make `run_summary` the target of the module-level calls inside the block."""
    token = _current.set(run_summary)
    try:
        yield run_summary
    finally:
        _current.reset(token)


def _forward(method: str) -> Callable[..., None]:
    @functools.wraps(getattr(SummaryWriter, method))
    def call(*args: Any, **kwargs: Any) -> None:
        run_summary = _current.get()
        if run_summary is not None:
            run_summary.write(method, *args, **kwargs)

    return call


def custom_scalars(layout: Dict[str, Dict[str, List[Any]]]) -> None:
    """The Custom Scalars dashboard's charts (SummaryWriter.add_custom_scalars, which takes no step)."""
    run_summary = _current.get()
    if run_summary is not None:
        run_summary.writer.add_custom_scalars(layout)


scalar = _forward("add_scalar")
scalars = _forward("add_scalars")
image = _forward("add_image")
images = _forward("add_images")
histogram = _forward("add_histogram")
figure = _forward("add_figure")
text = _forward("add_text")
video = _forward("add_video")
audio = _forward("add_audio")
embedding = _forward("add_embedding")
mesh = _forward("add_mesh")
pr_curve = _forward("add_pr_curve")
image_with_boxes = _forward("add_image_with_boxes")
