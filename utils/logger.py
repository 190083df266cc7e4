"""Logging: console, logbook file in plain text, indented blocks, progress bars.

The console adapts to where stdout goes: on a terminal, coloured messages and live tqdm bars; anywhere else
(a file, a pipe, CI, nohup, Slurm) or with TERM=dumb, plain lines without any escape code, a progress line
every constants.PROGRESS_PLAIN_INTERVAL_SECS and one line per finished pass. NO_COLOR turns colours off.

`block`, `value` and `values` are plain functions of this module (telegram's live in utils.telegram); nothing
here changes the standard `logging` module. `install_original_logging_helpers` is the opt-in compatibility shim
that adds the original framework's `logging.block/value/values/telegram/telegram_flush` for code written
against the original; main.py installs it for plug-ins, the project's own code never calls those names.
"""
import contextlib
import contextvars
import datetime
import logging
import os
import re
import sys
import time
from typing import Any, Dict, Iterator, List, Optional, TextIO

import colorama
import pytz
import tqdm

import constants

LOGBOOK = 1000  # level for records that go to the logbook only (tracebacks, progress-bar snapshots)
logging.addLevelName(LOGBOOK, "LOGBOOK")
# `progress` attribute of a progress line: a pass's state (logbook, and a console without bars) or an interim
# line every PROGRESS_PLAIN_INTERVAL_SECS (a console without bars only).
PROGRESS_FINAL = "final"
PROGRESS_INTERIM = "interim"

# Escape sequences: CSI (colours, cursor moves, line erases), OSC (titles), two-character ones, a lone ESC.
_ESCAPES = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[0-~])?")
# Depth of the `block`s being logged in this context (a run, a thread).
_indent: contextvars.ContextVar[int] = contextvars.ContextVar("log_indent", default=0)


def strip_colors(text: str) -> str:
    """Remove ANSI escape sequences (colours, cursor moves) and carriage returns: plain text for files."""
    return _ESCAPES.sub("", text).replace("\r", "")


