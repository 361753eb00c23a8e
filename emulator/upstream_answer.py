"""What the emulator makes of an upstream's answer to an invocation (docs/protocol.md §4).

- :func:`completion_problem` checks a 200 answer before it is relayed: it must be exactly
  one hub message, a Completion of the invocation that was sent, in the connection's
  protocol. Anything else (bytes that are not a hub message, a message cut off, another
  message type, a Completion of another invocation, several messages) would otherwise
  reach the client as is: the official clients then drop the connection (a text frame
  they cannot parse) or leave ``invoke()`` pending for ever (a Completion they do not
  expect). The emulator answers an error Completion instead.
- :func:`webhook_reason` turns a refused invocation's body (the webhook's 4xx/5xx text, a
  JSON ``detail``/``error``/``message``/``title``) into one bounded line safe to show a
  developer; HTML pages and empty bodies give ``None``.

Microsoft's emulator reports a refused invocation as ``Invocation failed, status code N``
and relays a 200 body unchecked (Azure/azure-signalr
``src/Microsoft.Azure.SignalR.Emulator/HubEmulator/HttpServerlessMessageHandler.cs``); the
emulator keeps that wording and appends the reason, so the developer reads *why*.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

from signalr_protocol.codec import HubCodec
from signalr_protocol.errors import SignalRError
from signalr_protocol.limits import loads_json
from signalr_protocol.messages import CompletionMessage

__all__ = ["INVALID_COMPLETION", "MAX_REASON_LENGTH", "completion_problem", "webhook_reason"]

INVALID_COMPLETION: Final = "the upstream answered an invalid completion"
"""The start of every error text for a 200 answer that does not complete the invocation."""

MAX_REASON_LENGTH: Final = 300
"""Longest relayed reason, in characters (longer ones end with ``…``)."""

_SCANNED: Final = 16 * 1024  # bytes of a refusal's body looked at for its reason
_JSON_FIELDS: Final = ("detail", "error", "message", "title")
_ID_LENGTH: Final = 64
_SPACES: Final = re.compile(r"\s+")
# Line and paragraph separators, bidirectional overrides and isolates: they reorder or
# break what a reader sees, as control characters do.
_INVISIBLE: Final = frozenset("\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _name(message: object) -> str:
    return type(message).__name__.removesuffix("Message") or "message"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def completion_problem(codec: HubCodec, answer: bytes, invocation_id: str) -> str | None:
    """Why ``answer`` does not complete invocation ``invocation_id``, or ``None`` if it does.

    Args:
        codec: the calling connection's hub protocol (the upstream answers in it).
        answer: the upstream's non-empty 200 body.
        invocation_id: the id of the invocation that was sent.

    Returns:
        ``None`` when ``answer`` is exactly one framed Completion of ``invocation_id``;
        otherwise the error text for the caller, starting with :data:`INVALID_COMPLETION`.
    """
    parser = codec.new_parser()
    try:
        messages = parser.feed(answer)
    except (SignalRError, RecursionError, ValueError) as exc:
        detail = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return f"{INVALID_COMPLETION}: not a {codec.name} hub message ({_clip(detail, 120)})"
    if parser.buffered:
        return f"{INVALID_COMPLETION}: its last {codec.name} message is cut off"
    if len(messages) != 1:
        kinds = ", ".join(_name(m) for m in messages[:4]) or "none"
        count = len(messages)
        return f"{INVALID_COMPLETION}: {count} hub messages ({kinds}) instead of one Completion"
    message = messages[0]
    if not isinstance(message, CompletionMessage):
        return f"{INVALID_COMPLETION}: a {_name(message)} message instead of a Completion"
    if message.invocation_id != invocation_id:
        other = _clip(message.invocation_id, _ID_LENGTH)
        return (
            f"{INVALID_COMPLETION}: a Completion of invocation {other!r} does not complete "
            f"this invocation ({_clip(invocation_id, _ID_LENGTH)!r})"
        )
    return None


def _sanitise(text: str) -> str:
    cleaned = "".join(
        " "
        if (char in _INVISIBLE or unicodedata.category(char) in ("Cc", "Cs")) and char != " "
        else char
        for char in text
    )
    return _SPACES.sub(" ", cleaned).strip()


def _from_json(body: bytes) -> str | None:
    try:
        value = loads_json(body)
    except SignalRError:
        return None
    if isinstance(value, dict):
        for key in _JSON_FIELDS:
            field = value.get(key)
            if isinstance(field, str) and field.strip():
                return field
    return None


def webhook_reason(body: bytes) -> str | None:
    """The reason a refused invocation's body gives, as one safe line, or ``None``.

    A JSON object's ``detail``, ``error``, ``message`` or ``title`` string (the first
    present) or plain text is taken; HTML and empty bodies give ``None``. Control,
    line-separator and bidirectional-override characters become spaces, runs of spaces
    one space, and the result is cut to :data:`MAX_REASON_LENGTH` characters.
    """
    head = body[:_SCANNED].lstrip()
    if not head or head[:1] == b"<":
        return None
    reason: str | None = None
    if head[:1] in (b"{", b"[") and len(body) <= _SCANNED:
        reason = _from_json(body)
    if reason is None:
        reason = head.decode("utf-8", errors="replace")
    reason = _sanitise(reason)
    return _clip(reason, MAX_REASON_LENGTH) if reason else None
