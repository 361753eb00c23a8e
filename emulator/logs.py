"""Logging setup for ``python -m emulator``: one format, and no access tokens in any line.

Browsers send the access token as an ``access_token`` query parameter on WebSocket and
Server-Sent Events requests, and uvicorn logs request paths with their query. The
:class:`RedactTokens` filter masks the value before any handler sees the record.
"""

from __future__ import annotations

import logging
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


def configure_logging(level: str) -> None:
    """Log ``emulator.*`` and uvicorn at ``level`` to stderr, tokens redacted."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    redact = RedactTokens()
    for name in ("", "emulator", "uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).addFilter(redact)
    for handler in logging.getLogger().handlers:
        handler.addFilter(redact)
