"""Stateful reconnect: a client whose WebSocket drops comes back to the same connection and
loses nothing (docs/protocol.md §3.8).

How a connection gets it, as ASP.NET Core's ``HttpConnectionDispatcher`` and
``HubConnectionContext`` grant it:

1. Negotiate with ``useStatefulReconnect=true`` (the JS client's ``withStatefulReconnect()``)
   answers ``"useStatefulReconnect": true`` and marks the connection (:func:`requested`),
   unless ``EMULATOR_STATEFUL_RECONNECT=false``.
2. A handshake asking for hub protocol version 2 or more on WebSockets arms it
   (:func:`enable`); version 1 (any client that did not negotiate it) leaves it off.

Then a :class:`StatefulLink` (``conn.replay``) sits in the connection's output path
(:meth:`StatefulLink.admit`): every trackable message gets a sequence id and stays in a
:class:`~signalr_protocol.reconnect.ReplayBuffer` until the client's Ack; past
``EMULATOR_STATEFUL_RECONNECT_BUFFER_SIZE`` unacknowledged bytes (ASP.NET Core's
``StatefulReconnectBufferSize``, 100,000) further messages wait for an Ack, and past
``EMULATOR_MAX_BUFFERED_BYTES`` waiting the client counts as too slow and is closed. The
emulator acknowledges what the client sends once per housekeeping round (≤ 1 s, as
ASP.NET's 1 s Ack timer) and drops the client's duplicates (:meth:`StatefulLink.inbound`).

When the WebSocket ends without the client's Close message (and without a close frame with
code 1000/1001), the connection is **parked** (:func:`park`) instead of ended: it stays in its
hub and groups, output keeps being numbered and held, and nothing goes upstream. A WebSocket
request with the same ``id`` within ``EMULATOR_STATEFUL_RECONNECT_WINDOW`` seconds (ASP.NET's
``DisconnectTimeout``, 15 s) resumes it (:func:`take_over`, :func:`resume`): no handshake,
the emulator sends ``Sequence{first unacknowledged id}`` and every unacknowledged message, the
client does the same, and each side drops what it already had. A reconnect that finds the
old WebSocket still open (the server had not noticed the drop) aborts it first. When the
window passes, the connection ends and only then is ``disconnected`` sent upstream; a later
reconnect is refused with 404, which makes the client close.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from signalr_protocol.errors import HubProtocolError
from signalr_protocol.messages import AckMessage, HubMessage, SequenceMessage
from signalr_protocol.reconnect import ReplayBuffer, count_trackable

from .lifecycle import ConnectionState, Transport

if TYPE_CHECKING:
    from signalr_protocol.codec import HubCodec

    from .connection import ClientConnection
    from .http import Request
    from .session import HubSession
    from .settings import EmulatorSettings
    from .state import EmulatorState

__all__ = ["StatefulLink", "enable", "park", "parked_session", "requested", "resume", "take_over"]

logger = logging.getLogger("emulator.connections")

_CONNECTED = ConnectionState.CONNECTED

# One fan-out hands the same bytes object to every receiver: count its messages once.
_counted: tuple[bytes, HubCodec, int] | None = None


def _count(codec: HubCodec, data: bytes) -> int:
    global _counted
    cached = _counted
    if cached is not None and cached[0] is data and cached[1] is codec:
        return cached[2]
    try:
        count = count_trackable(codec, data)
    except HubProtocolError:
        count = 1  # bytes relayed as given (REST binary body): one opaque message
    _counted = (data, codec, count)
    return count


def requested(request: Request, settings: EmulatorSettings) -> bool:
    """Whether a negotiate request asks for stateful reconnect and the emulator grants it
    (``useStatefulReconnect=true``, read as .NET's ``bool.TryParse`` reads it)."""
    value = request.param("useStatefulReconnect")
    return settings.stateful_reconnect and value is not None and value.strip().lower() == "true"


def enable(conn: ClientConnection, version: int, settings: EmulatorSettings) -> None:
    """After an accepted handshake: arm stateful reconnect when the connection negotiated it,
    the client asked for hub protocol version 2 or more, and the transport is WebSockets."""
    if not conn.stateful or version < 2 or conn.transport is not Transport.WEB_SOCKETS:
        return
    assert conn.codec is not None
    conn.replay = StatefulLink(
        conn.codec,
        settings.stateful_reconnect_buffer_size,
        settings.max_buffered_bytes,
    )


class StatefulLink:
    """The stateful-reconnect side of one connection (``conn.replay``).

    Attributes:
        buffer: sequence ids, unacknowledged output, duplicate detection.
        detached_since: monotonic time the transport was lost, or ``None`` while attached.
        session: the parked :class:`~emulator.session.HubSession` while detached.
        parked: set while detached (a takeover waits on it).
    """

    __slots__ = ("_bypass", "_codec", "_max_held", "buffer", "detached_since", "parked", "session")

    def __init__(self, codec: HubCodec, limit: int, max_held: int) -> None:
        self._codec = codec
        self._max_held = max_held
        self._bypass = False
        self.buffer = ReplayBuffer(limit)
        self.detached_since: float | None = None
        self.session: HubSession | None = None
        self.parked = asyncio.Event()

    # output ----------------------------------------------------------------------------------

    def admit(self, conn: ClientConnection, data: bytes) -> bool:
        """Number and keep outgoing bytes; ``True`` when they may be written now.

        Messages that are not tracked (Ping, Ack, Close) go only to a live transport. Tracked
        ones wait while the client is away or behind on its Acks; too much waiting closes
        the connection.
        """
        if self._bypass:
            return True
        attached = self.detached_since is None
        count = _count(self._codec, data)
        if count == 0:
            return attached
        buffer = self.buffer
        if buffer.add(data, count, writable=attached):
            return True
        if buffer.held_bytes > self._max_held:
            if attached:
                logger.warning(
                    "Connection %s (hub %s) closed: it did not acknowledge its messages "
                    "(%d bytes waiting, limit %d)",
                    conn.connection_id,
                    conn.hub,
                    buffer.held_bytes,
                    self._max_held,
                )
                conn.close("Connection closed: the client did not acknowledge its messages.")
            else:
                logger.warning(
                    "Connection %s (hub %s) ended: over %d bytes waited for its reconnect",
                    conn.connection_id,
                    conn.hub,
                    self._max_held,
                )
                conn.abort("Too many messages waited for the client to reconnect.")
        return False

    def _write(self, conn: ClientConnection, chunks: list[bytes]) -> None:
        self._bypass = True
        try:
            for chunk in chunks:
                conn.enqueue(chunk)
        finally:
            self._bypass = False

    # input -----------------------------------------------------------------------------------

    def inbound(self, conn: ClientConnection, message: HubMessage) -> bool:
        """Account for a message from the client; ``True`` when the session should handle it
        (``False`` for duplicates, Ack, Sequence, and anything before an expected Sequence)."""
        buffer = self.buffer
        if not buffer.should_process(message):
            return False
        kind = type(message)
        if kind is AckMessage:
            assert isinstance(message, AckMessage)
            self._write(conn, buffer.ack(message.sequence_id))
            return False
        if kind is SequenceMessage:
            assert isinstance(message, SequenceMessage)
            try:
                buffer.reset_sequence(message.sequence_id)
            except HubProtocolError as exc:
                logger.info("Connection %s: %s", conn.connection_id, exc)
                conn.close(exc.close_reason)
            return False
        return True

    # housekeeping ----------------------------------------------------------------------------

    def housekeep(self, conn: ClientConnection, now: float, window: float) -> bool:
        """One housekeeping round: Ack what the client sent, or end a connection whose client
        did not come back within ``window`` seconds.

        Returns:
            ``True`` while detached: the caller skips keep-alive and client timeout.
        """
        since = self.detached_since
        if since is not None:
            if now - since > window:
                logger.info("Connection %s: no reconnect within %g s", conn.connection_id, window)
                conn.abort(f"The client did not reconnect within {window:g} seconds.")
            return True
        sequence_id = self.buffer.ack_due()
        if sequence_id is not None:
            conn.enqueue(self._codec.encode(AckMessage(sequence_id)))
        return False


def park(state: EmulatorState, conn: ClientConnection, session: HubSession) -> bool:
    """The WebSocket of ``conn`` was lost (it ended without a close frame with code 1000 or
    1001): keep the connection for a reconnect if it has stateful reconnect.

    Returns:
        ``True`` when the connection is parked (the caller must not end it), ``False`` when
        it ends as usual (no stateful reconnect, or already closed by either side, e.g. by
        the client's Close message).
    """
    link = conn.replay
    if link is None or conn.state is not _CONNECTED:
        return False
    conn.detach_sender()
    link.detached_since = time.monotonic()
    link.session = session
    link.buffer.expect_sequence()

    def end() -> None:
        state.spawn(_end(conn, session))

    conn.on_close = end
    link.parked.set()
    logger.info(
        "Connection %s (hub %s) lost its transport; kept %g s for a stateful reconnect",
        conn.connection_id,
        conn.hub,
        state.settings.stateful_reconnect_window,
    )
    return True


async def _end(conn: ClientConnection, session: HubSession) -> None:
    link = conn.replay
    if link is not None:
        link.session = None
    conn.abort()
    await session.finish()


async def take_over(conn: ClientConnection, seconds: float) -> bool:
    """A WebSocket request names a connection that already has its transport: if it is a
    stateful connection, make sure it is parked (aborting a WebSocket the server still thinks
    open, and waiting up to ``seconds`` for it to let go).

    Returns:
        ``True`` when the request may resume the connection.
    """
    link = conn.replay
    if link is None or conn.state is not _CONNECTED:
        return False
    if link.session is None:
        if not conn.drop_transport():
            return False
        try:
            async with asyncio.timeout(seconds):
                await link.parked.wait()
        except TimeoutError:
            return False
    return _resumable(conn, link)


def _resumable(conn: ClientConnection, link: StatefulLink) -> bool:
    return link.session is not None and conn.state is _CONNECTED


def parked_session(conn: ClientConnection) -> HubSession | None:
    """Claim the parked session of a connection being resumed (``None``: not a resume)."""
    link = conn.replay
    if link is None or link.session is None:
        return None
    session, link.session = link.session, None
    return session


def resume(conn: ClientConnection) -> None:
    """A new WebSocket carries the connection (its sender is attached): send ``Sequence`` and
    everything the client has not acknowledged."""
    link = conn.replay
    assert link is not None and conn.codec is not None
    link.detached_since = None
    link.parked.clear()
    now = time.monotonic()
    conn.last_received = now
    conn.last_sent = now
    first, chunks = link.buffer.resume()
    conn.enqueue(conn.codec.encode(SequenceMessage(first)))
    link._write(conn, chunks)
    logger.info(
        "Connection %s resumed: %d chunk(s) sent again from sequence id %d",
        conn.connection_id,
        len(chunks),
        first,
    )
