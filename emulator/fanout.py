"""Fan-out: encode a message once per hub protocol, queue the same bytes for every receiver.

:func:`deliver` walks the receivers once; the first JSON receiver triggers the JSON
encoding, the first MessagePack receiver the MessagePack one, and every other receiver gets
a reference to the same ``bytes`` object (and the same WebSocket frame, see
:mod:`emulator.fastpath`) through the non-blocking
:meth:`~emulator.connection.ClientConnection.enqueue`. Nothing here awaits, so a fan-out
is atomic with respect to other fan-outs and per-connection order follows call order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from .connection import ClientConnection
from .fastpath import ws_frame
from .lifecycle import ConnectionState

if TYPE_CHECKING:
    from signalr_protocol.codec import HubCodec
    from signalr_protocol.messages import HubMessage

    from .metrics import EmulatorMetrics

__all__ = ["Encoded", "deliver"]

_CONNECTED = ConnectionState.CONNECTED  # a module constant: enum member reads cost a call


class Encoded:
    """A message plus its encodings, computed on first use per protocol.

    Args:
        message: the hub message to send.
        preencoded: encodings already at hand, by protocol name (e.g. from a REST body
            in the SDK's binary form); the rest are made from ``message``.
    """

    __slots__ = ("_cache", "_frames", "message")

    def __init__(
        self, message: HubMessage | None, preencoded: Mapping[str, bytes] | None = None
    ) -> None:
        self.message = message
        self._cache: dict[str, bytes] = dict(preencoded) if preencoded else {}
        self._frames: dict[str, bytes] = {}

    def for_codec(self, codec: HubCodec) -> bytes | None:
        """The framed bytes for ``codec``; ``None`` when they cannot be made."""
        data = self._cache.get(codec.name)
        if data is None:
            if self.message is None:
                return None
            data = self._cache[codec.name] = codec.encode(self.message)
        return data

    @property
    def size(self) -> int:
        """The size of the first encoding made (0 before any)."""
        for data in self._cache.values():
            return len(data)
        return 0

    def frame_for(self, codec: HubCodec, data: bytes) -> bytes:
        """``data`` (this message in ``codec``) as a WebSocket frame, built once."""
        frame = self._frames.get(codec.name)
        if frame is None:
            frame = self._frames[codec.name] = ws_frame(data, binary=codec.binary)
        return frame


def deliver(
    receivers: Iterable[ClientConnection],
    message: Encoded,
    excluded: frozenset[str] | set[str] = frozenset(),
    metrics: EmulatorMetrics | None = None,
) -> int:
    """Queue ``message`` for every ``CONNECTED`` receiver not in ``excluded``.

    Args:
        metrics: counts the outbound messages and bytes, once per run of receivers of one
            protocol (nothing per receiver).

    Returns:
        How many connections it was queued for.
    """
    count = 0
    segment_start = 0  # ``count`` when the current protocol's run began
    last_codec: HubCodec | None = None
    last_data: bytes | None = None
    last_frame: bytes | None = None
    connected = _CONNECTED
    for conn in receivers:
        if conn.state is not connected or (excluded and conn.connection_id in excluded):
            continue
        codec = conn.codec
        if codec is not last_codec:
            assert codec is not None  # set once CONNECTED
            if metrics is not None and last_data is not None and count > segment_start:
                metrics.messages_out(count - segment_start, len(last_data))
            segment_start = count
            last_codec = codec
            last_data = message.for_codec(codec)
            if last_data is not None:
                last_frame = message.frame_for(codec, last_data)
        if last_data is not None and conn.enqueue(last_data, last_frame):
            count += 1
    if metrics is not None and last_data is not None and count > segment_start:
        metrics.messages_out(count - segment_start, len(last_data))
    return count
