"""Telegram notifications, buffered: `send_message(msg, *args)` and `flush()` while a run's notifier is active.

The configuration lives in ~/.machines.json (template: dot_machines.json in the repository root):
{"chat_id": "<chat id>", "machines": {"<short hostname>": "<bot token>"}, "base_url": optional}.
`base_url` is the Bot API address the token is appended to (default https://api.telegram.org/bot;
it may also contain "{token}"), so tests can point it at a local fake server.

`configure` checks the token once (getMe). Messages are collected and sent together at most every
constants.TELEGRAM_FLUSH_SECS seconds (the first one at once); `flush` sends what is left. A missing
or broken configuration, a rejected token or an unreachable server logs one warning and
notifications are skipped: training never stops because of them. The token is never logged: it is
removed from every error message, and the HTTP client's request log (which prints URLs, and a Bot
API URL contains the token) is silenced.
"""
import asyncio
import contextlib
import contextvars
import json
import logging
import os
import re
import socket
import time
import urllib.parse
from typing import Any, Iterator, List, Optional

import constants

DEFAULT_BASE_URL = "https://api.telegram.org/bot"
MAX_MESSAGE_LENGTH = 4096  # Bot API limit per message
MAX_BUFFERED_CHARACTERS = 64 * MAX_MESSAGE_LENGTH  # what is kept while the server is unreachable
REQUEST_TIMEOUT_SECS = 10.0
_URL_LOGGING_LIBRARIES = ("httpx", "httpcore", "telegram")


