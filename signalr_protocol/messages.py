"""SignalR hub protocol messages as frozen, slotted value objects.

One class per message type of the hub protocol (``docs/protocol.md`` §3.5–3.6), all under
:class:`HubMessage`, plus :class:`HandshakeRequest` (the first message of a connection, which is
not a hub message). The encoders and parsers live in :mod:`signalr_protocol.codec` and
:mod:`signalr_protocol.handshake`; this module only defines the values.

API:

- ``MessageType`` – ``IntEnum`` of the wire ``type`` values 1–9.
- ``HubMessage`` – common base; each subclass has a ``message_type`` class attribute.
- ``InvocationMessage(target, arguments, invocation_id=None, stream_ids=(), headers={})`` – type 1.
- ``StreamItemMessage(invocation_id, item, headers={})`` – type 2.
- ``CompletionMessage(invocation_id, result=None, error=None, has_result=False, headers={})`` –
  type 3; ``has_result`` is set automatically when ``result`` is not ``None``.
  Helpers: ``CompletionMessage.void(id)``, ``.with_result(id, value)``, ``.with_error(id, text)``.
- ``StreamInvocationMessage(invocation_id, target, arguments, stream_ids=(), headers={})`` – type 4.
- ``CancelInvocationMessage(invocation_id, headers={})`` – type 5.
- ``PingMessage()`` – type 6.
- ``CloseMessage(error=None, allow_reconnect=False)`` – type 7.
- ``AckMessage(sequence_id)`` – type 8; ``SequenceMessage(sequence_id)`` – type 9.
- ``InvocationBindingFailureMessage(invocation_id, target, error, stream=False)`` – not a wire
  message: what a parser yields for an Invocation (or StreamInvocation) whose envelope was
  read but whose arguments, or target text, break a payload limit.
- ``HandshakeRequest(protocol, version)``.
- ``TRACKABLE_TYPES`` – the message types counted by stateful reconnect.

``arguments`` and ``stream_ids`` are stored as tuples whatever sequence is passed, so messages
compare equal after a round trip. Nested values keep whatever types the codec produced (JSON
and MessagePack arrays decode to lists). Messages are never mutated; build a new one instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, ClassVar

__all__ = [
    "TRACKABLE_TYPES",
    "AckMessage",
    "CancelInvocationMessage",
    "CloseMessage",
    "CompletionMessage",
    "HandshakeRequest",
    "HubMessage",
    "InvocationBindingFailureMessage",
    "InvocationMessage",
    "MessageType",
    "PingMessage",
    "SequenceMessage",
    "StreamInvocationMessage",
    "StreamItemMessage",
]


class MessageType(IntEnum):
    """The ``type`` value of each hub protocol message."""

    INVOCATION = 1
    STREAM_ITEM = 2
    COMPLETION = 3
    STREAM_INVOCATION = 4
    CANCEL_INVOCATION = 5
    PING = 6
    CLOSE = 7
    ACK = 8
    SEQUENCE = 9


def _empty_headers() -> Mapping[str, str]:
    return {}


def _as_tuple(value: Sequence[Any]) -> tuple[Any, ...]:
    return value if type(value) is tuple else tuple(value)


@dataclass(frozen=True, slots=True)
class HubMessage:
    """Base class of the nine hub protocol messages.

    Attributes:
        message_type: the wire ``type`` value of the concrete class.
    """

    message_type: ClassVar[MessageType]


@dataclass(frozen=True, slots=True)
class InvocationMessage(HubMessage):
    """Ask the other side to run ``target`` with ``arguments`` (type 1).

    Attributes:
        target: the method name.
        arguments: positional arguments, stored as a tuple.
        invocation_id: set when the caller expects a Completion; ``None`` for fire-and-forget.
        stream_ids: ids of client-to-server streams bound to this call.
        headers: string headers (rarely used).
    """

    message_type: ClassVar[MessageType] = MessageType.INVOCATION
    target: str
    arguments: Sequence[Any] = ()
    invocation_id: str | None = None
    stream_ids: Sequence[str] = ()
    headers: Mapping[str, str] = field(default_factory=_empty_headers)

    def __post_init__(self) -> None:
        object.__setattr__(self, "arguments", _as_tuple(self.arguments))
        object.__setattr__(self, "stream_ids", _as_tuple(self.stream_ids))


@dataclass(frozen=True, slots=True)
class StreamItemMessage(HubMessage):
    """One item of a stream (type 2).

    Attributes:
        invocation_id: the stream's invocation id.
        item: the value.
        headers: string headers.
    """

    message_type: ClassVar[MessageType] = MessageType.STREAM_ITEM
    invocation_id: str
    item: Any = None
    headers: Mapping[str, str] = field(default_factory=_empty_headers)


@dataclass(frozen=True, slots=True)
class CompletionMessage(HubMessage):
    """The end of an invocation: a result, an error, or nothing (type 3).

    Passing a ``result`` that is not ``None`` sets ``has_result``; to complete with an explicit
    ``null`` result pass ``has_result=True``. ``error`` and a result are mutually exclusive.

    Attributes:
        invocation_id: the id of the invocation this completes.
        result: the return value (meaningful only when ``has_result``).
        error: the error text, or ``None``.
        has_result: whether the completion carries a result (``False`` = void or error).
        headers: string headers.

    Raises:
        ValueError: both ``error`` and a result were given.
    """

    message_type: ClassVar[MessageType] = MessageType.COMPLETION
    invocation_id: str
    result: Any = None
    error: str | None = None
    has_result: bool = False
    headers: Mapping[str, str] = field(default_factory=_empty_headers)

    def __post_init__(self) -> None:
        if self.result is not None and not self.has_result:
            object.__setattr__(self, "has_result", True)
        if self.error is not None and self.has_result:
            raise ValueError("A completion carries either a result or an error, not both.")

    @classmethod
    def void(cls, invocation_id: str) -> CompletionMessage:
        """Build a completion without a result (a void method returned)."""
        return cls(invocation_id)

    @classmethod
    def with_result(cls, invocation_id: str, result: Any) -> CompletionMessage:
        """Build a completion carrying ``result`` (``None`` is sent as ``null``)."""
        return cls(invocation_id, result=result, has_result=True)

    @classmethod
    def with_error(cls, invocation_id: str, error: str) -> CompletionMessage:
        """Build an error completion; the caller's ``invoke`` rejects with ``error``."""
        return cls(invocation_id, error=error)


