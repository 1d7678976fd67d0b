"""Logging set-up with a last line of defence: known secret values are masked in every formatted line.

The code never logs headers, cookies, tokens or passwords on purpose. Every secret the process learns is
still registered here, so a careless message or a traceback that happens to contain one prints ``***``.
"""

from __future__ import annotations

import logging
import sys
import threading

_MIN_SECRET_LENGTH = 4  # masking very short strings would mangle ordinary words
_secrets: set[str] = set()
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    if value and len(value) >= _MIN_SECRET_LENGTH:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)  # longest first: a token may contain a shorter one
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # APScheduler logs every job run at INFO; that is noise at our default level.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
