"""One client connection: identity, lifecycle state, hub-protocol codec, bounded output buffer.

The connection's place in its lifecycle is one field, :attr:`ClientConnection.state`
(:class:`~emulator.lifecycle.ConnectionState`), moved only by :meth:`~ClientConnection.attach`
(a transport request), :meth:`~ClientConnection.open` (the handshake),
:meth:`~ClientConnection.close` and :meth:`~ClientConnection.abort`, along the transition
table of :mod:`emulator.lifecycle`.

Senders (REST fan-out, upstream replies, keep-alive) call :meth:`ClientConnection.enqueue`,
which never awaits: it appends already-encoded bytes to the connection's buffer and wakes
the connection's transport writer. The writer takes everything pending at once
(:meth:`ClientConnection.wait_batch`) and writes it as one transport frame — the hub
protocol allows several messages per frame — so a burst costs one write per receiver, not
one per message.

With a direct sender (WebSockets, :meth:`ClientConnection.attach_sender`) there is no
writer task at all: :meth:`~ClientConnection.enqueue` starts the send at once and it
usually completes synchronously (:func:`emulator.eager.start_eagerly`); only a send that
has to wait becomes a task, and what arrives meanwhile is queued and sent as one frame
when it finishes.

A receiver that does not keep up lets its buffer grow; past ``max_buffered_bytes`` the
pending data is dropped, a Close message is queued and the connection ends, so one slow
client can neither stall the others nor bloat the process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from signalr_protocol.messages import CloseMessage

from .eager import start_eagerly
from .fastpath import DirectWebSocket, ws_frame
from .lifecycle import ConnectionState, Transport, check_transition
from .metrics import CloseReason

if TYPE_CHECKING:
    from signalr_protocol.codec import HubCodec

    from .stateful import StatefulLink

__all__ = ["ClientConnection", "Sender"]

Sender = Callable[[bytes], Coroutine[Any, Any, None]]
"""Writes one transport frame (WebSockets): the direct path used by :meth:`enqueue`."""

logger = logging.getLogger("emulator.connection")

# Module constants: reading a member off an enum class costs a descriptor call in 3.11.
_NEGOTIATED = ConnectionState.NEGOTIATED
_HANDSHAKING = ConnectionState.HANDSHAKING
_CONNECTED = ConnectionState.CONNECTED
_CLOSING = ConnectionState.CLOSING
_CLOSED = ConnectionState.CLOSED


class ClientConnection:
    """A client connection to one hub.

    Attributes:
        connection_id: the id the client and the REST API know it by.
        token: the ``connectionToken`` used as ``id`` on transport requests (v1), or the
            connection id (v0 and connections made without negotiate).
        hub: the lower-cased hub name (with the application prefix, if any).
        user_id: the user from the access token, or ``None``.
        claims: the token's claims as ``(type, value)`` strings.
        query: the connect request's query string without ``access_token``.
        state: where the connection is in its lifecycle (:mod:`emulator.lifecycle`); it
            moves only through :meth:`attach`, :meth:`open`, :meth:`close` and
            :meth:`abort`.
        transport: the transport, fixed by the first transport request (``None`` while
            ``NEGOTIATED``).
        codec: the hub protocol, set when the handshake succeeds (``None`` before
            ``CONNECTED``).
        close_error: the reason the connection was closed, if any.
        last_received: monotonic time of the last sign of life from the client.
        in_call: an invocation of this connection is with the upstream; the client timeout
            is paused meanwhile (the client's pings wait unread behind it), as ASP.NET Core
            pauses it while a hub method runs.
        on_close: called once when the connection is closed or aborted (HTTP transports
            use it to stop their inbound pump).
        pending_results: invocation id → future of the client's Completion, for REST
            ``:invoke`` calls waiting on this connection.
        stateful: negotiate granted stateful reconnect (:mod:`emulator.stateful`).
        replay: the connection's stateful-reconnect link once its handshake armed it, else
            ``None``; it numbers, keeps and replays output (:mod:`emulator.stateful`).
    """

    __slots__ = (
        "_direct",
        "_flushed",
        "_inflight",
        "_limit",
        "_sender",
        "_queue",
        "_size",
        "_waiter",
        "claims",
        "close_category",
        "close_error",
        "codec",
        "connection_id",
        "created",
        "hub",
        "idle_since",
        "in_call",
        "inbound",
        "last_received",
        "last_sent",
        "on_close",
        "query",
        "replay",
        "sent_flag",
        "stateful",
        "state",
        "token",
        "transport",
        "pending_results",
        "poll",
        "user_id",
    )

    def __init__(
        self,
        *,
        connection_id: str,
        token: str,
        hub: str,
        user_id: str | None,
        claims: tuple[tuple[str, str], ...] = (),
        query: str = "",
        max_buffered_bytes: int = 4 * 1024 * 1024,
    ) -> None:
        now = time.monotonic()
        self.connection_id = connection_id
        self.token = token
        self.hub = hub
        self.user_id = user_id
        self.claims = claims
        self.query = query
        self.state = _NEGOTIATED
        self.transport: Transport | None = None
        self.codec: HubCodec | None = None
        self.close_error: str | None = None
        self.close_category: CloseReason | None = None
        self.created = now
        self.last_received = now
        self.in_call = False
        self.last_sent = now
        self.idle_since: float | None = now
        self.sent_flag = False
        self.on_close: Callable[[], None] | None = None
        self.inbound: asyncio.Queue[bytes | None] | None = None
        self.poll = 0
        self.pending_results: dict[str, asyncio.Future[Any]] | None = None
        self.stateful = False
        self.replay: StatefulLink | None = None
        self._limit = max_buffered_bytes
        self._queue: list[bytes] = []  # a deque would preallocate ~700 bytes per connection
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self._sender: Sender | None = None
        self._direct: DirectWebSocket | None = None
        self._inflight: asyncio.Task[None] | None = None
        self._flushed: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return (
            f"<ClientConnection {self.connection_id} hub={self.hub} user={self.user_id!r} "
            f"{self.state.name}>"
        )

    @property
    def closed(self) -> bool:
        """``CLOSING`` or ``CLOSED``: no more output is accepted."""
        return self.state >= _CLOSING

    @property
    def fast_path(self) -> bool:
        """Whether output can bypass ASGI ``send`` (see :mod:`emulator.fastpath`)."""
        return self._direct is not None

    def _move(self, state: ConnectionState) -> None:
        check_transition(self.connection_id, self.state, state)
        self.state = state

    def attach(self, transport: Transport) -> None:
        """The first transport request arrived: ``NEGOTIATED`` → ``HANDSHAKING``.

        A polled transport (long polling) counts as idle until its first waiting poll.

        Raises:
            ConnectionStateError: the connection already has a transport or is closed.
        """
        self._move(_HANDSHAKING)
        self.transport = transport
        self.idle_since = time.monotonic() if transport.polled else None

    def open(self, codec: HubCodec) -> None:
        """The handshake succeeded with ``codec``: ``HANDSHAKING`` → ``CONNECTED``.

        Raises:
            ConnectionStateError: the connection is not handshaking.
        """
        self._move(_CONNECTED)
        self.codec = codec

    def enqueue(self, data: bytes, frame: bytes | None = None) -> bool:
        """Queue encoded hub-protocol bytes for the client, without awaiting.

        Args:
            data: one or more framed hub messages.
            frame: ``data`` already wrapped in a WebSocket frame of the right type (text
                for JSON, binary for MessagePack), shared by all receivers of a fan-out.

        Returns:
            ``False`` when the connection is closed or was just closed for overflowing its
            buffer; ``True`` otherwise.
        """
        state = self.state
        if state is not _CONNECTED and state >= _CLOSING:  # the common case tested first
            return False
        link = self.replay
        if link is not None and not link.admit(self, data):
            return self.state < _CLOSING  # kept for the client (stateful reconnect)
        if self._sender is not None and self._inflight is None and not self._queue:
            self.sent_flag = True
            direct = self._direct
            if direct is not None:
                if frame is None:
                    codec = self.codec
                    frame = ws_frame(data, binary=codec is not None and codec.binary)
                if direct.try_write(frame):
                    return True
            self._send_now(data)
            return True
        size = self._size + len(data)
        if size > self._limit:
            logger.warning(
                "Connection %s (hub %s) closed: it fell %d bytes behind (limit %d)",
                self.connection_id,
                self.hub,
                size,
                self._limit,
            )
            self._queue.clear()
            self._size = 0
            self.close(
                "Connection closed: the client did not read its messages fast enough.",
                category=CloseReason.SLOW_CLIENT,
            )
            return False
        self._size = size
        self._queue.append(data)
        self.sent_flag = True
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        return True

    def attach_sender(self, sender: Sender, direct: DirectWebSocket | None = None) -> None:
        """Write output through ``sender`` directly instead of a writer loop; with
        ``direct``, pre-framed bytes go straight to the transport when it is writable."""
        self._sender = sender
        self._direct = direct

    def detach_sender(self) -> None:
        """The transport went away but the connection lives on (stateful reconnect): stop
        writing to it and drop what was queued for it (the replay buffer keeps it)."""
        self._sender = None
        self._direct = None
        self._queue.clear()
        self._size = 0
        self.on_close = None
        inflight = self._inflight
        if inflight is not None:
            self._inflight = None
            inflight.cancel()
        self._set_flushed()

    def drop_transport(self) -> bool:
        """Abort the WebSocket's TCP connection at once, so its reader ends (a stateful
        reconnect takes over); ``False`` when there is no direct transport to abort."""
        direct = self._direct
        return direct is not None and direct.abort()

    def _send_now(self, data: bytes) -> None:
        assert self._sender is not None
        try:
            task = start_eagerly(self._sender(data))
        except Exception as exc:
            self._send_failed(exc)
            return
        if task is not None:
            self._inflight = task
            task.add_done_callback(self._send_done)
        elif not self._queue:
            self._set_flushed()

    def _send_done(self, task: asyncio.Task[None]) -> None:
        self._inflight = None
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._send_failed(exc)
        elif self._queue:
            self._send_now(self.take())
        else:
            self._set_flushed()

    def _send_failed(self, exc: BaseException) -> None:
        logger.debug("Write to connection %s failed: %r", self.connection_id, exc)
        if self.replay is None:  # with stateful reconnect the replay buffer has the data
            self.abort()

    def _set_flushed(self) -> None:
        flushed = self._flushed
        if flushed is not None:
            self._flushed = None
            if not flushed.done():
                flushed.set_result(None)

    async def flushed(self) -> None:
        """Wait until a direct sender has written everything queued (or the connection was
        aborted)."""
        while self._inflight is not None or self._queue:
            if self._flushed is None:
                self._flushed = asyncio.get_running_loop().create_future()
            await self._flushed

    def close(
        self,
        error: str | None = None,
        *,
        allow_reconnect: bool = False,
        category: CloseReason | None = None,
    ) -> None:
        """Queue a Close message (once connected) and stop accepting output: ``CLOSING``.

        The writer sends what is queued, then ends the transport. A connection without a
        transport has nothing to flush and becomes ``CLOSED``. No-op once closing.
        ``category`` is the service's close category (metrics and the live trace).
        """
        state = self.state
        if state >= _CLOSING:
            return
        if state is _NEGOTIATED:
            self.close_error = error
            self.close_category = category
            self._move(_CLOSED)
            self._wake()
            return
        if state is _CONNECTED:
            assert self.codec is not None
            message = CloseMessage(error=error, allow_reconnect=allow_reconnect)
            self.enqueue(self.codec.encode(message))
            if self.state >= _CLOSING:  # the Close message overflowed the buffer
                return
        self.close_error = error
        self.close_category = category
        self._move(_CLOSING)
        self._wake()

    def abort(self, error: str | None = None, *, category: CloseReason | None = None) -> None:
        """Stop at once: drop pending output and wake the writer (the transport is gone).

        Any state becomes ``CLOSED``; ``error`` and ``category`` (the close category) are
        kept only if the connection was not closing already. No-op once closed.
        """
        if self.state is _CLOSED:
            return
        if self.state < _CLOSING:
            self.close_error = error
            self.close_category = category
        self._move(_CLOSED)
        self._queue.clear()
        self._size = 0
        inflight = self._inflight
        if inflight is not None:
            self._inflight = None
            inflight.cancel()
        self._set_flushed()
        self._wake()

    def _wake(self) -> None:
        pending = self.pending_results
        if pending:
            self.pending_results = None
            for future in pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("The connection closed."))
        callback = self.on_close
        if callback is not None:
            self.on_close = None
            callback()
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def take(self) -> bytes:
        """Take everything queued as one byte string (empty when nothing is queued)."""
        queue = self._queue
        if not queue:
            return b""
        data = queue[0] if len(queue) == 1 else b"".join(queue)
        queue.clear()
        self._size = 0
        return data

    @property
    def drained(self) -> bool:
        """Closing or closed, and nothing is left to write."""
        return self.state >= _CLOSING and not self._queue

    async def wait(self) -> None:
        """Return when output is queued, the connection closes, or another waiter replaces
        this one (a newer long poll). Bound it with ``asyncio.timeout`` if needed."""
        if self._queue or self.state >= _CLOSING:
            return
        previous = self._waiter
        if previous is not None and not previous.done():
            previous.set_result(None)
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            if self._waiter is waiter:
                self._waiter = None

    async def wait_batch(self) -> bytes | None:
        """Wait for output and take it all.

        Returns:
            The pending bytes, or ``None`` when the connection is closed and everything
            queued has been taken.
        """
        while True:
            if self._queue:
                return self.take()
            if self.state >= _CLOSING:
                return None
            await self.wait()
