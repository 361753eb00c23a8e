"""Stateful reconnect bookkeeping for one side of one connection, sans-I/O (docs/protocol.md §3.8).

With stateful reconnect (hub protocol version 2) each side numbers the *trackable* messages it
sends (Invocation, StreamItem, Completion, StreamInvocation, CancelInvocation:
:data:`~signalr_protocol.messages.TRACKABLE_TYPES`) from 1, keeps them until the peer
acknowledges them with ``Ack{sequenceId}``, and after a reconnect announces with
``Sequence{id}`` the number of the first message it sends again, then sends again everything
not acknowledged. The receiver counts what it gets, drops what it already had, and
acknowledges from time to time. :class:`ReplayBuffer` is that bookkeeping, with no I/O and no
clock: the caller writes what it is told to write and decides when to send Acks.

Outbound (what this side sends):

- :meth:`ReplayBuffer.add` records one chunk of encoded bytes carrying ``count`` trackable
  messages (several messages may share a transport frame) and says whether the chunk may be
  written now. Chunks stay until acknowledged. While more than ``limit`` bytes are written
  and not acknowledged, or while the transport is gone (``writable=False``), new chunks are
  *held*: numbered and kept, but not written, as ASP.NET Core's ``MessageBuffer`` makes its
  writer wait for an Ack once ``StatefulReconnectBufferSize`` bytes are buffered.
- :meth:`ReplayBuffer.ack` drops the chunks whose messages are all acknowledged and returns
  the held chunks that now fit under the limit, to write in order.
- :meth:`ReplayBuffer.resume` (after a reconnect) returns the ``Sequence`` id to announce and
  the chunks to write after it: every unacknowledged written chunk again, then held chunks
  that fit. A chunk only partly acknowledged is written whole; the peer drops the messages it
  already had by their numbers.

Inbound (what the peer sends):

- :meth:`ReplayBuffer.should_process` numbers each trackable message received and answers
  ``False`` for a duplicate (a number already seen); after :meth:`expect_sequence` (a
  reconnect) everything but the peer's ``Sequence`` message is ignored until it arrives.
- :meth:`ReplayBuffer.reset_sequence` applies a received ``Sequence``; a number beyond what
  was received is a protocol error.
- :meth:`ReplayBuffer.ack_due` gives the id to acknowledge when something new arrived since
  the last Ack.

:func:`count_trackable` counts the trackable messages in encoded bytes with a codec's parser.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from .codec import HubCodec
from .errors import HubProtocolError
from .messages import TRACKABLE_TYPES, HubMessage, SequenceMessage

__all__ = ["DEFAULT_BUFFER_LIMIT", "ReplayBuffer", "count_trackable"]

DEFAULT_BUFFER_LIMIT: Final = 100_000
"""Bytes written and not acknowledged before further messages wait (ASP.NET Core's
``HubOptions.StatefulReconnectBufferSize`` default, and the JS client's buffer size)."""


def count_trackable(codec: HubCodec, data: bytes) -> int:
    """How many trackable messages the framed bytes ``data`` carry.

    Raises:
        HubProtocolError: ``data`` is not whole, valid messages of ``codec``.
    """
    parser = codec.new_parser()
    count = sum(1 for message in parser.feed(data) if message.message_type in TRACKABLE_TYPES)
    if parser.buffered:
        raise HubProtocolError("The bytes end in the middle of a message.")
    return count


class _Chunk:
    __slots__ = ("data", "first", "last")

    def __init__(self, data: bytes, first: int, last: int) -> None:
        self.data = data
        self.first = first
        self.last = last


class ReplayBuffer:
    """Sequence numbers, unacknowledged messages and duplicate detection for one side.

    Attributes:
        limit: bytes written and not acknowledged beyond which new chunks are held.
        written_bytes: bytes of chunks written (or handed to the transport) and not yet
            acknowledged.
        held_bytes: bytes of chunks numbered but not written yet.
    """

    __slots__ = (
        "_held",
        "_last_acked",
        "_latest_received",
        "_next_id",
        "_next_receiving",
        "_waiting_for_sequence",
        "_written",
        "held_bytes",
        "limit",
        "written_bytes",
    )

    def __init__(self, limit: int = DEFAULT_BUFFER_LIMIT) -> None:
        if limit < 1:
            raise ValueError("The replay buffer limit must be at least one byte.")
        self.limit = limit
        self._written: deque[_Chunk] = deque()
        self._held: deque[_Chunk] = deque()
        self.written_bytes = 0
        self.held_bytes = 0
        self._next_id = 1
        self._next_receiving = 1
        self._latest_received = 0
        self._last_acked = 0
        self._waiting_for_sequence = False

    # outbound ------------------------------------------------------------------------------

    @property
    def next_id(self) -> int:
        """The number the next trackable message sent will carry."""
        return self._next_id

    @property
    def unacknowledged(self) -> int:
        """How many chunks (written or held) are not acknowledged yet."""
        return len(self._written) + len(self._held)

    def add(self, data: bytes, count: int, *, writable: bool = True) -> bool:
        """Number and keep a chunk carrying ``count`` (≥ 1) trackable messages.

        Args:
            data: the encoded chunk.
            count: the trackable messages in it (:func:`count_trackable`).
            writable: ``False`` while there is no transport to write to.

        Returns:
            ``True``: write the chunk now; ``False``: it is held until :meth:`ack` or
            :meth:`resume` hands it out.
        """
        if count < 1:
            raise ValueError("A chunk to keep carries at least one trackable message.")
        chunk = _Chunk(data, self._next_id, self._next_id + count - 1)
        self._next_id += count
        if writable and not self._held and self.written_bytes < self.limit:
            self._written.append(chunk)
            self.written_bytes += len(data)
            return True
        self._held.append(chunk)
        self.held_bytes += len(data)
        return False

    def ack(self, sequence_id: int, *, writable: bool = True) -> list[bytes]:
        """The peer received every message up to ``sequence_id``.

        Returns:
            Held chunks that now fit under the limit, to write in this order (none when
            ``writable`` is ``False``).
        """
        written = self._written
        while written and written[0].last <= sequence_id:
            self.written_bytes -= len(written.popleft().data)
        return self._release() if writable else []

    def resume(self) -> tuple[int, list[bytes]]:
        """A new transport replaces the lost one.

        Returns:
            The id for the ``Sequence`` message to send first, and the chunks to write after
            it: every unacknowledged written chunk, then the held chunks that fit.
        """
        if self._written:
            first = self._written[0].first
        elif self._held:
            first = self._held[0].first
        else:
            first = self._next_id
        chunks = [chunk.data for chunk in self._written]
        return first, chunks + self._release()

    def _release(self) -> list[bytes]:
        out: list[bytes] = []
        held = self._held
        while held and self.written_bytes < self.limit:
            chunk = held.popleft()
            self.held_bytes -= len(chunk.data)
            self._written.append(chunk)
            self.written_bytes += len(chunk.data)
            out.append(chunk.data)
        return out

    # inbound -------------------------------------------------------------------------------

    def expect_sequence(self) -> None:
        """A reconnect happened: ignore what the peer sends until its ``Sequence`` message."""
        self._waiting_for_sequence = True

    def should_process(self, message: HubMessage) -> bool:
        """Number a received message; ``False`` when it must be ignored (a duplicate, or
        anything but ``Sequence`` while one is expected)."""
        if self._waiting_for_sequence:
            if type(message) is SequenceMessage:
                self._waiting_for_sequence = False
                return True
            return False
        if message.message_type not in TRACKABLE_TYPES:
            return True
        current = self._next_receiving
        self._next_receiving = current + 1
        if current <= self._latest_received:
            return False
        self._latest_received = current
        return True

    def reset_sequence(self, sequence_id: int) -> None:
        """Apply the peer's ``Sequence{sequence_id}``: the next message it sends has this id.

        Raises:
            HubProtocolError: the id is beyond the messages received so far.
        """
        if sequence_id > self._next_receiving:
            raise HubProtocolError("Sequence ID greater than amount of messages we've received.")
        self._next_receiving = sequence_id

    def ack_due(self) -> int | None:
        """The id to acknowledge when messages arrived since the last Ack, else ``None``.

        Calling it counts the Ack as sent.
        """
        latest = self._latest_received
        if latest <= self._last_acked:
            return None
        self._last_acked = latest
        return latest
