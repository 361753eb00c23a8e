"""Fan-out: one encoding per hub protocol, shared by every receiver."""

from __future__ import annotations

from emulator.connection import ClientConnection
from emulator.fanout import Encoded, deliver
from emulator.fastpath import ws_frame
from emulator.lifecycle import Transport
from signalr_protocol.codec import JSON_CODEC, MSGPACK_CODEC, HubCodec
from signalr_protocol.messages import InvocationMessage


def _conn(n: int, codec: HubCodec | None) -> ClientConnection:
    """A connection on a WebSocket: connected with ``codec``, or still handshaking."""
    conn = ClientConnection(connection_id=f"c{n}", token=f"t{n}", hub="chat", user_id=None)
    conn.attach(Transport.WEB_SOCKETS)
    if codec is not None:
        conn.open(codec)
    return conn


def test_deliver_queues_the_same_bytes_object_per_protocol() -> None:
    """Receivers of one protocol get one shared encoding, even with protocols interleaved."""
    message = InvocationMessage(target="newMessage", arguments=("hi", {"n": 1}))
    codecs = [JSON_CODEC, MSGPACK_CODEC, JSON_CODEC, MSGPACK_CODEC, JSON_CODEC]
    receivers = [_conn(n, codec) for n, codec in enumerate(codecs)]

    assert deliver(receivers, Encoded(message)) == len(receivers)

    taken = [conn.take() for conn in receivers]
    json_data, msgpack_data = taken[0], taken[1]
    assert json_data == JSON_CODEC.encode(message)
    assert msgpack_data == MSGPACK_CODEC.encode(message)
    assert all(data is json_data for data in taken[0::2])
    assert all(data is msgpack_data for data in taken[1::2])


def test_deliver_skips_excluded_closed_and_unready_receivers() -> None:
    """Excluded ids, closed connections and connections before the handshake get nothing."""
    ready, excluded, closed = (_conn(n, JSON_CODEC) for n in range(3))
    unready = _conn(3, None)
    closed.close()
    message = Encoded(InvocationMessage(target="t", arguments=()))

    count = deliver([ready, excluded, closed, unready], message, frozenset({"c1"}))

    assert count == 1
    assert ready.take() == JSON_CODEC.encode(InvocationMessage(target="t", arguments=()))
    assert excluded.take() == b"" and unready.take() == b""


def test_preencoded_bytes_are_delivered_as_given() -> None:
    """An encoding at hand (the SDK's binary body) is queued as is, not re-encoded."""
    given = MSGPACK_CODEC.encode(InvocationMessage(target="t", arguments=(1,)))
    message = Encoded(None, {"messagepack": given})
    receivers = [_conn(0, MSGPACK_CODEC), _conn(1, JSON_CODEC)]

    assert deliver(receivers, message) == 1
    assert receivers[0].take() is given
    assert receivers[1].take() == b""  # no message to convert from, so nothing to send


def test_websocket_frame_is_built_once_per_protocol() -> None:
    """The WebSocket frame of an encoding is cached, with the protocol's frame type."""
    message = Encoded(InvocationMessage(target="t", arguments=(1,)))
    data = message.for_codec(MSGPACK_CODEC)
    assert data is not None
    frame = message.frame_for(MSGPACK_CODEC, data)
    assert frame == ws_frame(data, binary=True)
    assert message.frame_for(MSGPACK_CODEC, data) is frame
