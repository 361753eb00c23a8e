"""The hub-protocol side of a connection: handshake, incoming messages, upstream calls.

Transports hand every chunk the client sent to :meth:`HubSession.receive`, in order. The
session parses the handshake (answering it, or refusing it with an error and closing),
then hub messages: each Invocation is sent upstream and awaited before the next message,
and the upstream's reply bytes (a Completion, normally) are queued for the client. Pings
only count as a sign of life.

An invocation whose arguments (or target text) break a payload limit reaches the session as
an :class:`~signalr_protocol.messages.InvocationBindingFailureMessage`: it never goes
upstream, is logged in one line, and is answered with an error Completion saying what is
wrong when it has an invocation id (a send without one is only logged and dropped); the
connection stays open. Only a message whose envelope can't be read closes it.
:meth:`HubSession.finish` reports the disconnect upstream.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from signalr_protocol.codec import MessageParser, get_codec
from signalr_protocol.errors import HubProtocolError
from signalr_protocol.handshake import HandshakeParser, encode_handshake_response
from signalr_protocol.messages import (
    CloseMessage,
    CompletionMessage,
    InvocationBindingFailureMessage,
    InvocationMessage,
    StreamInvocationMessage,
)

from . import stateful
from .lifecycle import ConnectionState
from .metrics import CloseReason
from .upstream import UpstreamContext

if TYPE_CHECKING:
    from .connection import ClientConnection
    from .state import EmulatorState

__all__ = ["HubSession"]

logger = logging.getLogger("emulator.connections")

# Module constants: reading a member off an enum class costs a descriptor call in 3.11.
_HANDSHAKING = ConnectionState.HANDSHAKING
_CONNECTED = ConnectionState.CONNECTED
# Hub messages counted as inbound messages (pings, acks and sequence messages are not).
_COUNTED = (
    InvocationMessage,
    StreamInvocationMessage,
    CompletionMessage,
    InvocationBindingFailureMessage,
)


class HubSession:
    """Drives the hub protocol of one :class:`~emulator.connection.ClientConnection`."""

    __slots__ = ("_context", "_handshake", "_parser", "_state", "conn")

    def __init__(self, conn: ClientConnection, state: EmulatorState) -> None:
        self.conn = conn
        self._state = state
        self._handshake: HandshakeParser | None = HandshakeParser()
        self._parser: MessageParser | None = None
        self._context: UpstreamContext | None = None

    async def receive(self, data: bytes) -> None:
        """Process bytes the client sent (any split: partial or several messages)."""
        conn = self.conn
        conn.last_received = time.monotonic()
        if conn.state is _HANDSHAKING:
            data = await self._receive_handshake(data)
            if not data:  # incomplete or refused, or nothing after the handshake
                return
        elif conn.state is not _CONNECTED:
            return  # closing: input is no longer read
        assert self._parser is not None
        state = self._state
        metrics = state.metrics
        metrics.bytes_in(len(data))
        try:
            messages = self._parser.feed(data)
        except HubProtocolError as exc:
            logger.info("Connection %s sent an invalid message: %s", conn.connection_id, exc)
            conn.close(exc.close_reason, category=CloseReason.BAD_REQUEST)
            return
        link = conn.replay  # stateful reconnect: Ack, Sequence and duplicates stop here
        trace = state.trace
        for message in messages:
            if conn.closed:
                return
            if link is not None and not link.inbound(conn, message):
                continue
            if isinstance(message, _COUNTED):
                metrics.message_in()
                if trace.active:
                    trace.publish(
                        "message.in",
                        hub=conn.hub,
                        connectionId=conn.connection_id,
                        userId=conn.user_id,
                        target=getattr(message, "target", None),
                        size=len(data),
                    )
            await self._dispatch(message)

    async def _receive_handshake(self, data: bytes) -> bytes:
        conn = self.conn
        assert self._handshake is not None
        try:
            request = self._handshake.feed(data)
            if request is None:
                return b""
            codec = get_codec(request.protocol)
            if not codec.supports_version(request.version):
                raise HubProtocolError(
                    f"The server does not support version {request.version} of the "
                    f"'{request.protocol}' protocol."
                )
            if codec.binary and conn.transport is not None and conn.transport.text_only:
                raise HubProtocolError(
                    f"Cannot use the '{codec.name}' protocol on the current transport. The "
                    "transport does not support 'Binary' transfer format."
                )
        except HubProtocolError as exc:
            logger.info("Connection %s: handshake refused: %s", conn.connection_id, exc)
            conn.enqueue(encode_handshake_response(exc.close_reason))
            conn.close(exc.close_reason, category=CloseReason.HANDSHAKE_ERROR)  # see finish
            return b""
        remaining = self._handshake.remaining
        self._handshake = None
        conn.enqueue(encode_handshake_response())
        conn.open(codec)
        stateful.enable(conn, request.version, self._state.settings)
        self._parser = codec.new_parser(self._state.settings.max_message_size)
        self._state.registry.hub(conn.hub).add(conn)
        self._state.metrics.connection_opened(conn.hub, conn.transport)
        self._state.trace.publish(
            "connection.opened",
            hub=conn.hub,
            connectionId=conn.connection_id,
            userId=conn.user_id,
            transport=getattr(conn.transport, "value", conn.transport),
            protocol=codec.name,
        )
        self._context = UpstreamContext(
            hub=conn.hub,
            connection_id=conn.connection_id,
            user_id=conn.user_id,
            claims=conn.claims,
            query=conn.query,
            codec=codec,
        )
        logger.info(
            "Connected: connection %s hub %s user %s transport %s protocol %s",
            conn.connection_id,
            conn.hub,
            conn.user_id,
            conn.transport,
            codec.name,
        )
        upstream = self._state.upstream
        if upstream is not None:
            await upstream.connected(self._context)
        return remaining

    async def _dispatch(self, message: object) -> None:
        conn = self.conn
        if isinstance(message, InvocationMessage):
            upstream = self._state.upstream
            assert self._context is not None
            if upstream is None:
                return
            conn.in_call = True
            try:
                reply = await upstream.invoke(self._context, message)
            finally:
                conn.in_call = False
                conn.last_received = time.monotonic()
            if reply and conn.enqueue(reply):
                self._state.metrics.messages_out(1, len(reply))  # the service bills it
        elif isinstance(message, InvocationBindingFailureMessage):
            self._refuse(message)
        elif isinstance(message, StreamInvocationMessage):
            assert conn.codec is not None
            refusal = conn.codec.encode(
                CompletionMessage(
                    invocation_id=message.invocation_id,
                    error="Streaming is not supported in serverless mode.",
                )
            )
            if conn.enqueue(refusal):
                self._state.metrics.messages_out(1, len(refusal))
        elif isinstance(message, CompletionMessage):
            pending = conn.pending_results
            future = pending.pop(message.invocation_id, None) if pending else None
            if future is not None and not future.done():
                future.set_result(message)
        elif isinstance(message, CloseMessage):
            conn.abort(message.error, category=CloseReason.NORMAL)
        # Ping: a sign of life only. Completions answer REST :invoke calls; stream items,
        # cancels, Ack and Sequence are not forwarded in serverless mode.

    def _refuse(self, message: InvocationBindingFailureMessage) -> None:
        """An invocation outside the payload limits: one log line, an error Completion if
        it has an id, never the upstream; the connection stays open."""
        conn = self.conn
        logger.info(
            "Connection %s: %s%s",
            conn.connection_id,
            message.error,
            "" if message.invocation_id is not None else " (a send: nothing answered)",
        )
        if message.invocation_id is None:
            return
        assert conn.codec is not None
        answer = conn.codec.encode(
            CompletionMessage.with_error(message.invocation_id, message.error)
        )
        if conn.enqueue(answer):
            self._state.metrics.messages_out(1, len(answer))

    def _publish_closed(self, category: CloseReason, error: str | None) -> None:
        conn = self.conn
        self._state.trace.publish(
            "connection.closed",
            hub=conn.hub,
            connectionId=conn.connection_id,
            userId=conn.user_id,
            transport=getattr(conn.transport, "value", conn.transport),
            reason=category.value,
            error=error,
        )

    async def finish(self, error: str | None = None) -> None:
        """The connection ended: drop it from the registry and report it upstream."""
        conn = self.conn
        if not conn.closed:
            conn.abort(error)
        self._state.registry.remove(conn)
        reason = error if error is not None else conn.close_error
        if self._context is None:
            # Never opened: counted only when closed for a reason (a refused handshake, or
            # none in time), not when the client just went away before its handshake.
            if conn.close_category is not None:
                self._state.metrics.connection_refused(conn.close_category)
                self._publish_closed(conn.close_category, reason)
            return
        category = conn.close_category or CloseReason.NORMAL
        self._state.metrics.connection_closed(conn.hub, conn.transport, category)
        self._publish_closed(category, reason)
        logger.info(
            "Disconnected: connection %s hub %s%s",
            conn.connection_id,
            conn.hub,
            f" ({reason})" if reason else "",
        )
        context, self._context = self._context, None
        upstream = self._state.upstream
        if upstream is not None:
            await upstream.disconnected(context, reason)
