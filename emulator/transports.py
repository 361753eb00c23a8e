"""The three SignalR transports on ``/client/`` plus the HTTP POST send and the DELETE.

Each transport is a way to write the connection's output (everything queued goes out as
one frame / event / poll answer) and a way to feed what the client sends into the
connection's :class:`~emulator.session.HubSession`. The first request fixes the
connection's :class:`~emulator.lifecycle.Transport` (``attach``); a request of another
transport is refused.

* **WebSockets**: the ASGI handler reads frames and feeds the session inline; output is
  written directly by :meth:`ClientConnection.enqueue` (no writer task). Text frames for
  JSON, binary frames for MessagePack.
* **Server-Sent Events**: the GET response is the writer (``data:`` events); POSTs feed
  an inbound queue drained by a per-connection pump task, in order.
* **Long polling**: the first GET answers at once; later GETs wait up to
  ``long_poll_timeout`` for data (200 with data, 200 empty on timeout, 204 once closed);
  POSTs feed the pump; ``DELETE`` ends the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from . import stateful
from .connection import ClientConnection
from .errors import BadRequestError, ConflictError, NotFoundError
from .fastpath import DirectWebSocket, trim_accepted
from .http import Receive, Scope, Send, read_body, send_response
from .lifecycle import ConnectionState, Transport
from .session import HubSession
from .state import EmulatorState

__all__ = [
    "handle_delete",
    "handle_long_poll",
    "handle_post",
    "handle_server_sent_events",
    "handle_websocket",
]

logger = logging.getLogger("emulator.transports")

_CLOSE_GRACE = 2.0  # seconds a closing connection has to flush before its socket is dropped


async def handle_websocket(
    state: EmulatorState,
    conn: ClientConnection,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """Serve a WebSocket connection until either side ends it.

    Output goes straight from :meth:`ClientConnection.enqueue` to the socket or ``send``
    (no writer task); this handler's own task reads frames and feeds the session, so a
    connection costs one task. When the connection is closed from our side (REST close,
    timeout, overflow), a closer gives it ``_CLOSE_GRACE`` seconds to flush and send the
    close frame; a client that does not read is then dropped, and returning ends the
    socket.

    Raises:
        ConnectionStateError: the connection already has a transport (before accepting).
    """
    resumed = stateful.parked_session(conn)  # a stateful reconnect: no attach, no handshake
    if resumed is None:
        conn.attach(Transport.WEB_SOCKETS)
    await send({"type": "websocket.accept"})
    scope["emulator.accepted"] = True
    trim_accepted(send, scope)

    async def send_frame(data: bytes) -> None:
        codec = conn.codec
        if codec is not None and codec.binary:
            await send({"type": "websocket.send", "bytes": data})
        else:
            await send({"type": "websocket.send", "text": data.decode("utf-8")})

    conn.attach_sender(send_frame, DirectWebSocket.from_send(send))
    if resumed is None:
        session = HubSession(conn, state)
    else:
        session = resumed
        stateful.resume(conn)
    loop = asyncio.get_running_loop()
    handler = asyncio.current_task()
    dropped = False
    error: str | None = None
    lost = False  # the WebSocket ended without a normal close (stateful reconnect may follow)

    async def closer() -> None:
        # Flush, then send the close frame; the client's reply (or uvicorn's close timeout)
        # ends the read loop below. A client that does not read within the grace period
        # is dropped by cancelling the read loop.
        nonlocal dropped
        try:
            async with asyncio.timeout(_CLOSE_GRACE):
                await conn.flushed()
                await send({"type": "websocket.close", "code": 1000})
                return
        except Exception as exc:  # a timeout, or the client went away meanwhile
            logger.debug("Closing %s: %r", conn.connection_id, exc)
        if handler is not None and not handler.done():
            dropped = True
            handler.cancel()

    closing: list[asyncio.Task[None]] = []
    conn.on_close = lambda: closing.append(loop.create_task(closer()))
    try:
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                data = message.get("bytes")
                if data is None:
                    data = message.get("text", "").encode("utf-8")
                if not conn.closed:
                    await session.receive(data)
            elif kind == "websocket.disconnect":
                code = message.get("code", 1000)
                if code not in (1000, 1001, 1005) and not conn.closed:
                    error = f"WebSocket closed with status code: {code}."
                lost = code not in (1000, 1001)
                break
    except asyncio.CancelledError:
        if not dropped or handler is None:
            raise
        handler.uncancel()
    finally:
        if not (lost and stateful.park(state, conn, session)):
            conn.abort(error)
            for task in closing:
                task.cancel()
            await asyncio.gather(*closing, return_exceptions=True)
            await session.finish(error)


def _start_pump(state: EmulatorState, conn: ClientConnection) -> None:
    inbound: asyncio.Queue[bytes | None] = asyncio.Queue()
    conn.inbound = inbound
    conn.on_close = lambda: inbound.put_nowait(None)
    session = HubSession(conn, state)

    async def pump() -> None:
        try:
            while True:
                data = await inbound.get()
                if data is None or conn.closed:
                    break
                await session.receive(data)
        finally:
            await session.finish()

    state.spawn(pump())


async def _watch_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def handle_server_sent_events(
    state: EmulatorState, conn: ClientConnection, receive: Receive, send: Send
) -> None:
    """Stream the connection's output as Server-Sent Events until it closes."""
    if conn.state is not ConnectionState.NEGOTIATED:
        raise ConflictError("This connection already has a transport.")
    conn.attach(Transport.SERVER_SENT_EVENTS)
    _start_pump(state, conn)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream"),
                (b"cache-control", b"no-cache"),
                (b"x-accel-buffering", b"no"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b":\r\n\r\n", "more_body": True})
    loop = asyncio.get_running_loop()
    watcher = loop.create_task(_watch_disconnect(receive))
    watcher.add_done_callback(lambda _: conn.abort())
    try:
        while True:
            data = await conn.wait_batch()
            if data is None:
                break
            event = b"data: " + data.replace(b"\n", b"\ndata: ") + b"\r\n\r\n"
            await send({"type": "http.response.body", "body": event, "more_body": True})
        with contextlib.suppress(Exception):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        conn.abort()


