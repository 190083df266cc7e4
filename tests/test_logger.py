"""The console and the logbook: terminal or not, colours, progress lines, fitted postfixes, log time zone."""
import io
import logging
import re
import sys
import time

import pytest

import constants
from utils import logger
from utils.logger import ProgressBar, block, configure_logging, fit_postfix, is_terminal, use_colors

POSTFIX = "total_loss_avg=24511.2437, psnr_avg=9.8709, psnr_rgb_avg=6.7844, ssim_avg=0.0664"
HEAD = "==> Train:  25%   1/4   00:01<00:04  1.53s/it"


class FakeStream(io.StringIO):
    """A stdout that says whether it is a terminal."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        return self.tty


def _console(monkeypatch, tty: bool) -> FakeStream:
    """sys.stdout replaced by a FakeStream, logging configured on it (in the test itself: pytest's capture
    sets sys.stdout again between a fixture and the test)."""
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.delenv("NO_COLOR", raising=False)
    stream = FakeStream(tty=tty)
    monkeypatch.setattr(sys, "stdout", stream)
    configure_logging(None)
    return stream


@pytest.fixture(autouse=True)
def fresh_logging():
    """Every test ends with the default console."""
    yield
    configure_logging(None)


def test_is_terminal_and_use_colors(monkeypatch):
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert is_terminal(FakeStream(tty=True)) and use_colors(FakeStream(tty=True))
    assert not is_terminal(FakeStream(tty=False)) and not use_colors(FakeStream(tty=False))
    assert not is_terminal(None) and not is_terminal(object())
    closed = FakeStream(tty=True)
    closed.close()
    assert not is_terminal(closed)
    monkeypatch.setenv("NO_COLOR", "")  # https://no-color.org: only a non-empty value counts
    assert use_colors(FakeStream(tty=True))
    monkeypatch.setenv("NO_COLOR", "1")
    assert is_terminal(FakeStream(tty=True)) and not use_colors(FakeStream(tty=True))
    monkeypatch.setenv("TERM", "dumb")
    assert not is_terminal(FakeStream(tty=True))


def test_strip_colors_removes_every_escape_sequence():
    text = "\x1b[2m\x1b[37mtime\x1b[0m \x1b[36m==>\x1b[0m x\r\x1b[A\x1b[2K\x1b]0;title\x07y\x1b7\x1b"
    assert logger.strip_colors(text) == "time ==> xy"


def test_fit_postfix_keeps_whole_fields_in_order():
    full = f"{HEAD}  {POSTFIX}"
    assert fit_postfix(HEAD, POSTFIX, None) == full
    assert fit_postfix(HEAD, POSTFIX, len(full)) == full
    assert fit_postfix(HEAD, POSTFIX, 80) == f"{HEAD}  total_loss_avg=24511.2437, ..."
    assert fit_postfix(HEAD, "", 80) == HEAD
    fields = POSTFIX.split(", ")
    for width in range(len(HEAD) + 7, len(full)):
        line = fit_postfix(HEAD, POSTFIX, width)
        assert len(line) <= width and line.startswith(HEAD + "  ")
        kept = line[len(HEAD) + 2:].split(", ")
        assert kept[-1] == "..." and kept[:-1] == fields[:len(kept) - 1], (width, line)
    assert fit_postfix(HEAD, POSTFIX, 20) == HEAD[:20]  # a terminal narrower than the head


def test_progress_bar_cuts_its_postfix_between_fields():
    stream = FakeStream(tty=False)
    # The head's rate field ("1.53s/it" or "110376.42it/s") depends on the speed of this loop, so how many
    # fields fit varies: at least the first, never all, and never part of one.
    bar = ProgressBar(total=4, desc="Train", ncols=100, file=stream)
    bar.set_postfix_str(POSTFIX, refresh=False)
    bar.update()
    text = str(bar)
    fields = POSTFIX.split(", ")
    assert len(text) <= 100 and text.endswith(", ...")
    assert text[:-len(", ...")].endswith(tuple(", ".join(fields[:k]) for k in range(1, len(fields))))
    assert bar.line().endswith(POSTFIX)  # what the logbook and plain consoles get
    bar.close()


def test_plain_console_has_no_escape_codes_and_progress_lines(monkeypatch, tmp_path):
    console = _console(monkeypatch, tty=False)
    logbook = tmp_path / "logbook.txt"
    logger.attach_logbook(str(logbook))
    monkeypatch.setattr(constants, "PROGRESS_PLAIN_INTERVAL_SECS", 0)
    with block("Outer", emph=True):
        logging.info("\x1b[36mcoloured\x1b[0m")
        with ProgressBar(total=2, desc="Train") as bar:
            for _ in range(2):
                bar.set_postfix_str("total_loss_avg=1.5000", refresh=False)
                bar.update()
    logging.getLogger().handlers[-1].flush()
    output = console.getvalue()
    assert "\x1b" not in output and "\r" not in output
    lines = output.splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ==> Outer", lines[0]) and lines[1].endswith("   coloured")
    train = [line for line in lines if "==> Train:" in line]
    assert len(train) == 2 and len(lines) == 4
    assert "  ==> Train:  50%   1/2 " in train[0] and train[0].endswith("  total_loss_avg=1.5000")
    assert "  ==> Train: 100%   2/2 " in train[1] and train[1].endswith("  total_loss_avg=1.5000")
    text = logbook.read_text()  # the final line only: interim lines are for consoles without bars
    assert "\x1b" not in text and "\r" not in text
    assert "Train: 100%   2/2" in text and "Train:  50%" not in text


def test_plain_console_waits_for_the_interval(monkeypatch):
    console = _console(monkeypatch, tty=False)
    monkeypatch.setattr(constants, "PROGRESS_PLAIN_INTERVAL_SECS", 3600)
    with ProgressBar(total=3, desc="Valid") as bar:
        bar.update(3)
    lines = console.getvalue().splitlines()
    assert len(lines) == 1 and "==> Valid: 100%   3/3" in lines[0]


def test_terminal_console_draws_bars_in_colour(monkeypatch):
    console = _console(monkeypatch, tty=True)
    with ProgressBar(total=2, desc="Train", ncols=100) as bar:
        bar.set_postfix_str("total_loss_avg=1.5000", refresh=False)
        bar.update(2)
    logging.info("done")
    output = console.getvalue()
    assert "\r==> Train: 100%   2/2 " in output and "total_loss_avg=1.5000" in output
    assert output.count("==> Train: 100%") == 1  # drawn by the bar, not logged again as a line
    assert re.search(r"\x1b\[[0-9;]*m\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\x1b\[0m done\n", output)
    monkeypatch.setenv("NO_COLOR", "1")
    logging.info("no colour")
    assert re.search(r"\n\d{4}-\d\d-\d\d \d\d:\d\d:\d\d no colour\n$", console.getvalue())


def _format_time(created: float) -> str:
    record = logging.makeLogRecord({"created": created})
    return logger._Formatter("%(asctime)s %(message)s", colors=False).formatTime(record)


@pytest.fixture
def restore_tz(monkeypatch):
    """time.tzset() again once the TZ variable set by the test is restored."""
    yield monkeypatch
    monkeypatch.undo()
    time.tzset()


def test_log_time_zone(restore_tz):
    restore_tz.setattr(constants, "LOGGING_TIMEZONE", "Asia/Tokyo")
    assert _format_time(0.0) == "1970-01-01 09:00:00"
    restore_tz.setattr(constants, "LOGGING_TIMEZONE", "Europe/Berlin")  # daylight saving time in July
    assert _format_time(1593561600.0) == "2020-07-01 02:00:00"  # 00:00 UTC
    restore_tz.setattr(constants, "LOGGING_TIMEZONE", None)
    restore_tz.setenv("TZ", "America/New_York")
    time.tzset()
    assert _format_time(0.0) == "1969-12-31 19:00:00"
    restore_tz.setattr(constants, "LOGGING_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValueError, match=r"constants.LOGGING_TIMEZONE='Mars/Olympus' is not a time zone name"):
        _format_time(0.0)
