"""The one logging setup of ``signalr-emulator`` and ``serverless-signalr``: no tokens in any line.

Browsers send the access token as an ``access_token`` query parameter on WebSocket and
Server-Sent Events requests, and uvicorn logs request paths with their query. The
:class:`RedactTokens` filter sits on the only handler, so it masks the value in every record,
whichever logger wrote it, before anything is written.
"""

from __future__ import annotations

import logging
import logging.config
import re

__all__ = ["RedactTokens", "configure_logging"]

_TOKEN = re.compile(r"(access_token=)[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)


class RedactTokens(logging.Filter):
    """Replace ``access_token=...`` and ``Bearer ...`` values in a record with ``***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _BEARER.sub(r"\1***", _TOKEN.sub(r"\1***", message))
        if redacted != message:
            record.msg = redacted
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
            "filters": {"redact": {"()": RedactTokens}},
            "handlers": {
                "stderr": {
                    "class": "logging.StreamHandler",
                    "formatter": "plain",
                    "stream": "ext://sys.stderr",
                    "filters": ["redact"],
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
