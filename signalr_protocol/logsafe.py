"""Safe log lines for every launcher: no tokens in any line, and one record is one line.

Browsers send the access token as an ``access_token`` query parameter on WebSocket and
Server-Sent Events requests, and uvicorn logs request paths with their query.
:class:`RedactTokens` masks such values (and ``Bearer`` credentials) in a record's message.

Log lines carry values clients choose (invocation targets, hub and group names, user ids,
paths). :class:`EscapeControlCharacters` writes the control characters of a record's
message as escapes (``\\n``, ``\\x1b``, ``\\u2028``...), so a target holding a newline and a
forged log line stays visibly inside its own line, and no terminal escape sequence reaches
the reader. Tracebacks are left as they are.

:class:`JsonFormatter` writes one JSON object per record, with the ``trace_id``, ``span_id``
and ``connection_id`` the record carries (a filter of the caller's, or ``extra=``, sets them:
this module knows nothing of tracing).

:func:`secure_handler` puts both filters (and a formatter) on a handler;
:func:`configure_logging` gives the whole process one such handler on stderr. Both only
configure the standard :mod:`logging` module.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, Final, Literal, TextIO

__all__ = [
    "HANDLER_NAME",
    "LOG_FORMATS",
    "TEXT_FORMAT",
    "EscapeControlCharacters",
    "JsonFormatter",
    "LogFormat",
    "RedactTokens",
    "configure_logging",
    "escape_control",
    "redact_tokens",
    "secure_handler",
]

LogFormat = Literal["text", "json"]
LOG_FORMATS: Final = ("text", "json")
TEXT_FORMAT: Final = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
HANDLER_NAME: Final = "signalr-safe-stderr"
"""The name of the handler :func:`configure_logging` installs (``handler.get_name()``)."""

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


def redact_tokens(text: str) -> str:
    """``text`` with ``access_token=...`` and ``Bearer ...`` values replaced by ``***``."""
    return _BEARER.sub(r"\1***", _TOKEN.sub(r"\1***", text))


def _rewrite(
    record: logging.LogRecord, whole: Callable[[str], str], part: Callable[[str], str]
) -> None:
    """Make ``record``'s message ``whole(message)``.

    When applying ``part`` to the format string and to each string argument gives the same
    text, the arguments are kept (uvicorn's access formatter reads them); otherwise the
    record becomes the rewritten text with no arguments.
    """
    message = record.getMessage()
    rewritten = whole(message)
    if rewritten == message:
        return
    if isinstance(record.msg, str) and isinstance(record.args, tuple) and record.args:
        msg = part(record.msg)
        args = tuple(part(arg) if isinstance(arg, str) else arg for arg in record.args)
        try:
            same = msg % args == rewritten
        except (TypeError, ValueError, KeyError):
            same = False
        if same:
            record.msg, record.args = msg, args
            return
    record.msg = rewritten
    record.args = None


class RedactTokens(logging.Filter):
    """Replace ``access_token=...`` and ``Bearer ...`` values in a record with ``***``."""

    def filter(self, record: logging.LogRecord) -> bool:
        _rewrite(record, redact_tokens, redact_tokens)
        return True


def _escape_line(text: str) -> str:
    return escape_control(text.rstrip("\r\n"))


class EscapeControlCharacters(logging.Filter):
    """Write the control characters of a record's message as escapes: one record, one line.

    A trailing line break (uvicorn ends some messages with one) is dropped rather than
    escaped. Only the message is changed; a traceback attached to the record is not.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        _rewrite(record, _escape_line, escape_control)
        return True


# What json.dumps(ensure_ascii=False) leaves raw but a line-oriented reader must not see:
# C1 controls, line separators, bidirectional controls, lone surrogates.
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line.

    Keys: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``; ``trace_id``,
    ``span_id`` and ``connection_id`` when the record carries them (a filter sets them, or
    ``extra={"connection_id": ...}``); ``exception`` when it has one. Non-ASCII text is kept;
    control and separator characters anywhere are JSON escapes.
    """

    EXTRA_KEYS: Final = ("trace_id", "span_id", "connection_id")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in self.EXTRA_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        line = json.dumps(entry, ensure_ascii=False, default=str)
        return _JSON_UNSAFE.sub(_json_escape, line)


def _formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"log format must be text or json, not {fmt!r}")


def _level(name: str) -> int:
    value = logging.getLevelName(name.upper())
    if not isinstance(value, int):
        raise ValueError(f"unknown log level {name!r}")
    return value


def secure_handler(
    handler: logging.Handler,
    fmt: str | None = None,
    *,
    filters: Iterable[logging.Filter] = (),
) -> logging.Handler:
    """Put the token and control-character filters (once) on ``handler``.

    Args:
        handler: any handler (ours, or one a server configured).
        fmt: ``text`` or ``json`` to replace its formatter; ``None`` keeps it.
        filters: more filters to run first (e.g. one that sets ``trace_id``), added once
            per type.

    Returns:
        ``handler``.
    """
    present = {type(existing) for existing in handler.filters}
    for item in (*filters, RedactTokens(), EscapeControlCharacters()):
        if type(item) not in present:
            handler.addFilter(item)
            present.add(type(item))
    if fmt is not None:
        handler.setFormatter(_formatter(fmt))
    return handler


def configure_logging(
    level: str,
    *,
    fmt: str = "text",
    uvicorn_level: str | None = None,
    filters: Iterable[logging.Filter] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every log record to one handler on stderr, one format, tokens redacted.

    The root logger's handlers are replaced by this one; ``uvicorn.error``, ``httpx`` and
    ``httpcore`` lose any handler of their own and propagate to it. Servers are meant to
    run with uvicorn's ``log_config=None``, so uvicorn's records reach it too.

    Args:
        level: ``debug``, ``info``, ``warning`` or ``error``, for every logger.
        fmt: ``text`` (time, level, logger, message) or ``json`` (:class:`JsonFormatter`).
        uvicorn_level: the level of uvicorn's own lines (start-up, shutdown, WebSocket
            handshakes); ``level`` when not given.
        filters: more filters for the handler (e.g. one that sets ``trace_id``).
        stream: where to write; ``sys.stderr`` as it is at the time of the call.

    Returns:
        The handler.

    Raises:
        ValueError: an unknown level or format.
    """
    root_level = _level(level)
    levels = (
        ("uvicorn.error", _level(uvicorn_level or level)),
        # One line per outbound request is noise; the callers log failures.
        ("httpx", logging.DEBUG if root_level == logging.DEBUG else logging.WARNING),
        ("httpcore", logging.WARNING),
    )
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.set_name(HANDLER_NAME)
    secure_handler(handler, fmt, filters=filters)
    root = logging.getLogger()
    root.setLevel(root_level)
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    for name, value in levels:
        logger = logging.getLogger(name)
        logger.setLevel(value)
        logger.propagate = True
        for old in list(logger.handlers):
            logger.removeHandler(old)
    return handler