async def _wait_for_data(conn: ClientConnection, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await conn.wait()


async def handle_long_poll(
    state: EmulatorState, conn: ClientConnection, receive: Receive, send: Send
) -> None:
    """Answer one long-poll GET."""
    if conn.state is ConnectionState.NEGOTIATED:
        conn.attach(Transport.LONG_POLLING)
        _start_pump(state, conn)
        await send_response(send, 200, content_type="application/octet-stream")
        return
    transport = conn.transport
    if transport is None:
        raise NotFoundError("The connection is closed.")
    if not transport.polled:
        raise BadRequestError(f"This connection uses {transport}, not long polling.")
    if conn.drained:
        await send_response(send, 204)
        return
    conn.poll += 1
    poll = conn.poll
    conn.idle_since = None
    conn.last_received = time.monotonic()
    await receive()  # the (empty) request body; the next receive() is the disconnect
    loop = asyncio.get_running_loop()
    watcher = loop.create_task(_watch_disconnect(receive))
    waiter = loop.create_task(_wait_for_data(conn, state.settings.long_poll_timeout))
    try:
        await asyncio.wait((watcher, waiter), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (watcher, waiter):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if conn.poll == poll:
            conn.idle_since = time.monotonic()
    if watcher.done() and not watcher.cancelled() or conn.poll != poll:
        return  # the client left, or a newer poll took over: keep the data for that one
    data = conn.take()
    if data:
        codec = conn.codec
        binary = codec is not None and codec.binary
        content_type = "application/octet-stream" if binary else "text/plain; charset=utf-8"
        await send_response(send, 200, data, content_type=content_type)
    elif conn.closed:
        await send_response(send, 204)
    else:
        await send_response(send, 200, content_type="application/octet-stream")


async def handle_post(
    state: EmulatorState, conn: ClientConnection, receive: Receive, send: Send
) -> None:
    """Accept bytes the client sends over SSE / long polling (one or more messages)."""
    transport = conn.transport
    if transport is None or not transport.posts or conn.inbound is None:
        raise BadRequestError("POST sends are only for Server-Sent Events and long polling.")
    settings = state.settings
    body = await read_body(receive, settings.max_message_size * 4, settings.body_read_timeout)
    if conn.closed:
        raise NotFoundError("The connection is closed.")
    conn.last_received = time.monotonic()
    conn.inbound.put_nowait(body)
    await send_response(send, 200)


async def handle_delete(
    state: EmulatorState, conn: ClientConnection, receive: Receive, send: Send
) -> None:
    """End a long-polling connection at the client's request."""
    if conn.transport is None or not conn.transport.polled:
        raise BadRequestError("DELETE is only for long-polling connections.")
    conn.abort()
    await send_response(send, 202)
