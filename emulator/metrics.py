"""The emulator's Prometheus metrics, in the service's own vocabulary.

Azure SignalR Service reports connection counts, connection closes by *close category*,
inbound and outbound messages and traffic, and user and system errors (Azure Monitor
metrics); this module exposes the same quantities for ``GET /metrics``:

====================================================  =========  ==========================
name                                                   type       labels
====================================================  =========  ==========================
``signalr_connections``                                gauge      ``hub``, ``transport``
``signalr_connections_opened_total``                   counter    ``transport``
``signalr_connections_closed_total``                   counter    ``reason``
``signalr_messages_total``                             counter    ``direction``
``signalr_message_bytes_total``                        counter    ``direction``
``signalr_billed_messages_total``                      counter    (none)
``signalr_upstream_requests_total``                    counter    ``category``, ``status``
``signalr_upstream_duration_seconds``                  histogram  ``category``
``signalr_rest_requests_total``                        counter    ``operation``, ``status``
``signalr_rest_duration_seconds``                      histogram  ``operation``
``signalr_user_errors_total``                          counter    (none)
``signalr_system_errors_total``                        counter    (none)
====================================================  =========  ==========================

Close categories are the service's ``ConnectionCloseCategory`` dimension values
(:class:`CloseReason`). Billing follows the service's rule: only outbound messages count
(to clients and to the upstream), pings never, and a message over 2 KB counts once per
started 2 KB (:func:`billed_units`).

Every label value is bounded, so a client cannot grow the registry: transports, directions,
categories, reasons and REST operations are fixed sets (anything else becomes ``other``);
statuses are HTTP status codes (``error`` when no response came); hub names are kept for
the first :data:`MAX_HUB_LABELS` hubs seen and the rest count as ``other``. No connection
id, user id or group name is ever a label.

Cost: every method is a few integer additions (no ``prometheus_client`` lock: a custom
collector reads the counts when scraped); a fan-out counts once for all its receivers
(:meth:`EmulatorMetrics.messages_out`), not once per receiver. Each app has
its own :class:`~prometheus_client.CollectorRegistry`, so several emulators in one
process (tests) keep separate counts.
"""

from __future__ import annotations

import enum
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from itertools import accumulate

import prometheus_client.metrics
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from .lifecycle import Transport

__all__ = [
    "BILLING_UNIT_BYTES",
    "CONTENT_TYPE",
    "MAX_HUB_LABELS",
    "OTHER",
    "REST_OPERATIONS",
    "TRANSPORTS",
    "UPSTREAM_CATEGORIES",
    "BoundedLabel",
    "CloseReason",
    "EmulatorMetrics",
    "billed_units",
    "status_label",
]

CONTENT_TYPE = CONTENT_TYPE_LATEST
"""The ``Content-Type`` of :meth:`EmulatorMetrics.render` (Prometheus text format)."""

OTHER = "other"
"""The label value every unknown value is folded into."""

BILLING_UNIT_BYTES = 2048
"""The service bills one outbound message per started 2 KB of it."""

MAX_HUB_LABELS = 100
"""Distinct hub label values kept; hubs seen after these count as ``other``."""

TRANSPORTS = tuple(transport.value for transport in Transport)
"""The ``transport`` label values: the transports' wire names."""
UPSTREAM_CATEGORIES = ("connections", "messages")
DIRECTIONS = ("inbound", "outbound")

REST_OPERATIONS = (
    "health",
    "access_key",
    "send_all",
    "send_user",
    "send_group",
    "send_connection",
    "invoke_connection",
    "close_all",
    "close_user",
    "close_group",
    "close_connection",
    "connection_exists",
    "user_exists",
    "group_exists",
    "user_in_group",
    "add_connection_group",
    "remove_connection_group",
    "remove_connection_all_groups",
    "add_user_group",
    "remove_user_group",
    "remove_user_all_groups",
    "list_group",
    "generate_token",
    "unsupported",
)
"""The emulator's REST operations (its route table's handler names)."""

# Buckets for calls that usually take a millisecond or two locally and up to the
# upstream timeout (seconds) when the backend is slow.
_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)


