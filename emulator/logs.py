"""The one logging setup of ``signalr-emulator`` and ``serverless-signalr``: no tokens in any
line, and one record is one line.

Browsers send the access token as an ``access_token`` query parameter on WebSocket and
Server-Sent Events requests, and uvicorn logs request paths with their query. The
:class:`RedactTokens` filter sits on the only handler, so it masks the value in every record,
whichever logger wrote it, before anything is written.

Log lines carry values clients choose (invocation targets, hub and group names, user ids,
paths). :class:`EscapeControlCharacters`, on the same handler, writes the control
characters of a record's message as escapes (``\\n``, ``\\x1b``, ``\\u2028``...), so a
target holding a newline and a forged log line stays visibly inside its own line, and no
terminal escape sequence reaches the reader. Tracebacks are left as they are.
"""

from __future__ import annotations

import logging
import logging.config
import re

__all__ = ["EscapeControlCharacters", "RedactTokens", "configure_logging", "escape_control"]

_TOKEN = re.compile(r"(access_token=)[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
# C0 controls but tab, DEL and C1 controls, line/paragraph separators, bidirectional
# overrides and isolates, and lone surrogates (which no encoding of the stream can write).
_CONTROL = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_control(text: str) -> str:
    """``text`` with control characters written as escapes (see the module docs)."""
    return _CONTROL.sub(_escape, text)


class RedactTokens(logging.Filter):
    """Replace ``access_token=...`` and ``Bearer ...`` values in a record with ``***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _BEARER.sub(r"\1***", _TOKEN.sub(r"\1***", message))
        if redacted != message:
            record.msg = redacted
            record.args = None
        return True


class EscapeControlCharacters(logging.Filter):
    """Write the control characters of a record's message as escapes: one record, one line.

    A trailing line break (uvicorn ends some messages with one) is dropped rather than
    escaped. Only the message is changed; a traceback attached to the record is not.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if _CONTROL.search(message) is not None:
            record.msg = escape_control(message.rstrip("\r\n"))
            record.args = None
        return True


def configure_logging(level: str, *, uvicorn_level: str | None = None) -> None:
    """Send every log record to stderr, one format, tokens redacted.

    Servers are meant to run with ``log_config=None`` (see :func:`emulator.runner.server_config`),
    so uvicorn's records reach this handler too.

    Args:
        level: ``debug``, ``info``, ``warning`` or ``error``, for every logger.
        uvicorn_level: the level of uvicorn's own lines (start-up, shutdown, WebSocket
            handshakes); ``level`` when not given.
    """
    level = level.upper()
    quiet = "DEBUG" if level == "DEBUG" else "WARNING"
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "plain": {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"},
            },
            "filters": {
                "redact": {"()": RedactTokens},
                "escape": {"()": EscapeControlCharacters},
            },
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "formatter": "plain",
                    "stream": "ext://sys.stderr",
                    "filters": ["redact", "escape"],
                },
            },
            "root": {"level": level, "handlers": ["stderr"]},
            "loggers": {
                "uvicorn.error": {"level": (uvicorn_level or level).upper()},
                # One line per outbound request is noise; the callers log failures.
                "httpx": {"level": quiet},
                "httpcore": {"level": "WARNING"},
            },
        }
    )
