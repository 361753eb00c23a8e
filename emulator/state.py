"""Process-wide state of one emulator app, and its housekeeping timer.

One :class:`EmulatorState` per :func:`emulator.server.create_app`: the settings, the
registry, the upstream dispatcher (set while the app runs) and the background tasks.
:meth:`EmulatorState.housekeeping` runs once per ``tick``: it sends keep-alive Pings to
connections that were silent for ``keep_alive_interval``, closes connections that sent
nothing for ``client_timeout`` or no handshake within ``handshake_timeout``, drops
negotiated connections that never started or stopped polling (``disconnect_timeout``), and
purges expired user-group memberships. One timer for all connections costs less than a
timer per connection.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from signalr_protocol.messages import PingMessage

from .identity import LocalEntraId, TemporaryKeys
from .lifecycle import ConnectionState
from .metrics import CloseReason, EmulatorMetrics
from .registry import Registry
from .settings import EmulatorSettings
from .trace import TraceBus

if TYPE_CHECKING:
    from .upstream import UpstreamDispatcher

__all__ = ["EmulatorState"]

logger = logging.getLogger("emulator.connections")

_PING = PingMessage()
# Module constants: reading a member off an enum class costs a descriptor call in 3.11.
_NEGOTIATED = ConnectionState.NEGOTIATED
_HANDSHAKING = ConnectionState.HANDSHAKING
_CLOSING = ConnectionState.CLOSING
_PING_TIMEOUT = CloseReason.PING_TIMEOUT
_HANDSHAKE_ERROR = CloseReason.HANDSHAKE_ERROR


class EmulatorState:
    """Shared state of one emulator.

    Attributes:
        settings: the settings the app was made with.
        registry: hubs, connections, groups.
        upstream: the upstream dispatcher while the app runs, else ``None``.
        entra: the local Entra ID (served under ``/identity/``, keyless or not).
        temp_keys: the temporary access keys handed out to Entra callers.
        metrics: the Prometheus metrics (always counted; ``metrics_enabled`` only hides
            ``GET /metrics``).
        trace: the live trace's event bus.
    """

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.registry = Registry()
        self.upstream: UpstreamDispatcher | None = None
        self._entra: LocalEntraId | None = None
        self.temp_keys = TemporaryKeys(settings.temp_key_rotation)
        self.metrics = EmulatorMetrics()
        self.trace = TraceBus(settings.trace_history)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pings: dict[str, bytes] = {}

    @property
    def entra(self) -> LocalEntraId:
        """The local Entra ID, made on first use (an RSA key takes ~50 ms to make)."""
        if self._entra is None:
            settings = self.settings
            self._entra = LocalEntraId(
                settings.public_base,
                tenant_id=settings.tenant_id,
                identity_header=settings.identity_header,
            )
        return self._entra

    @property
    def made_entra(self) -> LocalEntraId | None:
        """The local Entra ID if made yet (no token of it can exist before)."""
        return self._entra

    def rebase(self, settings: EmulatorSettings) -> None:
        """Take ``settings`` (the same ones, with the port as bound) and the public base
        they give to the local Entra ID's issuer."""
        self.settings = settings
        if self._entra is not None:
            self._entra.public_base = settings.public_base

    @property
    def tick(self) -> float:
        """Seconds between housekeeping rounds."""
        s = self.settings
        return max(0.02, min(1.0, s.keep_alive_interval / 4, s.handshake_timeout / 4))

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run ``coro`` in the background, keeping a reference until it ends."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    @property
    def background(self) -> int:
        """How many background tasks are running (housekeeping included)."""
        return len(self._tasks)

    async def cancel_tasks(self) -> None:
        """Cancel and await every background task (shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def housekeeping(self) -> None:
        """Run :meth:`housekeep` every :attr:`tick` seconds, forever."""
        while True:
            await asyncio.sleep(self.tick)
            try:
                self.housekeep(time.monotonic())
            except Exception:  # never let one bad round stop the timer
                logger.exception("Housekeeping round failed")

    def housekeep(self, now: float) -> None:
        """One round of keep-alive, timeouts and expiry (see the module docstring)."""
        s = self.settings
        registry = self.registry
        for conn in registry.connections():
            state = conn.state
            if state >= _CLOSING:
                continue
            if state is _NEGOTIATED:
                if now - conn.created > s.disconnect_timeout:
                    logger.info("Connection %s dropped: never connected", conn.connection_id)
                    conn.abort("The client never connected.")
                    registry.remove(conn)
                continue
            if conn.idle_since is not None and now - conn.idle_since > s.disconnect_timeout:
                conn.abort("The client stopped polling.", category=_PING_TIMEOUT)
                continue
            if state is _HANDSHAKING:
                if now - conn.created > s.handshake_timeout:
                    logger.info("Connection %s closed: no handshake", conn.connection_id)
                    conn.close("Handshake was canceled.", category=_HANDSHAKE_ERROR)
                continue
            link = conn.replay  # stateful reconnect: Acks, and the reconnect window
            if link is not None and link.housekeep(conn, now, s.stateful_reconnect_window):
                continue
            transport, codec = conn.transport, conn.codec
            assert transport is not None and codec is not None  # both set once CONNECTED
            if (
                transport.keep_alive
                and not conn.in_call
                and now - conn.last_received > s.client_timeout
            ):
                logger.info("Connection %s closed: client timeout", conn.connection_id)
                conn.close(
                    "Server timeout elapsed without receiving a message from the client.",
                    category=_PING_TIMEOUT,
                )
                continue
            if conn.sent_flag:
                conn.sent_flag = False
                conn.last_sent = now
            elif transport.keep_alive and now - conn.last_sent >= s.keep_alive_interval:
                ping = self._pings.get(codec.name)
                if ping is None:
                    ping = self._pings[codec.name] = codec.encode(_PING)
                conn.enqueue(ping)
                conn.sent_flag = False
                conn.last_sent = now
        registry.sweep()
        registry.forget_closed(now - s.disconnect_timeout)