@dataclass(frozen=True, slots=True)
class StreamInvocationMessage(HubMessage):
    """Ask the other side to start a server-to-client stream (type 4).

    Attributes:
        invocation_id: the stream's id (required).
        target: the method name.
        arguments: positional arguments, stored as a tuple.
        stream_ids: ids of client-to-server streams bound to this call.
        headers: string headers.
    """

    message_type: ClassVar[MessageType] = MessageType.STREAM_INVOCATION
    invocation_id: str
    target: str
    arguments: Sequence[Any] = ()
    stream_ids: Sequence[str] = ()
    headers: Mapping[str, str] = field(default_factory=_empty_headers)

    def __post_init__(self) -> None:
        object.__setattr__(self, "arguments", _as_tuple(self.arguments))
        object.__setattr__(self, "stream_ids", _as_tuple(self.stream_ids))


@dataclass(frozen=True, slots=True)
class CancelInvocationMessage(HubMessage):
    """Cancel a running stream (type 5).

    Attributes:
        invocation_id: the stream to cancel.
        headers: string headers.
    """

    message_type: ClassVar[MessageType] = MessageType.CANCEL_INVOCATION
    invocation_id: str
    headers: Mapping[str, str] = field(default_factory=_empty_headers)


@dataclass(frozen=True, slots=True)
class PingMessage(HubMessage):
    """Keep-alive (type 6); carries nothing."""

    message_type: ClassVar[MessageType] = MessageType.PING


@dataclass(frozen=True, slots=True)
class CloseMessage(HubMessage):
    """The sender is closing the connection (type 7).

    Attributes:
        error: why, or ``None`` for a clean close. The JS client reports it as
            "Server returned an error on close: <error>".
        allow_reconnect: ``True`` lets a client with automatic reconnect try again.
    """

    message_type: ClassVar[MessageType] = MessageType.CLOSE
    error: str | None = None
    allow_reconnect: bool = False


@dataclass(frozen=True, slots=True)
class AckMessage(HubMessage):
    """Stateful reconnect: messages up to ``sequence_id`` were received (type 8)."""

    message_type: ClassVar[MessageType] = MessageType.ACK
    sequence_id: int


@dataclass(frozen=True, slots=True)
class SequenceMessage(HubMessage):
    """Stateful reconnect: the next message carries ``sequence_id`` (type 9)."""

    message_type: ClassVar[MessageType] = MessageType.SEQUENCE
    sequence_id: int


@dataclass(frozen=True, slots=True)
class InvocationBindingFailureMessage(HubMessage):
    """An invocation that was read but cannot be bound: never sent, only parsed.

    The parsers yield it instead of raising when an Invocation's (or StreamInvocation's)
    envelope is valid (type, invocation id, target, headers) but its arguments break a limit
    of :mod:`signalr_protocol.limits` (nesting depth, ``1e999``, a lone surrogate, an
    unknown MessagePack extension...) or its target holds a lone surrogate. The receiver
    answers an error Completion carrying ``error`` when ``invocation_id`` is set and keeps
    the connection; only an unreadable envelope closes it. ASP.NET Core's hub protocols do
    the same with their ``InvocationBindingFailureMessage``.

    Attributes:
        invocation_id: the invocation's id; ``None`` for a send (nobody to answer).
        target: the target, as text every encoder can carry (a lone surrogate is written as
            its ``\\uXXXX`` escape).
        error: the text for the caller and the log, e.g. ``Invocation 'echo' refused: the
            number 1e999 is too large: ...``.
        stream: ``True`` when the message was a StreamInvocation (type 4).
    """

    # Counted as the invocation it was (stateful reconnect sequence ids).
    message_type: ClassVar[MessageType] = MessageType.INVOCATION
    invocation_id: str | None
    target: str
    error: str
    stream: bool = False


@dataclass(frozen=True, slots=True)
class HandshakeRequest:
    """The client's first message: which hub protocol and version it speaks.

    Attributes:
        protocol: ``"json"`` or ``"messagepack"`` for the official clients (any string parses;
            :func:`signalr_protocol.handshake.select_codec` decides whether it is supported).
        version: the protocol version (1, or 2 with stateful reconnect).
    """

    protocol: str
    version: int


TRACKABLE_TYPES: frozenset[MessageType] = frozenset(
    {
        MessageType.INVOCATION,
        MessageType.STREAM_ITEM,
        MessageType.COMPLETION,
        MessageType.STREAM_INVOCATION,
        MessageType.CANCEL_INVOCATION,
    }
)