class CloseReason(enum.StrEnum):
    """Why a client connection ended: the service's ``ConnectionCloseCategory`` values.

    Source: Microsoft's Azure SignalR Service monitoring reference (MicrosoftDocs/azure-docs,
    ``articles/azure-signalr/monitor-signalr-reference.md``, "ConnectionCloseCategory").
    Categories about server connections (``NoAvailableServerConnection``,
    ``ServerConnectionNotFound``, ``ServerConnectionClosed``) and mode switches never
    happen in serverless mode but are kept so the label set is the service's.
    """

    NORMAL = "Normal"
    """The client or the server closed the connection cleanly."""
    THROTTLED = "Throttled"
    PING_TIMEOUT = "PingTimeout"
    """Nothing was heard from the client within the client timeout."""
    NO_AVAILABLE_SERVER_CONNECTION = "NoAvailableServerConnection"
    INVOKE_UPSTREAM_FAILED = "InvokeUpstreamFailed"
    """The upstream refused or failed the ``connected`` event."""
    SLOW_CLIENT = "SlowClient"
    """Too many unsent messages queued for the client."""
    HANDSHAKE_ERROR = "HandshakeError"
    """No valid handshake (refused protocol, or none in time)."""
    SERVER_CONNECTION_NOT_FOUND = "ServerConnectionNotFound"
    SERVER_CONNECTION_CLOSED = "ServerConnectionClosed"
    SERVICE_TRANSIENT_ERROR = "ServiceTransientError"
    """An internal error of the emulator."""
    BAD_REQUEST = "BadRequest"
    """The client sent an invalid message."""
    CLOSED_BY_APP_SERVER = "ClosedByAppServer"
    """The REST API closed it (``DELETE .../connections/{id}``, ``:closeConnections``)."""
    SERVICE_RELOAD = "ServiceReload"
    """The emulator is shutting down (clients may reconnect)."""
    SERVICE_MODE_SWITCHED = "ServiceModeSwitched"
    UNAUTHORIZED = "Unauthorized"