def is_terminal(stream: Optional[TextIO]) -> bool:
    """Whether `stream` is a terminal that understands escape codes (not a file, a pipe, or TERM=dumb)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty is not None and isatty()) and os.environ.get("TERM") != "dumb"
    except ValueError:  # a closed stream
        return False


def use_colors(stream: Optional[TextIO]) -> bool:
    """Colours only on a terminal, and not when NO_COLOR is set to anything (https://no-color.org)."""
    return is_terminal(stream) and not os.environ.get("NO_COLOR")


def log_time_zone(name: Optional[str]) -> Optional[datetime.tzinfo]:
    """The zone of log timestamps: None (the machine's local time) or a tz database name like 'Europe/Berlin'."""
    if name is None:
        return None
    try:
        return pytz.timezone(name)
    except pytz.UnknownTimeZoneError:
        raise ValueError(f"constants.LOGGING_TIMEZONE={name!r} is not a time zone name; expected None (local "
                         f"time) or a tz database name such as 'Europe/Berlin'") from None


class _Formatter(logging.Formatter):
    """Timestamps in the constants.LOGGING_TIMEZONE zone (None: local time), messages indented by the block
    depth; without `colors` every escape sequence is removed, with `ascii_only` non-ASCII characters too."""

    def __init__(self, fmt: str, colors: bool, ascii_only: bool = False) -> None:
        super().__init__(fmt, datefmt=constants.LOGGING_TIMESTAMP_FORMAT)
        self._colors = colors
        self._ascii_only = ascii_only
        self._tz = log_time_zone(constants.LOGGING_TIMEZONE)

    def formatTime(self, record: logging.LogRecord, datefmt: Optional[str] = None) -> str:  # noqa: N802
        # astimezone(None) is the machine's local zone, with its daylight saving time.
        moment = datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).astimezone(self._tz)
        return moment.strftime(datefmt or constants.LOGGING_TIMESTAMP_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        record = logging.makeLogRecord(record.__dict__)
        record.msg = " " * getattr(record, "indent", 0) + str(record.msg)
        text = super().format(record)
        if not self._colors:
            text = strip_colors(text)
        if self._ascii_only:
            text = "".join(ch if ord(ch) < 128 else " " for ch in text)
        return text


class _IndentFilter(logging.Filter):
    """Stamps every record with the block indentation in force when it was logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "indent"):
            record.indent = _indent.get()
        return True


class _ConsoleHandler(logging.Handler):
    """sys.stdout as it is at each message: on a terminal, coloured and written through tqdm so that messages
    do not break the bars; elsewhere plain, flushed line by line (a log file is read while it grows), and
    with the progress lines that stand in for the bars. LOGBOOK records other than progress lines are dropped.
    """

    def __init__(self, level: int) -> None:
        super().__init__(level=level)
        dim, reset = colorama.Style.DIM + colorama.Fore.WHITE, colorama.Style.RESET_ALL
        self._colored = _Formatter(f"{dim}%(asctime)s{reset} %(message)s", colors=True)
        self._plain = _Formatter("%(asctime)s %(message)s", colors=False)

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stdout
        terminal = is_terminal(stream)
        progress = getattr(record, "progress", None)
        if (progress is None and record.levelno == LOGBOOK) or (progress is not None and terminal):
            return
        try:
            text = (self._colored if use_colors(stream) else self._plain).format(record)
            if terminal:
                tqdm.tqdm.write(text, file=stream)
            else:
                stream.write(text + "\n")
                stream.flush()
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
        # Interim progress lines are for consoles without bars; the logbook keeps each pass's final line.
        if not getattr(self, "_failed", False) and getattr(record, "progress", None) != PROGRESS_INTERIM:
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
    console = _ConsoleHandler(level=console_level)
    console.addFilter(_IndentFilter())
    root.addHandler(console)
    if logbook_filename is not None:
        attach_logbook(logbook_filename)
    elif keep_for_logbook:
        buffer = _Buffer()
        buffer.addFilter(_IndentFilter())
        root.addHandler(buffer)
    logging.captureWarnings(True)


def install_original_logging_helpers() -> None:
    """Opt-in shim: add the original's `logging.block/value/values/telegram/telegram_flush` for user code.

    Plug-ins written against the original framework call these as attributes of the standard module; the
    project's own code imports `block`, `value`, `values` from here and `send_message`, `flush` from
    utils.telegram instead. Installing twice is harmless (the same functions are set again).
    """
    from utils import telegram  # imported here: utils.telegram itself logs through the standard module

    logging.block = block
    logging.value = value
    logging.values = values
    logging.telegram = telegram.send_message
    logging.telegram_flush = telegram.flush


def attach_logbook(logbook_filename: str) -> None:
    """Start writing the logbook file, beginning with the records kept since `configure_logging`."""
    root = logging.getLogger()
    buffers = [handler for handler in root.handlers if isinstance(handler, _Buffer)]
    os.makedirs(os.path.dirname(os.path.abspath(logbook_filename)), exist_ok=True)
    logbook = _LogbookHandler(logbook_filename, mode="a", encoding="utf-8")
    logbook.setLevel(logging.INFO)
    logbook.setFormatter(_Formatter("[%(asctime)s] %(message)s", colors=False, ascii_only=True))
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


class _Discard:
    """A stream that writes nothing: where a bar draws when the console is not a terminal."""

    def write(self, text: str) -> None:
        """Drop `text`."""

    def flush(self) -> None:
        """Nothing to flush."""


def fit_postfix(head: str, postfix: str, width: Optional[int]) -> str:
    """`head` and as many leading ', '-separated postfix fields as fit in `width` columns, never a partial one.

    Dropped fields are marked by ', ...'; without `width` the whole line is kept. Only a head wider than
    `width` itself is cut.
    """
    fields: List[str] = [field for field in postfix.split(", ") if field] if postfix else []
    line = f"{head}  {', '.join(fields)}".rstrip()
    if width is None or len(line) <= width:
        return line
    for kept in range(len(fields) - 1, -1, -1):
        line = f"{head}  {', '.join(fields[:kept] + ['...'])}"
        if len(line) <= width:
            return line
    return head[:width]


class ProgressBar(tqdm.tqdm):
    """tqdm bar in the original's format whose state is mirrored into the logbook when a pass ends.

    On a terminal it draws as tqdm does, its postfix cut at a field boundary to the width (the first fields
    are kept: put the important ones there). Elsewhere it draws nothing and logs a plain progress line every
    constants.PROGRESS_PLAIN_INTERVAL_SECS; the final line is logged in both cases.
    """

    clock = staticmethod(time.monotonic)  # what eta_string measures with (tests replace it)

    def __init__(self, *args: Any, logbook_every_update: bool = False, **kwargs: Any) -> None:
        # Counted here, not by tqdm: a disabled bar (a process other than rank 0) counts nothing itself.
        self._eta_started = self.clock()
        self._eta_initial = kwargs.get("initial", 0)
        self._eta_done = 0
        kwargs.setdefault("ncols", constants.TQDM_NCOLS)
        kwargs.setdefault("dynamic_ncols", kwargs["ncols"] is None)
        kwargs.setdefault("smoothing", constants.TQDM_SMOOTHING)
        kwargs.setdefault("ascii", True)
        kwargs.setdefault("file", sys.stdout)
        kwargs.setdefault("leave", True)
        kwargs.setdefault("bar_format", "==> {desc}: {percentage:3.0f}% {n:>3}/{total:<3} {elapsed}<{remaining} "
                                        "{rate_fmt}  {postfix}")
        self.interactive = is_terminal(kwargs["file"])
        if not self.interactive:
            kwargs["file"] = _Discard()
        self._logbook_every_update = logbook_every_update
        self._last_plain_line = time.monotonic()
        super().__init__(*args, **kwargs)

    @staticmethod
    def format_meter(n: float, total: float, elapsed: float, ncols: Optional[int] = None,  # type: ignore[override]
                     postfix: Optional[str] = None, **kwargs: Any) -> str:
        """tqdm's line, with the postfix fitted to `ncols` by `fit_postfix` instead of cut mid-number."""
        head = tqdm.tqdm.format_meter(n, total, elapsed, ncols=None, postfix=None, **kwargs).rstrip()
        return fit_postfix(head, postfix or "", ncols)

    def line(self) -> str:
        """The bar's state as one plain line, whatever the width."""
        return strip_colors(self.format_meter(**{**self.format_dict, "ncols": None}))

    def update(self, n: float = 1) -> Optional[bool]:
        self._eta_done += n
        result = super().update(n)
        if self.disable:
            return result
        if self._logbook_every_update:
            self._log(PROGRESS_FINAL)
        elif not self.interactive and self.n < (self.total or float("inf")):
            now = time.monotonic()
            if now - self._last_plain_line >= constants.PROGRESS_PLAIN_INTERVAL_SECS:
                self._last_plain_line = now
                self._log(PROGRESS_INTERIM)
        return result

    def close(self) -> None:
        if not self.disable and not getattr(self, "_logged_close", False):
            self._logged_close = True
            if not self._logbook_every_update or getattr(self, "_logged_n", None) != self.n:
                self._log(PROGRESS_FINAL)
        super().close()

    def _log(self, progress: str) -> None:
        self._logged_n = self.n
        logging.log(LOGBOOK if progress == PROGRESS_FINAL else logging.INFO, self.line(),
                    extra={"progress": progress})

    def eta_string(self) -> str:
        """Remaining time as MMm:SSs, Hh:MMm or Dd:HHh, from the mean time per unit since the bar started.

        Not tqdm's rate: with constants.TQDM_SMOOTHING = 0 it is None (tqdm then averages only when drawing),
        and a disabled bar has none at all, so every ETA read 00m:00s.
        """
        if not self._eta_done or not self.total:
            return format_eta(0.0)
        left = self.total - self._eta_initial - self._eta_done
        return format_eta(left * (self.clock() - self._eta_started) / self._eta_done)


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
