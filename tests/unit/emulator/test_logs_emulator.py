"""The log setup writes one line per record: client text is escaped, repeats rate-limited."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from emulator import wsprotocol
from emulator.upstream_answer import MAX_REASON_LENGTH, webhook_reason
from signalr_protocol.logsafe import configure_logging, escape_control


@pytest.fixture
def stderr(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The stream :func:`configure_logging`'s handler writes to, captured."""
    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("info")
    yield stream
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]


def test_control_characters_become_escapes() -> None:
    """Newlines, escape sequences, separators, bidi overrides and lone surrogates are escaped;
    tabs and ordinary text, accents and emoji stay."""
    text = "a\nb\r\x1b[2J\x00\x7f\x85\u2028\u202e\ud800\tcafé 🎉"
    assert escape_control(text) == "a\\nb\\r\\x1b[2J\\x00\\x7f\\x85\\u2028\\u202e\\ud800\tcafé 🎉"


def test_a_forged_line_stays_inside_its_record(stderr: io.StringIO) -> None:
    """A logged value carrying a newline and a fake record is written on the record's line."""
    fake = "2030-01-01 00:00:00,000 ERROR   emulator.auth: forged"
    logging.getLogger("emulator.upstream").warning("Upstream invocation %s failed", f"x\n{fake}")
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(f"Upstream invocation x\\n{fake} failed")


def test_tokens_are_still_redacted_and_trailing_newlines_dropped(stderr: io.StringIO) -> None:
    """Both filters apply: the token is masked; uvicorn's trailing newline is not escaped."""
    logging.getLogger("emulator.transports").error('"GET /client/?access_token=abc.def\n" failed\n')
    text = stderr.getvalue()
    assert "abc.def" not in text and "access_token=***" in text
    assert text.count("\n") == 1 and text.rstrip("\n").endswith("failed")


def test_tracebacks_are_kept(stderr: io.StringIO) -> None:
    """A record's traceback is written as is (only the message is escaped)."""
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("emulator").exception("bug with %s", "a\nb")
    text = stderr.getvalue()
    assert "bug with a\\nb" in text and "Traceback (most recent call last):" in text


def test_a_repeated_event_is_reported_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    """The first event is logged at once; later ones within the interval are counted and
    their number is given with the next line."""
    now = [100.0]
    report = wsprotocol.RateLimitedReport("closed %s (%d more)", 10.0, clock=lambda: now[0])
    caplog.set_level(logging.WARNING, logger="emulator.transports")
    for step in range(25):
        now[0] = 100.0 + step
        report(f"client {step}")
    assert [r.getMessage() for r in caplog.records] == [
        "closed client 0 (0 more)",
        "closed client 10 (9 more)",
        "closed client 20 (9 more)",
    ]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"No handler for target 'x'.\n", "No handler for target 'x'."),
        (b'{"detail": "Only admins."}', "Only admins."),
        (b'{"error": "nope", "message": "later"}', "nope"),
        (b'{"other": 1}', '{"other": 1}'),
        (b"  <!DOCTYPE html><html>error</html>", None),
        (b"", None),
        (b"\r\n\t ", None),
        ("a\x1b[31m\u202eb\r\nc".encode(), "a [31m b c"),
        (b"\xff\xfe broken", "\ufffd\ufffd broken"),
    ],
    ids=[
        "text",
        "json-detail",
        "json-error",
        "json-other",
        "html",
        "empty",
        "blank",
        "controls",
        "bytes",
    ],
)
def test_webhook_reasons_are_one_safe_line(body: bytes, reason: str | None) -> None:
    """A refusal's body becomes one line without control characters, or nothing for HTML."""
    assert webhook_reason(body) == reason


def test_webhook_reasons_are_bounded() -> None:
    """A long reason is cut to the limit and ends with an ellipsis."""
    reason = webhook_reason(b"x" * 100_000)
    assert reason is not None
    assert len(reason) == MAX_REASON_LENGTH and reason.endswith("…")