def split_message(text: str, limit: int = MAX_MESSAGE_LENGTH) -> List[str]:
    """Split text into chunks of at most `limit` characters, at line breaks where possible."""
    chunks: List[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:
            if current:
                chunks.append(current)
                current = ""
            chunks.append(line[:limit])
            line = line[limit:]
        candidate = line if not current else f"{current}\n{line}"
        if len(candidate) > limit:
            chunks.append(current)
            candidate = line
        current = candidate
    if current:
        chunks.append(current)
    return chunks


class TelegramNotifier:
    """Collects messages and sends them at most every `flush_secs` seconds (the first at once)."""

    def __init__(self, token: str, chat_id: str, base_url: str = DEFAULT_BASE_URL,
                 flush_secs: float = constants.TELEGRAM_FLUSH_SECS) -> None:
        self._token = token
        self._chat_id = chat_id
        self._base_url = base_url
        self._flush_secs = flush_secs
        self._buffer: List[str] = []
        self._last_attempt: Optional[float] = None
        self._warned = False

    def redact(self, text: str) -> str:
        """`text` with the token replaced by '<token>', in any letter case and URL-encoded too (error texts of
        HTTP libraries quote request paths, some in lower case)."""
        if not self._token:
            return text
        forms = {self._token, urllib.parse.quote(self._token, safe=""), urllib.parse.quote(self._token)}
        pattern = "|".join(re.escape(form) for form in sorted(forms, key=len, reverse=True))
        return re.sub(pattern, "<token>", text, flags=re.IGNORECASE)

    def check(self) -> None:
        """Ask the server who the bot is; raises if the token is rejected or the server unreachable."""
        asyncio.run(self._call(None))

    def send_message(self, msg: str, *args: Any) -> None:
        """Buffer `msg % args`; transmit when the flush interval has passed."""
        self._buffer.append(msg % args if args else msg)
        if self._last_attempt is None or time.monotonic() - self._last_attempt >= self._flush_secs:
            self.flush()

    def flush(self) -> None:
        """Transmit everything buffered; on failure keep it for the next attempt and warn once."""
        if not self._buffer:
            return
        self._last_attempt = time.monotonic()
        text = "\n".join(self._buffer)
        try:
            asyncio.run(self._call(split_message(text)))
        except Exception as error:  # noqa: BLE001 -- a notification must never stop training
            if not self._warned:
                logging.warning("Telegram: could not send a message (%s: %s); training goes on",
                                type(error).__name__, self.redact(str(error)))
                self._warned = True
            # Keep the newest messages only, so an unreachable server cannot grow memory without bound.
            self._buffer = [text[-MAX_BUFFERED_CHARACTERS:]]
            return
        self._buffer.clear()

    async def _call(self, chunks: Optional[List[str]]) -> None:
        import telegram  # python-telegram-bot; imported here so that a broken install only disables messages
        from telegram.request import HTTPXRequest

        request = HTTPXRequest(connect_timeout=REQUEST_TIMEOUT_SECS, read_timeout=REQUEST_TIMEOUT_SECS,
                               write_timeout=REQUEST_TIMEOUT_SECS)
        bot = telegram.Bot(self._token, base_url=self._base_url, request=request)
        async with bot:  # initialising calls getMe, which checks the token
            for chunk in chunks or []:
                await bot.send_message(chat_id=self._chat_id, text=chunk)


# The notifier of the active run, for the module-level calls below (and the original's `logging.telegram`).
_current: contextvars.ContextVar[Optional[TelegramNotifier]] = contextvars.ContextVar("notifier", default=None)


def short_hostname() -> str:
    """Host name up to the first dot."""
    return socket.gethostname().split(".")[0]


def _silence_url_logging() -> None:
    for name in _URL_LOGGING_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def load_notifier(filename: Optional[str] = None,
                  flush_secs: float = constants.TELEGRAM_FLUSH_SECS) -> Optional[TelegramNotifier]:
    """A run's notifier from the machines file (default ~/.machines.json), or None (with one warning why)."""
    filename = filename or constants.LOGGING_TELEGRAM_MACHINES_FILENAME
    _silence_url_logging()
    if not os.path.isfile(filename):
        logging.warning("Telegram: no configuration at %s (template: dot_machines.json), notifications off",
                        filename)
        return None
    host = short_hostname()
    try:
        with open(filename, encoding="utf-8") as handle:
            config = json.load(handle)
        if not isinstance(config, dict):
            raise ValueError("expected a JSON object")
        chat_id = str(config["chat_id"])
        machines = config["machines"]
        if not isinstance(machines, dict):
            raise ValueError("'machines' must map short host names to bot tokens")
        if host not in machines:
            raise ValueError(f"no token for this host '{host}' under 'machines'")
        token = str(machines[host])
        base_url = str(config.get("base_url", DEFAULT_BASE_URL))
    except (OSError, ValueError, KeyError, TypeError) as error:
        # Never echo file content: it holds tokens (json's messages quote the text around an error).
        reason = f"missing key {error.args[0]!r}" if isinstance(error, KeyError) else \
            (str(error) if type(error) is ValueError else type(error).__name__)
        logging.warning("Telegram: could not read %s (%s), notifications off", filename, reason)
        return None
    notifier = TelegramNotifier(token=token, chat_id=chat_id, base_url=base_url, flush_secs=flush_secs)
    try:
        notifier.check()
    except Exception as error:  # noqa: BLE001 -- any failure (rejected token, no network) only disables messages
        logging.warning("Telegram: the bot for host %s is not available (%s: %s), notifications off", host,
                        type(error).__name__, notifier.redact(str(error)))
        return None
    logging.info("Telegram: notifications enabled for host %s", host)
    return notifier


@contextlib.contextmanager
def active(notifier: Optional[TelegramNotifier]) -> Iterator[Optional[TelegramNotifier]]:
    """Make `notifier` the target of `send_message`/`flush` (and the shim's `logging.telegram`) inside the block."""
    token = _current.set(notifier)
    try:
        yield notifier
    finally:
        _current.reset(token)


def send_message(msg: str, *args: Any) -> None:
    """Buffer a notification with the active run's notifier (no-op when notifications are off)."""
    notifier = _current.get()
    if notifier is not None:
        notifier.send_message(msg, *args)


def flush() -> None:
    """Send whatever the active run's notifier has buffered."""
    notifier = _current.get()
    if notifier is not None:
        notifier.flush()
