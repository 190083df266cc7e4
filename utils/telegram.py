"""Telegram notifications, buffered: `logging.telegram(msg, *args)` after `configure_logging`.

The configuration lives in ~/.machines.json (template: dot_machines.json):
{"chat_id": "<chat id>", "machines": {"<short hostname>": "<bot token>"}, "base_url": optional}.
A missing or broken configuration or an unreachable server logs one warning; training goes on.
The bot token is never logged.
"""
import asyncio
import json
import logging
import os
import socket
import time
from typing import Any, List, Optional

import constants

_DEFAULT_BASE_URL = "https://api.telegram.org/bot"


class TelegramNotifier:
    """Collects messages and sends them at most every `flush_secs` seconds (the first at once)."""

    def __init__(self, token: str, chat_id: str, base_url: str = _DEFAULT_BASE_URL,
                 flush_secs: float = constants.TELEGRAM_FLUSH_SECS) -> None:
        self._token = token
        self._chat_id = chat_id
        self._base_url = base_url
        self._flush_secs = flush_secs
        self._buffer: List[str] = []
        self._last_sent: Optional[float] = None
        self._warned = False

    def send_message(self, msg: str, *args: Any) -> None:
        """Buffer `msg % args`; transmit when the flush interval has passed."""
        self._buffer.append(msg % args if args else msg)
        if self._last_sent is None or time.monotonic() - self._last_sent >= self._flush_secs:
            self.flush()

    def flush(self) -> None:
        """Transmit everything buffered; on failure keep it and warn once."""
        if not self._buffer:
            return
        text = "\n".join(self._buffer)
        try:
            asyncio.run(self._send(text))
        except Exception as error:  # noqa: BLE001 -- a notification must never stop training
            if not self._warned:
                message = str(error).replace(self._token, "<token>")
                logging.warning("Telegram: could not send a message (%s: %s); training goes on",
                                type(error).__name__, message)
                self._warned = True
            return
        self._buffer.clear()
        self._last_sent = time.monotonic()

    async def _send(self, text: str) -> None:
        import telegram  # python-telegram-bot

        bot = telegram.Bot(self._token, base_url=self._base_url)
        async with bot:
            await bot.send_message(chat_id=self._chat_id, text=text)


_notifier: Optional[TelegramNotifier] = None


def short_hostname() -> str:
    """Host name up to the first dot."""
    return socket.gethostname().split(".")[0]


def configure(filename: str = constants.LOGGING_TELEGRAM_MACHINES_FILENAME) -> bool:
    """Enable notifications from the machines file; returns whether they are enabled."""
    global _notifier
    _notifier = None
    if not os.path.isfile(filename):
        logging.info("Telegram: no configuration at %s, notifications disabled", filename)
        return False
    try:
        with open(filename, encoding="utf-8") as handle:
            config = json.load(handle)
        chat_id = str(config["chat_id"])
        token = config["machines"][short_hostname()]
        base_url = config.get("base_url", _DEFAULT_BASE_URL)
    except (OSError, ValueError, KeyError, TypeError) as error:
        key = error.args[0] if isinstance(error, KeyError) and error.args else None
        reason = f"missing key {key!r}" if key else type(error).__name__
        logging.warning("Telegram: could not read %s (%s), notifications disabled", filename, reason)
        return False
    _notifier = TelegramNotifier(token=str(token), chat_id=chat_id, base_url=base_url)
    logging.info("Telegram: notifications enabled for host %s", short_hostname())
    return True


def send_message(msg: str, *args: Any) -> None:
    """Buffer a notification (no-op when notifications are disabled)."""
    if _notifier is not None:
        _notifier.send_message(msg, *args)


def flush() -> None:
    """Send whatever is buffered."""
    if _notifier is not None:
        _notifier.flush()
