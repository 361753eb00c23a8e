"""The lifecycle of a client connection (its state) and the transports it can use.

Rules of :class:`ConnectionState` (one field, ``ClientConnection.state``, holds it):

* A connection is born ``NEGOTIATED``: negotiate made it, or a WebSocket request without
  ``id`` did; it is known by its token but has no transport yet.
* The first transport request moves it to ``HANDSHAKING``: the transport is fixed from then
  on, and output (the handshake answer) may be queued. A second transport is refused.
* An accepted handshake moves it to ``CONNECTED``: the hub protocol is known, the
  connection is in its hub, and it receives fan-out and sends invocations upstream.
* ``close()`` moves a handshaking or connected connection to ``CLOSING``: no more output is
  accepted, and what is queued (the Close message last) is still written. A negotiated
  connection has nothing to flush and no transport, so it goes straight to ``CLOSED``.
* ``abort()`` (the transport went away, or the queue must be dropped) moves any connection
  to ``CLOSED``: nothing is left to write.
* States only move forward, along :data:`TRANSITIONS`; asking for any other move raises
  :class:`~emulator.errors.ConnectionStateError`, which names the state the connection was
  in, the state asked for, and the states it could have moved to. Closing or aborting a
  connection that is already that far is a no-op, not a transition.

:class:`Transport` names the three SignalR transports (docs/protocol.md §3.3) with the
traits the emulator branches on, so no code compares transport names.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

from .errors import ConnectionStateError

__all__ = ["TRANSITIONS", "ConnectionState", "Transport", "check_transition"]


class ConnectionState(enum.IntEnum):
    """Where a client connection is in its life; ordered, it only moves forward."""

    NEGOTIATED = 0
    """Known by its token; no transport yet."""
    HANDSHAKING = 1
    """A transport is attached; waiting for the handshake request."""
    CONNECTED = 2
    """The handshake succeeded: in its hub, with a hub protocol."""
    CLOSING = 3
    """No more output accepted; what is queued is still written."""
    CLOSED = 4
    """Over: nothing is left to write."""


_S = ConnectionState

TRANSITIONS: Final[Mapping[ConnectionState, frozenset[ConnectionState]]] = {
    _S.NEGOTIATED: frozenset({_S.HANDSHAKING, _S.CLOSED}),
    _S.HANDSHAKING: frozenset({_S.CONNECTED, _S.CLOSING, _S.CLOSED}),
    _S.CONNECTED: frozenset({_S.CLOSING, _S.CLOSED}),
    _S.CLOSING: frozenset({_S.CLOSED}),
    _S.CLOSED: frozenset(),
}
"""The legal moves: state → the states it may move to."""


def check_transition(connection_id: str, current: ConnectionState, new: ConnectionState) -> None:
    """Raise unless ``current → new`` is in :data:`TRANSITIONS`.

    Raises:
        ConnectionStateError: the move is not allowed; the message names what was expected.
    """
    allowed = TRANSITIONS[current]
    if new not in allowed:
        expected = " or ".join(state.name for state in sorted(allowed)) or "nothing (final)"
        raise ConnectionStateError(
            f"Connection {connection_id} is {current.name}: it can move to {expected}, "
            f"not {new.name}.",
            current=current.name,
            requested=new.name,
        )


class Transport(enum.Enum):
    """A SignalR transport; the value is its name on the wire (negotiate, logs).

    Attributes:
        text_only: carries text only, so a binary hub protocol (MessagePack) is refused
            at the handshake (Server-Sent Events).
        keep_alive: the server sends keep-alive Pings and closes a client that stays silent
            for ``client_timeout`` (WebSockets, Server-Sent Events); a long-polling
            client shows it is alive by polling instead.
        polled: the client fetches its output with one GET after another, so the
            connection outlives each request: it stays findable for a while after it
            closed (a last poll collects the Close message), it is dropped when polls stop,
            and the client ends it with ``DELETE`` (long polling).
        posts: the client sends its messages with HTTP POSTs to ``/client/`` rather than
            over the transport itself (Server-Sent Events, long polling).
    """

    text_only: bool
    keep_alive: bool
    polled: bool
    posts: bool

    WEB_SOCKETS = ("WebSockets", False, True, False, False)
    SERVER_SENT_EVENTS = ("ServerSentEvents", True, True, False, True)
    LONG_POLLING = ("LongPolling", False, False, True, True)

    def __new__(
        cls, wire_name: str, text_only: bool, keep_alive: bool, polled: bool, posts: bool
    ) -> Transport:
        member = object.__new__(cls)
        member._value_ = wire_name
        member.text_only = text_only
        member.keep_alive = keep_alive
        member.polled = polled
        member.posts = posts
        return member

    @property
    def transfer_formats(self) -> list[str]:
        """The negotiate ``transferFormats`` of this transport."""
        return ["Text"] if self.text_only else ["Text", "Binary"]

    def __str__(self) -> str:
        return str(self.value)
