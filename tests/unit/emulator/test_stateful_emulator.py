"""The emulator's stateful-reconnect link on a real connection: what is written, held,
released by the client's Ack, and when a client that never acknowledges is closed."""

from __future__ import annotations

import pytest

from emulator.connection import ClientConnection
from emulator.lifecycle import ConnectionState, Transport
from emulator.settings import EmulatorSettings
from emulator.stateful import enable
from signalr_protocol.codec import JSON_CODEC
from signalr_protocol.messages import AckMessage, InvocationMessage, PingMessage

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    """Run on asyncio."""
    return "asyncio"


def _connection(written: list[bytes], **settings: object) -> ClientConnection:
    conn = ClientConnection(connection_id="c", token="t", hub="h", user_id=None)
    conn.stateful = True
    conn.attach(Transport.WEB_SOCKETS)
    conn.open(JSON_CODEC)

    async def sender(data: bytes) -> None:
        written.append(data)

    conn.attach_sender(sender)
    enable(conn, 2, EmulatorSettings(**settings))  # type: ignore[arg-type]
    return conn


def _message(n: int) -> bytes:
    return JSON_CODEC.encode(InvocationMessage("seq", [n]))


async def test_version_1_handshake_or_no_negotiate_leaves_it_off() -> None:
    """Only a negotiated connection with a version-2 handshake on WebSockets gets a link
    (HubConnectionContext.cs: a version under 2 disables reconnect)."""
    conn = _connection([])
    assert conn.replay is not None
    plain = ClientConnection(connection_id="p", token="p", hub="h", user_id=None)
    plain.attach(Transport.WEB_SOCKETS)
    plain.open(JSON_CODEC)
    enable(plain, 2, EmulatorSettings())
    assert plain.replay is None
    plain.stateful = True
    enable(plain, 1, EmulatorSettings())
    assert plain.replay is None


async def test_messages_past_the_buffer_size_wait_for_the_clients_ack() -> None:
    """With ``stateful_reconnect_buffer_size`` bytes unacknowledged, further messages are
    held (pings still go out) and the client's Ack releases them in order."""
    written: list[bytes] = []
    one = len(_message(1))
    conn = _connection(written, stateful_reconnect_buffer_size=2 * one)
    link = conn.replay
    assert link is not None
    for n in range(1, 5):
        assert conn.enqueue(_message(n))
    ping = JSON_CODEC.encode(PingMessage())
    conn.enqueue(ping)
    assert written == [_message(1), _message(2), ping]
    assert not link.inbound(conn, AckMessage(2))  # an Ack is consumed by the link
    assert written[3:] == [_message(3), _message(4)]
    assert link.buffer.unacknowledged == 2


async def test_a_client_that_never_acknowledges_is_closed() -> None:
    """Held bytes over ``max_buffered_bytes`` close the connection with a Close message
    saying why, as a slow consumer is closed."""
    written: list[bytes] = []
    conn = _connection(written, stateful_reconnect_buffer_size=1, max_buffered_bytes=1024)
    n = 0
    while conn.state is ConnectionState.CONNECTED:
        n += 1
        conn.enqueue(_message(n))
        assert n < 1000
    assert conn.state is ConnectionState.CLOSING
    assert b"did not acknowledge" in written[-1]
    assert not conn.enqueue(_message(0))
