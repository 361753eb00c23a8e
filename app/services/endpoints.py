"""Several SignalR Service endpoints, configured the Functions way, and their health.

Settings parse ``AzureSignalRConnectionString`` plus
``Azure__SignalR__Endpoints__<name>[__primary|__secondary]`` into a list of
:class:`~signalr_protocol.connection_string.ServiceEndpoint` (``settings.service_endpoints()``).
With several endpoints:

* every message send, group, user, close and existence call goes to every **online**
  endpoint (a client may be connected to any of them); :meth:`EndpointSet.route` says
  which, and an offline endpoint is skipped with a warning (at most one per endpoint every
  :data:`SKIP_WARNING_INTERVAL` seconds, with the count of skipped calls), as the SDK's
  default router does (Azure/azure-signalr
  ``src/Microsoft.Azure.SignalR.Common/EndpointRouters/DefaultMessageRouter.cs`` keeps only
  ``Online`` endpoints for broadcasts, users, groups and connections). When **no** endpoint
  is online, every endpoint is tried: the health information may be stale, and the SDK's
  answer there (drop the message with a warning,
  ``ServiceConnections/MultiEndpointMessageWriter.cs`` ``NoEndpointRouted``) would report a
  send that reached nobody as a success;
* :meth:`EndpointSet.negotiate_endpoint` picks a random **online primary**; when no
  primary is online it falls back to a random online secondary; when nothing is known to
  be online it still answers a primary (the health information may be stale, and a client
  that can't connect retries negotiate);
* an endpoint is *online* until a health check or a REST call finds it unreachable
  (transport error or 5xx after retries); since an offline endpoint gets no more calls,
  it is online again when a health check finds it healthy. The REST client reports each
  outcome through :meth:`EndpointSet.record`, and runs a health check of every endpoint
  each ``SIGNALR_HEALTH_CHECK_INTERVAL`` seconds when more than one endpoint is
  configured.

This mirrors the Functions extension's default router (random online primary, secondary as
fallback) without the C# ``IEndpointRouter`` plug-in point; a custom router would replace
:meth:`negotiate_endpoint` and is a natural extension if needed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.exceptions import ConfigurationError
from signalr_protocol.connection_string import ServiceEndpoint

__all__ = ["SKIP_WARNING_INTERVAL", "EndpointSet", "EndpointStatus"]

SKIP_WARNING_INTERVAL = 10.0
"""Seconds between two warnings about calls that skipped the same offline endpoint."""


@dataclass(slots=True)
class EndpointStatus:
    """What is known about one endpoint's health.

    Attributes:
        endpoint: the endpoint.
        online: the last observation (a health check or a REST call) found it reachable.
        changed_at: ``time.monotonic()`` of the last observation, ``None`` before any.
    """

    endpoint: ServiceEndpoint
    online: bool = True
    changed_at: float | None = None
    skipped: int = 0
    """Calls that skipped this endpoint since the last warning about it."""
    warned_at: float | None = None
    """``time.monotonic()`` of the last warning about skipped calls."""


class EndpointSet:
    """The configured endpoints, their health, and the negotiate choice."""

    def __init__(
        self,
        endpoints: Sequence[ServiceEndpoint],
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        """Track ``endpoints`` (at least one).

        Raises:
            ConfigurationError: no endpoint is configured.
        """
        if not endpoints:
            raise ConfigurationError(
                "No SignalR Service endpoint is configured: set AzureSignalRConnectionString "
                "or Azure__SignalR__Endpoints__<name>."
            )
        self._statuses = [EndpointStatus(endpoint) for endpoint in endpoints]
        self.on_health: Callable[[str, bool], None] | None = None
        """Told ``(endpoint name or URL, online)`` whenever an endpoint's health changes."""
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()  # noqa: S311 - load spread

    @property
    def endpoints(self) -> tuple[ServiceEndpoint, ...]:
        """Every endpoint, in configuration order (the main connection string first)."""
        return tuple(status.endpoint for status in self._statuses)

    @property
    def statuses(self) -> tuple[EndpointStatus, ...]:
        """The health of each endpoint (for diagnostics and tests)."""
        return tuple(self._statuses)

    def __len__(self) -> int:
        return len(self._statuses)

    def record(self, index: int, *, online: bool) -> None:
        """Record the outcome of a call to endpoint number ``index``."""
        status = self._statuses[index]
        if online and not status.online:
            # Back online: the next time it goes offline, warn at the first skipped call.
            status.skipped, status.warned_at = 0, None
        if online != status.online and self.on_health is not None:
            self.on_health(status.endpoint.name or status.endpoint.endpoint, online)
        status.online = online
        status.changed_at = self._clock()

    def is_online(self, index: int) -> bool:
        """Whether endpoint number ``index`` was reachable at the last observation."""
        return self._statuses[index].online

    def route(self) -> tuple[list[int], list[int]]:
        """Where a send, group, user, close or existence call goes.

        Returns:
            ``(called, skipped)``: the indices of the online endpoints and of the offline
            ones; when none is online, every endpoint is called and none skipped.
        """
        called = [i for i, status in enumerate(self._statuses) if status.online]
        if not called:
            return list(range(len(self._statuses))), []
        if len(called) == len(self._statuses):
            return called, []
        return called, [i for i, status in enumerate(self._statuses) if not status.online]

    def note_skipped(self, index: int) -> int | None:
        """Count a call that skipped offline endpoint ``index``.

        Returns:
            When a warning is due (the first skip, then at most one every
            :data:`SKIP_WARNING_INTERVAL` seconds per endpoint), the number of calls skipped
            since the last warning, this one included; otherwise ``None``.
        """
        status = self._statuses[index]
        status.skipped += 1
        now = self._clock()
        if status.warned_at is not None and now - status.warned_at < SKIP_WARNING_INTERVAL:
            return None
        count, status.skipped, status.warned_at = status.skipped, 0, now
        return count

    def negotiate_endpoint(self) -> ServiceEndpoint:
        """The endpoint a new client should connect to.

        Returns:
            A random online primary; else a random online secondary; else a random
            primary (or any endpoint when none is primary).
        """
        if len(self._statuses) == 1:
            return self._statuses[0].endpoint
        primaries = [s.endpoint for s in self._statuses if s.endpoint.primary and s.online]
        if primaries:
            return self._rng.choice(primaries)
        secondaries = [s.endpoint for s in self._statuses if not s.endpoint.primary and s.online]
        if secondaries:
            return self._rng.choice(secondaries)
        fallback = [s.endpoint for s in self._statuses if s.endpoint.primary] or list(
            self.endpoints
        )
        return self._rng.choice(fallback)
