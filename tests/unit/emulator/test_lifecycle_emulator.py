"""The connection lifecycle: one state, moved only along the transition table."""

from __future__ import annotations

import asyncio

import pytest

from emulator.connection import ClientConnection
from emulator.errors import ConflictError, ConnectionStateError
from emulator.lifecycle import TRANSITIONS, ConnectionState, Transport, check_transition
from signalr_protocol.codec import JSON_CODEC, MSGPACK_CODEC
from signalr_protocol.messages import CloseMessage

S = ConnectionState


def state(c: ClientConnection) -> ConnectionState:
    """The state, read through a call (so the type checker doesn't pin it between steps)."""
    return c.state


def conn() -> ClientConnection:
    return ClientConnection(connection_id="c1", token="t1", hub="chat", user_id=None)


def connected(transport: Transport = Transport.WEB_SOCKETS) -> ClientConnection:
    c = conn()
    c.attach(transport)
    c.open(JSON_CODEC)
    return c


def test_every_transition_moves_forward_and_closed_is_final() -> None:
    """The table only moves forward, every state can reach CLOSED, and CLOSED leads nowhere."""
    assert set(TRANSITIONS) == set(ConnectionState)
    for state, targets in TRANSITIONS.items():
        assert all(target > state for target in targets)
        assert state is S.CLOSED or S.CLOSED in targets
    assert TRANSITIONS[S.CLOSED] == frozenset()


def test_illegal_transition_names_what_was_expected_and_what_arrived() -> None:
    """A move outside the table raises a 409-class error naming both states and the options."""
    with pytest.raises(ConnectionStateError) as info:
        check_transition("c9", S.NEGOTIATED, S.CONNECTED)
    error = info.value
    assert isinstance(error, ConflictError) and error.status_code == 409
    assert (error.current, error.requested) == ("NEGOTIATED", "CONNECTED")
    assert str(error) == (
        "Connection c9 is NEGOTIATED: it can move to HANDSHAKING or CLOSED, not CONNECTED."
    )
    with pytest.raises(ConnectionStateError, match="nothing \\(final\\), not HANDSHAKING"):
        check_transition("c9", S.CLOSED, S.HANDSHAKING)


def test_a_connection_walks_its_lifecycle() -> None:
    """attach, open, close and abort move the state; each sets what the next state needs."""
    c = conn()
    assert state(c) is S.NEGOTIATED and (c.transport, c.codec) == (None, None)
    c.attach(Transport.LONG_POLLING)
    assert state(c) is S.HANDSHAKING and c.transport is Transport.LONG_POLLING
    assert c.idle_since is not None  # a polled transport is idle until its first poll
    c.open(MSGPACK_CODEC)
    assert state(c) is S.CONNECTED and c.codec is MSGPACK_CODEC
    c.close("bye", allow_reconnect=True)
    assert state(c) is S.CLOSING and c.closed and c.close_error == "bye"
    assert c.take() == MSGPACK_CODEC.encode(CloseMessage(error="bye", allow_reconnect=True))
    assert c.drained
    c.abort("later")
    assert state(c) is S.CLOSED and c.close_error == "bye"


def test_second_transport_and_early_open_are_refused() -> None:
    """A connection takes one transport, and no handshake can succeed before one."""
    c = conn()
    with pytest.raises(ConnectionStateError, match="NEGOTIATED.*not CONNECTED"):
        c.open(JSON_CODEC)
    c.attach(Transport.SERVER_SENT_EVENTS)
    assert c.idle_since is None
    with pytest.raises(ConnectionStateError, match="HANDSHAKING.*not HANDSHAKING"):
        c.attach(Transport.WEB_SOCKETS)
    assert c.transport is Transport.SERVER_SENT_EVENTS


def test_close_before_handshake_sends_no_close_message() -> None:
    """Closing while handshaking queues nothing; a negotiated connection closes outright."""
    handshaking = conn()
    handshaking.attach(Transport.WEB_SOCKETS)
    handshaking.close("Handshake was canceled.")
    assert state(handshaking) is S.CLOSING and handshaking.take() == b""
    negotiated = conn()
    negotiated.close("The server is shutting down.")
    assert state(negotiated) is S.CLOSED
    assert negotiated.close_error == "The server is shutting down."


def test_close_and_abort_are_idempotent_and_output_stops() -> None:
    """Repeated close/abort calls change nothing, and a closed connection takes no output."""
    c = connected()
    c.close("first")
    c.close("second")
    assert c.close_error == "first"
    assert not c.enqueue(b"late")
    c.abort()
    c.abort("again")
    assert state(c) is S.CLOSED and c.close_error == "first" and c.take() == b""


def test_abort_drops_pending_output() -> None:
    """abort() goes straight to CLOSED from any live state, dropping what was queued."""
    c = connected()
    assert c.enqueue(b"queued")
    c.abort("transport gone")
    assert state(c) is S.CLOSED and c.take() == b"" and c.close_error == "transport gone"


def test_overflow_closes_with_its_own_reason() -> None:
    """A Close message that overflows the buffer leaves the connection closing, reason kept."""
    c = ClientConnection(
        connection_id="c1", token="t1", hub="chat", user_id=None, max_buffered_bytes=1024
    )
    c.attach(Transport.LONG_POLLING)
    c.open(JSON_CODEC)
    assert c.enqueue(b"x" * 1020)
    c.close("a reason long enough to overflow the buffer")
    assert state(c) is S.CLOSING
    assert c.close_error is not None and "did not read its messages fast enough" in c.close_error


@pytest.mark.anyio
async def test_closing_fails_pending_invocations_and_wakes_the_writer() -> None:
    """Closing fails REST :invoke waiters; a waiting writer gets the Close message, then ends."""
    c = connected(Transport.SERVER_SENT_EVENTS)
    future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
    c.pending_results = {"1": future}
    writer = asyncio.create_task(c.wait_batch())
    await asyncio.sleep(0)
    c.close()
    assert await writer == JSON_CODEC.encode(CloseMessage())
    assert await c.wait_batch() is None
    with pytest.raises(ConnectionError):
        future.result()


@pytest.mark.parametrize(
    ("transport", "wire", "text_only", "keep_alive", "polled", "posts"),
    [
        (Transport.WEB_SOCKETS, "WebSockets", False, True, False, False),
        (Transport.SERVER_SENT_EVENTS, "ServerSentEvents", True, True, False, True),
        (Transport.LONG_POLLING, "LongPolling", False, False, True, True),
    ],
)
def test_transport_traits(
    transport: Transport,
    wire: str,
    text_only: bool,
    keep_alive: bool,
    polled: bool,
    posts: bool,
) -> None:
    """Each transport carries its wire name and the traits the emulator branches on."""
    assert transport.value == wire == str(transport)
    assert (transport.text_only, transport.keep_alive) == (text_only, keep_alive)
    assert (transport.polled, transport.posts) == (polled, posts)
    formats = ["Text"] if text_only else ["Text", "Binary"]
    assert transport.transfer_formats == formats
