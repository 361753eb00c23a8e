"""The emulator's WebSocket protocol: uvicorn's ``websockets-sansio``, minus a log flood.

uvicorn decodes every text message as UTF-8 and, when that fails, logs the
``UnicodeDecodeError`` with a full traceback before closing with 1007: any client can then
fill the log with one bad frame per connection. :class:`EmulatorWebSocketProtocol` closes
such a connection the same way (close code 1007, *Invalid frame payload data*, RFC 6455
§7.4.1, with a reason) and reports it in one line at most every
:data:`REPORT_INTERVAL` seconds, with the number of connections closed meanwhile.

Everything else is uvicorn's ``WebSocketsSansIOProtocol`` as is, which
:mod:`emulator.fastpath` writes through. Pass the class as uvicorn's ``ws`` option
(:func:`emulator.runner.uvicorn_config` does).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

__all__ = ["REPORT_INTERVAL", "EmulatorWebSocketProtocol", "RateLimitedReport"]

logger = logging.getLogger("emulator.transports")

REPORT_INTERVAL: Final = 10.0
"""Seconds between two log lines about connections closed for invalid UTF-8."""

_INVALID_UTF8: Final = 1007
_REASON: Final = "Invalid UTF-8 in a text frame."


class RateLimitedReport:
    """One log line per ``interval`` seconds for a repeated event, with a count of the rest.

    Args:
        message: a ``%``-format with two ``%s``/``%d`` slots: the latest detail and the
            number of events not reported since the previous line.
        interval: seconds between two lines.
        clock: monotonic seconds (tests).
    """

    __slots__ = ("_clock", "_interval", "_last", "_message", "_skipped")

    def __init__(
        self, message: str, interval: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._message = message
        self._interval = interval
        self._clock = clock
        self._last: float | None = None
        self._skipped = 0

    def __call__(self, detail: str) -> None:
        """Count one event; log it unless a line was written less than ``interval`` ago."""
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            self._skipped += 1
            return
        self._last = now
        skipped, self._skipped = self._skipped, 0
        logger.warning(self._message, detail, skipped)


_report_invalid_utf8 = RateLimitedReport(
    "WebSocket from %s closed with 1007: a text frame is not valid UTF-8 "
    "(%d more such connections closed since the last report)",
    REPORT_INTERVAL,
)


class EmulatorWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's ``websockets-sansio`` protocol; invalid UTF-8 closes with one log line."""

    def send_receive_event_to_app(self) -> None:
        """Hand a complete message to the application; close 1007 on invalid UTF-8 text."""
        if self.curr_msg_data_type != "text":
            super().send_receive_event_to_app()
            return
        frames = self.frames
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        self.frames = []
        if self.close_sent:
            return  # past websocket.close: dropped, as uvicorn does
        try:
            text = data.decode()
        except UnicodeDecodeError:
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            _report_invalid_utf8(client)
            self.conn.send_close(_INVALID_UTF8, _REASON)
            self.handle_parser_exception()
            return
        self.queue.put_nowait({"type": "websocket.receive", "text": text})
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()
