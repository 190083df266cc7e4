"""Logging: coloured console, logbook file without colour codes, indented blocks, progress bars.

`configure_logging` also installs `logging.block`, `logging.value`, `logging.values` and
`logging.telegram` so that code written for the original framework keeps working.
"""
import contextlib
import contextvars
import datetime
import logging
import os
import re
import sys
from typing import Any, Dict, Iterator, Optional

import colorama
import pytz
import tqdm

import constants

LOGBOOK = 1000  # level for records that go to the logbook only (progress-bar snapshots)
logging.addLevelName(LOGBOOK, "LOGBOOK")

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Depth of the `block`s being logged in this context (a run, a thread).
_indent: contextvars.ContextVar[int] = contextvars.ContextVar("log_indent", default=0)


def strip_colors(text: str) -> str:
    """Remove ANSI colour codes."""
    return _ANSI.sub("", text)


class _Formatter(logging.Formatter):
    """Timestamps in the constants.py timezone, messages indented by the current block depth."""

    def __init__(self, fmt: str, colors: bool) -> None:
        super().__init__(fmt, datefmt=constants.LOGGING_TIMESTAMP_FORMAT)
        self._colors = colors
        self._tz = pytz.timezone(constants.LOGGING_TIMEZONE)

    def formatTime(self, record: logging.LogRecord, datefmt: Optional[str] = None) -> str:  # noqa: N802
        moment = datetime.datetime.fromtimestamp(record.created, self._tz)
        return moment.strftime(datefmt or constants.LOGGING_TIMESTAMP_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        record = logging.makeLogRecord(record.__dict__)
        record.msg = " " * getattr(record, "indent", 0) + str(record.msg)
        text = super().format(record)
        if not self._colors:
            text = "".join(ch if ord(ch) < 128 else " " for ch in strip_colors(text))
        return text


class _IndentFilter(logging.Filter):
    """Stamps every record with the block indentation in force when it was logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "indent"):
            record.indent = _indent.get()
        return True


class _ConsoleHandler(logging.Handler):
    """Writes through tqdm so that messages do not break progress bars; drops LOGBOOK records."""

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == LOGBOOK:
            return
        try:
            tqdm.tqdm.write(self.format(record), file=sys.stdout)
        except Exception:  # noqa: BLE001 -- logging must never raise
            self.handleError(record)


class _LogbookHandler(logging.FileHandler):
    """The logbook file; if it cannot be written (full disk), says so once on stderr and stops writing."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802
        if getattr(self, "_failed", False):
            return
        self._failed = True
        error = sys.exc_info()[1]
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        sys.stderr.write(f"warning: cannot write the logbook {self.baseFilename} ({reason}); "
                         f"logging to the console only\n")

    def emit(self, record: logging.LogRecord) -> None:
        if not getattr(self, "_failed", False):
            super().emit(record)


class _Buffer(logging.Handler):
    """Keeps the records logged before the run folder exists, for the logbook once it does."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.records = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def configure_logging(logbook_filename: Optional[str] = None, console_level: int = logging.INFO,
                      keep_for_logbook: bool = False) -> None:
    """Console (INFO, coloured) and optionally a logbook file (everything, no colour codes).

    With `keep_for_logbook` (and no file yet), records are kept in memory until `attach_logbook` names the
    file, so that a run which fails before its folder is created writes nothing there.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.INFO)
    dim = colorama.Style.DIM + colorama.Fore.WHITE
    console = _ConsoleHandler(level=console_level)
    console.setFormatter(_Formatter(f"{dim}%(asctime)s{colorama.Style.RESET_ALL} %(message)s", colors=True))
    console.addFilter(_IndentFilter())
    root.addHandler(console)
    if logbook_filename is not None:
        attach_logbook(logbook_filename)
    elif keep_for_logbook:
        buffer = _Buffer()
        buffer.addFilter(_IndentFilter())
        root.addHandler(buffer)
    logging.captureWarnings(True)
    logging.block = block
    logging.value = value
    logging.values = values
    from utils import telegram  # the notifier lives there; imported late to avoid a cycle

    logging.telegram = telegram.send_message
    logging.telegram_flush = telegram.flush


