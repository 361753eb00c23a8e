"""Write pre-framed WebSocket messages straight to the server's transport.

``websockets.broadcast()`` still builds one WebSocket frame per receiver. The emulator
builds each message's frame once (:func:`ws_frame`, cached per protocol by
:class:`emulator.fanout.Encoded`) and, when it is safe, hands the same bytes to every
receiver's transport with one ``transport.write`` — no coroutine, no frame encoding.

"Safe" means the ASGI server is uvicorn's ``websockets-sansio`` protocol (found through
the ASGI ``send`` callable's ``__self__``), the connection is open, no extension (e.g.
permessage-deflate) is negotiated, and the transport is not paused for back-pressure.
Otherwise :meth:`DirectWebSocket.try_write` declines and the caller takes the ordinary
ASGI ``send`` path, which waits for the transport to drain. Server frames are unmasked
and whole, so interleaving them with the protocol's own control frames is sound.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from typing import Any

from websockets.protocol import Protocol, State

__all__ = ["DirectWebSocket", "trim_accepted", "ws_frame"]

_TEXT = 0x81  # FIN + text opcode
_BINARY = 0x82  # FIN + binary opcode
_OPEN = State.OPEN  # read once: an enum member read off its class costs a call in 3.11


def ws_frame(payload: bytes, *, binary: bool) -> bytes:
    """One unmasked, final WebSocket data frame carrying ``payload``."""
    first = _BINARY if binary else _TEXT
    size = len(payload)
    if size < 126:
        header = bytes((first, size))
    elif size < 65536:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + payload


_NO_PUTTERS: deque[Any] = deque()
"""Shared by every accepted connection's receive queue: an unbounded queue never has putters."""


def trim_accepted(send: Any, scope: dict[str, Any]) -> None:
    """Drop what an accepted WebSocket keeps and no longer needs (~3 KiB per connection).

    uvicorn's ``websockets-sansio`` protocol keeps the handshake request and response (their
    header maps) and the scope's header list for the connection's whole life; nothing reads
    them once the connection is accepted and its headers parsed. Its receive queue is
    unbounded, so the deque for producers waiting on a full queue (760 bytes) stays empty
    for ever: every connection shares one. At 10,000 idle connections this is ~30 MB (see
    ``bench/idle_connections.py``). Anything not shaped as expected is left alone.
    """
    scope["headers"] = []
    protocol = getattr(send, "__self__", None)
    for name in ("request", "response"):
        if getattr(protocol, name, None) is not None:
            setattr(protocol, name, None)
    queue = getattr(protocol, "queue", None)
    if (
        isinstance(queue, asyncio.Queue)
        and queue.maxsize <= 0
        and isinstance(getattr(queue, "_putters", None), deque)
        and not queue._putters  # type: ignore[attr-defined]
    ):
        queue._putters = _NO_PUTTERS  # type: ignore[attr-defined]


class DirectWebSocket:
    """Direct writes to one uvicorn ``websockets-sansio`` connection."""

    __slots__ = ("_conn", "_protocol", "_transport", "_writable")

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol
        self._transport = protocol.transport
        self._conn: Protocol = protocol.conn
        self._writable = protocol.writable

    @classmethod
    def from_send(cls, send: Any) -> DirectWebSocket | None:
        """The direct writer behind an ASGI ``send``, or ``None`` if there is none."""
        protocol = getattr(send, "__self__", None)
        if protocol is None:
            return None
        conn = getattr(protocol, "conn", None)
        transport = getattr(protocol, "transport", None)
        writable = getattr(protocol, "writable", None)
        if (
            not isinstance(conn, Protocol)
            or conn.extensions
            or not callable(getattr(transport, "write", None))
            or not callable(getattr(transport, "is_closing", None))
            or not callable(getattr(writable, "is_set", None))
            or not hasattr(protocol, "close_sent")
        ):
            return None
        return cls(protocol)

    def abort(self) -> bool:
        """Drop the TCP connection at once (the reader then sees a disconnect)."""
        abort = getattr(self._transport, "abort", None)
        if not callable(abort):
            return False
        abort()
        return True

    def try_write(self, frame: bytes) -> bool:
        """Write ``frame`` now if the connection is open and not back-pressured."""
        protocol = self._protocol
        transport = self._transport
        if (
            protocol.close_sent
            or protocol.disconnected
            or not self._writable.is_set()
            or self._conn.state is not _OPEN
            or transport.is_closing()
        ):
            return False
        try:
            transport.write(frame)
        except Exception:  # a transport that broke meanwhile: let the ASGI path report it
            return False
        return True
