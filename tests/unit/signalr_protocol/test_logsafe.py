"""The core's log filters and JSON formatter: one record is one line, tokens never written."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator

import pytest
from uvicorn.logging import AccessFormatter

from signalr_protocol.logsafe import (
    EscapeControlCharacters,
    JsonFormatter,
    RedactTokens,
    configure_logging,
    secure_handler,
)


@pytest.fixture
def root_saved() -> Iterator[None]:
    """Restore the root logger's level and handlers after the test."""
    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]


def record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    """A WARNING record of logger ``app`` (with the current exception when ``exc``)."""
    return logging.LogRecord(
        "app", logging.WARNING, __file__, 1, msg, args, sys.exc_info() if exc else None
    )


def test_json_lines_carry_the_ids_a_record_has() -> None:
    """trace_id, span_id and connection_id appear when set on the record, not otherwise."""
    plain = record("hello %s", "José")
    entry = json.loads(JsonFormatter().format(plain))
    assert entry["message"] == "hello José" and entry["logger"] == "app"
    assert not {"trace_id", "span_id", "connection_id", "exception"} & set(entry)
    tagged = record("hello")
    tagged.trace_id, tagged.span_id, tagged.connection_id = "a" * 32, "b" * 16, "c1"
    entry = json.loads(JsonFormatter().format(tagged))
    assert (entry["trace_id"], entry["span_id"], entry["connection_id"]) == (
        "a" * 32,
        "b" * 16,
        "c1",
    )


def test_json_lines_escape_every_line_break_and_keep_the_text() -> None:
    """Newlines, NEL, line separators, bidi overrides and lone surrogates, in the message and
    in a traceback, are JSON escapes: one line that reads back as the original text."""
    text = "a\nb\x85c\u2028d\u202ee\ud800 café"
    try:
        raise ValueError(text)
    except ValueError:
        line = JsonFormatter().format(record("%s", text, exc=True))
    assert len(line.splitlines()) == 1
    assert "café" in line  # non-ASCII stays readable
    line.encode("utf-8")  # no lone surrogate left to fail the stream's encoder
    entry = json.loads(line)
    assert entry["message"] == text and text in entry["exception"]


def test_redaction_keeps_the_arguments_uvicorns_access_formatter_reads() -> None:
    """A token in an access record's path is masked and the record still formats with
    uvicorn's access formatter (which reads the arguments, not the message)."""
    access = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/api/negotiate?access_token=abc.def", "1.1", 200),
        None,
    )
    RedactTokens().filter(access)
    EscapeControlCharacters().filter(access)
    assert isinstance(access.args, tuple)
    line = AccessFormatter("%(client_addr)s - %(request_line)s %(status_code)s").format(access)
    assert "abc.def" not in line and "access_token=***" in line


def test_a_change_the_arguments_cannot_express_flattens_the_record() -> None:
    """A token split between the format and an argument is still masked (the record becomes
    its rewritten message), and a ``%r`` argument is escaped once, not twice."""
    split = record("access_token=%s", "abc")
    RedactTokens().filter(split)
    assert split.getMessage() == "access_token=***" and split.args is None
    quoted = record("target %r\n", "x\u2028y")
    EscapeControlCharacters().filter(quoted)
    assert quoted.getMessage() == "target 'x\\u2028y'"


def test_configure_logging_writes_json_objects_one_per_line(root_saved: None) -> None:
    """fmt=json: every record, a forged line inside a value included, is one JSON object on
    its own line; the token is masked."""
    stream = io.StringIO()
    configure_logging("info", fmt="json", stream=stream)
    log = logging.getLogger("emulator.test")
    log.warning("target %s failed", "x\n2030-01-01 00:00:00,000 ERROR forged")
    log.info("GET /client/?access_token=abc.def")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == "target x\\n2030-01-01 00:00:00,000 ERROR forged failed"
    assert second["message"] == "GET /client/?access_token=***"


def test_a_bad_format_or_level_changes_nothing(root_saved: None) -> None:
    """An unknown format or level raises before the root logger's handlers are replaced."""
    root = logging.getLogger()
    before = list(root.handlers)
    with pytest.raises(ValueError, match="text or json"):
        configure_logging("info", fmt="xml")
    with pytest.raises(ValueError, match="unknown log level"):
        configure_logging("loud")
    assert root.handlers == before


def test_secure_handler_adds_each_filter_once() -> None:
    """Securing a handler twice leaves one filter of each kind (a lazily built app may be
    asked for twice)."""
    handler = logging.StreamHandler(io.StringIO())
    secure_handler(handler, "text")
    secure_handler(handler, "json")
    kinds = [type(item) for item in handler.filters]
    assert kinds.count(RedactTokens) == 1 and kinds.count(EscapeControlCharacters) == 1
    assert isinstance(handler.formatter, JsonFormatter)