def attach_logbook(logbook_filename: str) -> None:
    """Start writing the logbook file, beginning with the records kept since `configure_logging`."""
    root = logging.getLogger()
    buffers = [handler for handler in root.handlers if isinstance(handler, _Buffer)]
    os.makedirs(os.path.dirname(os.path.abspath(logbook_filename)), exist_ok=True)
    logbook = _LogbookHandler(logbook_filename, mode="a", encoding="utf-8")
    logbook.setLevel(logging.INFO)
    logbook.setFormatter(_Formatter("[%(asctime)s] %(message)s", colors=False))
    logbook.addFilter(_IndentFilter())
    for buffer in buffers:
        root.removeHandler(buffer)
        for record in buffer.records:
            logbook.handle(record)
    root.addHandler(logbook)


def discard_buffered_records() -> None:
    """Forget the records kept for a logbook that will not be written (a run that failed to start)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Buffer)]:
        root.removeHandler(handler)


@contextlib.contextmanager
def block(title: str, emph: bool = False) -> Iterator[None]:
    """Log '==> title' and indent everything logged inside the block."""
    style = colorama.Style.BRIGHT if emph else ""
    logging.info(f"{colorama.Fore.CYAN}==>{colorama.Style.RESET_ALL} {style}{title}{colorama.Style.RESET_ALL}")
    token = _indent.set(_indent.get() + constants.LOGGING_GLOBAL_INDENT)
    try:
        yield
    finally:
        _indent.reset(token)


def value(key: str, val: Any) -> None:
    """Log 'key' followed by the value in cyan."""
    logging.info(f"{key}{colorama.Fore.CYAN}{val}{colorama.Style.RESET_ALL}")


def values(dictionary: Dict[str, Any]) -> None:
    """Log sorted 'key: value' lines."""
    for key in sorted(dictionary):
        value(f"{key}: ", dictionary[key])


class ProgressBar(tqdm.tqdm):
    """tqdm bar in the original's format whose final state is mirrored into the logbook."""

    def __init__(self, *args: Any, logbook_every_update: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("ncols", constants.TQDM_NCOLS)
        kwargs.setdefault("smoothing", constants.TQDM_SMOOTHING)
        kwargs.setdefault("ascii", True)
        kwargs.setdefault("file", sys.stdout)
        kwargs.setdefault("leave", True)
        kwargs.setdefault(
            "bar_format",
            "==> {desc}: {percentage:3.0f}% {n:>3}/{total:<3} {elapsed}<{remaining} {rate_fmt}  {postfix}",
        )
        self._logbook_every_update = logbook_every_update
        super().__init__(*args, **kwargs)

    @staticmethod
    def format_meter(*args: Any, **kwargs: Any) -> str:
        """tqdm's line without the comma it puts before the postfix."""
        return tqdm.tqdm.format_meter(*args, **kwargs).replace("  , ", "  ", 1)

    def update(self, n: float = 1) -> Optional[bool]:
        result = super().update(n)
        if self._logbook_every_update:
            self._to_logbook()
        return result

    def close(self) -> None:
        if not self.disable and not getattr(self, "_logged_close", False):
            self._logged_close = True
            self._to_logbook()
        super().close()

    def _to_logbook(self) -> None:
        logging.log(LOGBOOK, strip_colors(str(self)))

    def eta_string(self) -> str:
        """Remaining time as MMm:SSs, Hh:MMm or Dd:HHh."""
        rate = self.format_dict.get("rate")
        remaining = (self.total - self.n) / rate if rate and self.total else 0.0
        return format_eta(remaining)


def format_eta(seconds: float) -> str:
    """Format seconds the way the original's ETA display does."""
    seconds = int(round(max(seconds, 0.0)))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days > 0:
        return f"{days}d:{hours:02d}h"
    if hours > 0:
        return f"{hours}h:{minutes:02d}m"
    return f"{minutes:02d}m:{secs:02d}s"
