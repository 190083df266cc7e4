"""Module-level TensorBoard calls: `summary.scalar(tag, value)` writes to `<save>/tb` at the current epoch.

`open_writer` creates the writer; every `add_<x>` method of TensorBoard's SummaryWriter becomes
`summary.<x>`; a call without `global_step` uses the step set by `set_global_step` (the runtime sets
the epoch number at the start of every epoch).
"""
import functools
import logging
from typing import Any, Callable, Optional

from torch.utils.tensorboard import SummaryWriter

import constants

_writer: Optional[SummaryWriter] = None
_global_step = 0


def open_writer(logdir: str, flush_secs: int = constants.TENSORBOARD_FLUSH_SECS) -> SummaryWriter:
    """Open the TensorBoard writer that every summary call writes to."""
    global _writer
    close()
    _writer = SummaryWriter(log_dir=logdir, max_queue=10, flush_secs=flush_secs)
    logging.info("Tensorboard: logdir %s, flush_secs %d", logdir, flush_secs)
    return _writer


def close() -> None:
    """Flush and close the writer."""
    global _writer
    if _writer is not None:
        _writer.close()
        _writer = None


def flush() -> None:
    """Write pending events to disk."""
    if _writer is not None:
        _writer.flush()


def set_global_step(step: int) -> None:
    """Default step for calls that give none."""
    global _global_step
    _global_step = step


def _forward(method: str) -> Callable[..., None]:
    @functools.wraps(getattr(SummaryWriter, method))
    def call(*args: Any, **kwargs: Any) -> None:
        if _writer is None:
            return
        if "global_step" not in kwargs and len(args) < 3:
            kwargs["global_step"] = _global_step
        getattr(_writer, method)(*args, **kwargs)

    return call


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