def billed_units(size: int) -> int:
    """How many billed messages one outbound message of ``size`` bytes counts as.

    The service counts a message over 2 KB as several 2 KB messages; an empty message
    still counts once. Source: MicrosoftDocs/azure-docs,
    ``articles/azure-signalr/signalr-concept-messages-and-connections.md``.
    """
    return max(1, -(-size // BILLING_UNIT_BYTES))


def _wire(value: str | enum.Enum | None) -> str | None:
    """A transport as its wire name (``Transport.WEB_SOCKETS`` → ``WebSockets``)."""
    if isinstance(value, enum.Enum):
        return str(value.value)
    return value


def status_label(status: int | None) -> str:
    """The ``status`` label of an HTTP call: the code, or ``error`` when none came back."""
    if status is None:
        return "error"
    if 100 <= status <= 599:
        return str(status)
    return OTHER


class BoundedLabel:
    """Maps caller-supplied values onto a bounded set of label values.

    Args:
        allowed: the fixed set of values; anything else maps to :data:`OTHER`.
        cap: with no ``allowed`` set, the number of distinct values kept (first come);
            later new values map to :data:`OTHER`.
    """

    __slots__ = ("_allowed", "_cap", "_seen")

    def __init__(self, allowed: Iterable[str] | None = None, *, cap: int = 0) -> None:
        self._allowed = frozenset(allowed) if allowed is not None else None
        self._cap = cap
        self._seen: set[str] = set()

    def __call__(self, value: str | None) -> str:
        if value is None:
            return OTHER
        if self._allowed is not None:
            return value if value in self._allowed else OTHER
        if value in self._seen:
            return value
        if len(self._seen) < self._cap:
            self._seen.add(value)
            return value
        return OTHER


class _Count:
    """One counter's value and when it was made; :meth:`inc` is a plain addition (the
    emulator counts from its event loop's thread only, so no lock)."""

    __slots__ = ("created", "value")

    def __init__(self) -> None:
        self.value: float = 0
        self.created = time.time()

    def inc(self, amount: float = 1) -> None:
        """Add ``amount``."""
        self.value += amount


class _Counts(dict[tuple[str, ...], _Count]):
    """A labelled counter: one :class:`_Count` per label values, made on first use."""

    def __missing__(self, key: tuple[str, ...]) -> _Count:
        count = self[key] = _Count()
        return count


class _Latency:
    """One histogram's state: a count per bucket (the last one ``+Inf``) and the sum;
    :meth:`observe` is a bisect on the bounds and two additions."""

    __slots__ = ("counts", "created", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_LATENCY_BUCKETS) + 1)
        self.total = 0.0
        self.created = time.time()

    def observe(self, seconds: float) -> None:
        """Count one observation (``le`` bounds: a value equal to a bound is in it)."""
        self.counts[bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds


class _Latencies(dict[str, _Latency]):
    """A histogram labelled by one value: one :class:`_Latency` per value, made on first use."""

    def __missing__(self, key: str) -> _Latency:
        latency = self[key] = _Latency()
        return latency


_LATENCY_LE = (
    *(floatToGoString(bound) for bound in _LATENCY_BUCKETS),  # type: ignore[no-untyped-call]
    "+Inf",
)


class EmulatorMetrics:
    """The emulator's counters, on a registry of their own.

    Counting is plain integer arithmetic (a latency adds a bisect on the bucket bounds);
    the registry reads the counts when scraped, through a custom collector, so no
    ``prometheus_client`` lock is taken on the message, fan-out or REST paths. Update it
    from the event loop's thread (every caller in the emulator does).

    Args:
        registry: where to register; by default a new one.
        max_hubs: distinct ``hub`` label values kept (see :class:`BoundedLabel`).

    Attributes:
        registry: the registry :meth:`render` exposes.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, max_hubs: int = MAX_HUB_LABELS
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._hub = BoundedLabel(cap=max_hubs)
        self._transport = BoundedLabel(TRANSPORTS)
        self._category = BoundedLabel(UPSTREAM_CATEGORIES)
        self._operation = BoundedLabel(REST_OPERATIONS)
        self._reason = BoundedLabel(CloseReason)

        self.connections: dict[tuple[str, str], int] = {}
        self.opened = _Counts()
        self.closed = _Counts()
        # Both directions exported (as zeros) from the start: rate() needs them.
        self.messages = _Counts({(direction,): _Count() for direction in DIRECTIONS})
        self.message_bytes = _Counts({(direction,): _Count() for direction in DIRECTIONS})
        self.billed = _Count()
        self.upstream = _Counts()
        self.upstream_duration = _Latencies()
        self.rest = _Counts()
        self.rest_duration = _Latencies()
        self.user_errors = _Count()
        self.system_errors = _Count()
        # The hot paths' counts, bound once.
        self._in_messages = self.messages[("inbound",)]
        self._out_messages = self.messages[("outbound",)]
        self._in_bytes = self.message_bytes[("inbound",)]
        self._out_bytes = self.message_bytes[("outbound",)]
        self.registry.register(_EmulatorCollector(self))

    # connections ---------------------------------------------------------------------

    def _gauge(self, hub: str, transport: str | enum.Enum | None, delta: int) -> str:
        key = (self._hub(hub), self._transport(_wire(transport)))
        self.connections[key] = self.connections.get(key, 0) + delta
        return key[1]

    def connection_opened(self, hub: str, transport: str | enum.Enum | None) -> None:
        """A connection finished its handshake on ``hub`` over ``transport`` (its wire
        name, or a transport enum whose value is the wire name)."""
        self.opened[(self._gauge(hub, transport, 1),)].value += 1

    def connection_closed(
        self, hub: str, transport: str | enum.Enum | None, reason: CloseReason
    ) -> None:
        """A connection that had been counted open ended, for ``reason``."""
        self._gauge(hub, transport, -1)
        self.connection_refused(reason)

    def connection_refused(self, reason: CloseReason) -> None:
        """A connection ended before it was counted open (handshake or token refused)."""
        self.closed[(self._reason(reason),)].value += 1
        if reason in _USER_ERROR_REASONS:
            self.user_errors.value += 1
        elif reason is CloseReason.SERVICE_TRANSIENT_ERROR:
            self.system_errors.value += 1

    # messages ------------------------------------------------------------------------

    def message_in(self, size: int = 0) -> None:
        """A client sent one hub message (not a ping) of ``size`` bytes (0 when the caller
        counts bytes per read with :meth:`bytes_in` instead)."""
        self._in_messages.value += 1
        if size:
            self._in_bytes.value += size

    def bytes_in(self, size: int) -> None:
        """The client endpoint read ``size`` bytes of hub protocol (pings included: the
        transport cannot tell them apart before parsing)."""
        self._in_bytes.value += size

    def messages_out(self, receivers: int, size: int) -> None:
        """One message of ``size`` bytes was queued for ``receivers`` connections (a
        fan-out counts once here, for all its receivers)."""
        if receivers <= 0:
            return
        self._out_messages.value += receivers
        self._out_bytes.value += receivers * size
        self.billed.value += receivers * billed_units(size)

    # upstream and REST ---------------------------------------------------------------

    def upstream_request(
        self, category: str, status: int | None, seconds: float, body_size: int = 0
    ) -> None:
        """One upstream request ended (``status`` ``None``: no answer).

        The request itself is an outbound, billed message of ``body_size`` bytes.
        """
        label = self._category(category)
        self.upstream[(label, status_label(status))].value += 1
        self.upstream_duration[label].observe(seconds)
        self._out_messages.value += 1
        self._out_bytes.value += body_size
        self.billed.value += billed_units(body_size)

    def rest_request(self, operation: str | None, status: int, seconds: float) -> None:
        """The REST API answered one request (``operation`` ``None``: no route matched)."""
        label = self._operation(operation)
        self.rest[(label, status_label(status))].value += 1
        self.rest_duration[label].observe(seconds)
        if status >= 500:
            self.system_errors.value += 1
        elif status >= 400:
            self.user_errors.value += 1

    # exposition ----------------------------------------------------------------------

    def render(self) -> bytes:
        """The registry in the Prometheus text format (``GET /metrics``)."""
        return generate_latest(self.registry)


class _EmulatorCollector:
    """Builds the exposition of :class:`EmulatorMetrics` when the registry is scraped:
    the names, help texts, types and samples ``prometheus_client``'s own ``Counter``,
    ``Histogram`` and ``Gauge`` would write for the same counts."""

    def __init__(self, metrics: EmulatorMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        created = bool(getattr(prometheus_client.metrics, "_use_created", True))
        connections = GaugeMetricFamily(
            "signalr_connections",
            "Client connections open now (handshake done), by hub and transport.",
            labels=("hub", "transport"),
        )
        for key, value in list(m.connections.items()):
            connections.add_metric(key, value)
        yield connections
        yield _counter(
            "signalr_connections_opened",
            "Client connections that completed their handshake, by transport.",
            ("transport",),
            m.opened,
            created,
        )
        yield _counter(
            "signalr_connections_closed",
            "Client connections closed, by the service's close category.",
            ("reason",),
            m.closed,
            created,
        )
        yield _counter(
            "signalr_messages",
            "Hub messages through the emulator (pings excluded); outbound counts each "
            "receiver and each upstream request.",
            ("direction",),
            m.messages,
            created,
        )
        yield _counter(
            "signalr_message_bytes",
            "Bytes of the hub messages counted by signalr_messages_total.",
            ("direction",),
            m.message_bytes,
            created,
        )
        yield _counter(
            "signalr_billed_messages",
            "Outbound messages as the service bills them (one per started 2 KB).",
            (),
            {(): m.billed},
            created,
        )
        yield _counter(
            "signalr_upstream_requests",
            "Upstream (webhook) requests, by category and HTTP status ('error': no answer).",
            ("category", "status"),
            m.upstream,
            created,
        )
        yield _histogram(
            "signalr_upstream_duration_seconds",
            "Upstream request latency, by category.",
            "category",
            m.upstream_duration,
            created,
        )
        yield _counter(
            "signalr_rest_requests",
            "Data-plane REST API requests served, by operation and HTTP status.",
            ("operation", "status"),
            m.rest,
            created,
        )
        yield _histogram(
            "signalr_rest_duration_seconds",
            "Data-plane REST API request latency, by operation.",
            "operation",
            m.rest_duration,
            created,
        )
        yield _counter(
            "signalr_user_errors",
            "Requests and connections that failed because of the caller (4xx, bad tokens, "
            "bad messages, slow clients).",
            (),
            {(): m.user_errors},
            created,
        )
        yield _counter(
            "signalr_system_errors",
            "Requests and connections that failed inside the emulator (5xx).",
            (),
            {(): m.system_errors},
            created,
        )


def _counter(
    name: str,
    documentation: str,
    labels: tuple[str, ...],
    counts: Mapping[tuple[str, ...], _Count],
    created: bool,
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=labels)
    for values, count in list(counts.items()):
        family.add_metric(values, count.value, created=count.created if created else None)
    return family


def _histogram(
    name: str, documentation: str, label: str, latencies: Mapping[str, _Latency], created: bool
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=(label,))
    for value, latency in list(latencies.items()):
        buckets = list(zip(_LATENCY_LE, map(float, accumulate(latency.counts)), strict=True))
        family.add_metric((value,), buckets, latency.total)
        if created:  # what prometheus_client's Histogram adds (the family class has no argument)
            family.samples.append(Sample(name + "_created", {label: value}, latency.created))
    return family


_USER_ERROR_REASONS = frozenset(
    {
        CloseReason.PING_TIMEOUT,
        CloseReason.SLOW_CLIENT,
        CloseReason.HANDSHAKE_ERROR,
        CloseReason.BAD_REQUEST,
        CloseReason.UNAUTHORIZED,
        CloseReason.THROTTLED,
    }
)
