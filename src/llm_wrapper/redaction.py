"""Secrets never leave: every configured key is scrubbed from what goes to a client or a log.

Providers echo keys in their error messages ("Incorrect API key provided:
sk-…"), and an exception's text can carry a connection string. The secrets
are registered once at start-up (`register`); `scrub` replaces each with
`[redacted]`. It runs on error paths and log records only, never on answers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

REDACTED = "[redacted]"
MIN_LENGTH = 6  # shorter values are not secrets worth matching (and would mangle ordinary text)

_secrets: list[str] = []  # process-wide on purpose: logging is too


def register(values: Iterable[str | None]) -> None:
    """Add secrets to scrub (longest first, so a key that contains another goes whole)."""
    known = set(_secrets)
    known.update(v for v in values if v and len(v) >= MIN_LENGTH)
    _secrets[:] = sorted(known, key=len, reverse=True)


def scrub(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class _ScrubbingRecordFactory:
    """Wraps the log record factory: a record's message is scrubbed once it is built."""

    def __init__(self, inner: Callable[..., logging.LogRecord]) -> None:
        self.inner = inner

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.inner(*args, **kwargs)
        if _secrets:
            try:
                message = record.getMessage()
            except Exception:  # a bad format string: leave it to the handler to report
                return record
            cleaned = scrub(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return record


def scrub_logs() -> None:
    """Scrub every log record this process makes from now on (idempotent)."""
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, _ScrubbingRecordFactory):
        logging.setLogRecordFactory(_ScrubbingRecordFactory(factory))
