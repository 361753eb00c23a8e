"""The stateful-reconnect bookkeeping of the core: numbering, Ack trimming, holding, replay
and duplicate detection, as dotnet/aspnetcore ``src/SignalR/common/Shared/MessageBuffer.cs``
and the JS client's ``src/MessageBuffer.ts`` define them."""

from __future__ import annotations

import pytest

from signalr_protocol.codec import JSON_CODEC, MSGPACK_CODEC, HubCodec
from signalr_protocol.errors import HubProtocolError
from signalr_protocol.messages import (
    AckMessage,
    CloseMessage,
    CompletionMessage,
    InvocationMessage,
    PingMessage,
    SequenceMessage,
)
from signalr_protocol.reconnect import DEFAULT_BUFFER_LIMIT, ReplayBuffer, count_trackable


def test_default_limit_is_aspnet_core_stateful_reconnect_buffer_size() -> None:
    """The default limit is ASP.NET Core's ``HubOptions.StatefulReconnectBufferSize``
    (dotnet/aspnetcore src/SignalR/server/Core/src/HubOptions.cs: 100,000 bytes)."""
    assert DEFAULT_BUFFER_LIMIT == 100_000
    assert ReplayBuffer().limit == 100_000


@pytest.mark.parametrize("codec", [JSON_CODEC, MSGPACK_CODEC], ids=lambda c: c.name)
def test_count_trackable_counts_invocations_not_pings(codec: HubCodec) -> None:
    """Only Invocation-like messages count; Ping, Close, Ack and Sequence do not."""
    data = b"".join(
        codec.encode(m)
        for m in (
            InvocationMessage("a", [1]),
            PingMessage(),
            CompletionMessage.with_result("1", 2),
            AckMessage(3),
            SequenceMessage(4),
            CloseMessage(),
        )
    )
    assert count_trackable(codec, data) == 2
    assert count_trackable(codec, codec.encode(PingMessage())) == 0
    with pytest.raises(HubProtocolError):
        count_trackable(codec, data[:-1])


def test_ack_drops_whole_chunks_and_resume_replays_the_rest() -> None:
    """Ids run from 1 per message; an Ack drops chunks wholly acknowledged; a reconnect
    announces the first unacknowledged chunk's first id and replays from there."""
    buffer = ReplayBuffer(limit=1000)
    assert buffer.add(b"a", 1) and buffer.add(b"bc", 2) and buffer.add(b"d", 1)
    assert buffer.next_id == 5 and buffer.written_bytes == 4
    assert buffer.ack(2) == []  # chunk "bc" (ids 2-3) is only partly acknowledged
    assert buffer.resume() == (2, [b"bc", b"d"])
    buffer.ack(4)
    assert buffer.unacknowledged == 0 and buffer.written_bytes == 0
    assert buffer.resume() == (5, [])


def test_over_the_limit_chunks_wait_for_an_ack() -> None:
    """Past ``limit`` written and unacknowledged bytes, chunks are held in order until an Ack
    makes room (ASP.NET's backpressure)."""
    buffer = ReplayBuffer(limit=3)
    assert buffer.add(b"xx", 1)
    assert buffer.add(b"yy", 1)  # 2 < 3 bytes: still written
    assert not buffer.add(b"z1", 1)
    assert not buffer.add(b"z2", 1)
    assert buffer.held_bytes == 4
    assert buffer.ack(1) == [b"z1"]  # 2 bytes left written → room for one
    assert buffer.ack(3) == [b"z2"]
    assert buffer.held_bytes == 0


def test_chunks_added_while_detached_are_held_and_resumed_in_order() -> None:
    """Without a transport every chunk is held; the reconnect replays unacknowledged written
    chunks first, then the held ones, under one Sequence id."""
    buffer = ReplayBuffer(limit=100)
    buffer.add(b"1", 1)
    assert not buffer.add(b"2", 1, writable=False)
    assert not buffer.add(b"3", 1, writable=False)
    assert buffer.ack(0, writable=False) == []
    assert buffer.resume() == (1, [b"1", b"2", b"3"])
    fresh = ReplayBuffer()
    fresh.add(b"1", 1)
    fresh.ack(1)
    fresh.add(b"2", 1, writable=False)
    assert fresh.resume() == (2, [b"2"])


def test_invalid_arguments_are_refused() -> None:
    """A limit under one byte, or a chunk without a trackable message, is a caller bug."""
    with pytest.raises(ValueError, match="limit"):
        ReplayBuffer(limit=0)
    with pytest.raises(ValueError, match="trackable"):
        ReplayBuffer().add(b"ping", 0)


def test_inbound_duplicates_are_dropped_after_a_sequence_reset() -> None:
    """Received trackable messages are numbered; after a reconnect only the Sequence message
    passes until it arrives, and replayed messages already seen are dropped."""
    buffer = ReplayBuffer()
    invocation = InvocationMessage("t", [1])
    assert buffer.should_process(invocation)  # id 1
    assert buffer.should_process(invocation)  # id 2
    assert buffer.should_process(PingMessage())  # not counted
    assert buffer.ack_due() == 2 and buffer.ack_due() is None
    buffer.expect_sequence()
    assert not buffer.should_process(invocation)  # ignored until the Sequence message
    assert not buffer.should_process(PingMessage())
    assert buffer.should_process(SequenceMessage(2))
    buffer.reset_sequence(2)
    assert not buffer.should_process(invocation)  # id 2 again: a duplicate
    assert buffer.should_process(invocation)  # id 3: new
    assert buffer.ack_due() == 3


def test_sequence_beyond_what_was_received_is_a_protocol_error() -> None:
    """A Sequence id past the next expected id is refused with the ASP.NET Core text."""
    buffer = ReplayBuffer()
    buffer.should_process(InvocationMessage("t"))
    buffer.reset_sequence(2)
    with pytest.raises(HubProtocolError, match="Sequence ID greater than"):
        buffer.reset_sequence(3)
