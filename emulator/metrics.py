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

Cost: every method is a few pre-bound counter increments; a fan-out counts once for all
its receivers (:meth:`EmulatorMetrics.messages_out`), not once per receiver. Each app has
its own :class:`~prometheus_client.CollectorRegistry`, so several emulators in one
process (tests) keep separate counts.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

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


class EmulatorMetrics:
    """The emulator's counters, on a registry of their own.

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
        r = self.registry
        self._hub = BoundedLabel(cap=max_hubs)
        self._transport = BoundedLabel(TRANSPORTS)
        self._category = BoundedLabel(UPSTREAM_CATEGORIES)
        self._operation = BoundedLabel(REST_OPERATIONS)
        self._reason = BoundedLabel(CloseReason)

        self.connections = Gauge(
            "signalr_connections",
            "Client connections open now (handshake done), by hub and transport.",
            ("hub", "transport"),
            registry=r,
        )
        self.opened = Counter(
            "signalr_connections_opened",
            "Client connections that completed their handshake, by transport.",
            ("transport",),
            registry=r,
        )
        self.closed = Counter(
            "signalr_connections_closed",
            "Client connections closed, by the service's close category.",
            ("reason",),
            registry=r,
        )
        self.messages = Counter(
            "signalr_messages",
            "Hub messages through the emulator (pings excluded); outbound counts each "
            "receiver and each upstream request.",
            ("direction",),
            registry=r,
        )
        self.message_bytes = Counter(
            "signalr_message_bytes",
            "Bytes of the hub messages counted by signalr_messages_total.",
            ("direction",),
            registry=r,
        )
        self.billed = Counter(
            "signalr_billed_messages",
            "Outbound messages as the service bills them (one per started 2 KB).",
            registry=r,
        )
        self.upstream = Counter(
            "signalr_upstream_requests",
            "Upstream (webhook) requests, by category and HTTP status ('error': no answer).",
            ("category", "status"),
            registry=r,
        )
        self.upstream_duration = Histogram(
            "signalr_upstream_duration_seconds",
            "Upstream request latency, by category.",
            ("category",),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.rest = Counter(
            "signalr_rest_requests",
            "Data-plane REST API requests served, by operation and HTTP status.",
            ("operation", "status"),
            registry=r,
        )
        self.rest_duration = Histogram(
            "signalr_rest_duration_seconds",
            "Data-plane REST API request latency, by operation.",
            ("operation",),
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.user_errors = Counter(
            "signalr_user_errors",
            "Requests and connections that failed because of the caller (4xx, bad tokens, "
            "bad messages, slow clients).",
            registry=r,
        )
        self.system_errors = Counter(
            "signalr_system_errors",
            "Requests and connections that failed inside the emulator (5xx).",
            registry=r,
        )
        # Pre-bound children for the hot paths.
        self._in_messages = self.messages.labels("inbound")
        self._out_messages = self.messages.labels("outbound")
        self._in_bytes = self.message_bytes.labels("inbound")
        self._out_bytes = self.message_bytes.labels("outbound")
        self._live: dict[tuple[str, str], Gauge] = {}
        for direction in DIRECTIONS:  # export zeros from the start: rate() needs them
            self.messages.labels(direction)
            self.message_bytes.labels(direction)

    # connections ---------------------------------------------------------------------

    def _gauge(self, hub: str, transport: str | enum.Enum | None) -> Gauge:
        key = (self._hub(hub), self._transport(_wire(transport)))
        child = self._live.get(key)
        if child is None:
            child = self._live[key] = self.connections.labels(*key)
        return child

    def connection_opened(self, hub: str, transport: str | enum.Enum | None) -> None:
        """A connection finished its handshake on ``hub`` over ``transport`` (its wire
        name, or a transport enum whose value is the wire name)."""
        self._gauge(hub, transport).inc()
        self.opened.labels(self._transport(_wire(transport))).inc()

    def connection_closed(
        self, hub: str, transport: str | enum.Enum | None, reason: CloseReason
    ) -> None:
        """A connection that had been counted open ended, for ``reason``."""
        self._gauge(hub, transport).dec()
        self.closed.labels(self._reason(reason)).inc()
        if reason in _USER_ERROR_REASONS:
            self.user_errors.inc()
        elif reason is CloseReason.SERVICE_TRANSIENT_ERROR:
            self.system_errors.inc()

    def connection_refused(self, reason: CloseReason) -> None:
        """A connection ended before it was counted open (handshake or token refused)."""
        self.closed.labels(self._reason(reason)).inc()
        if reason in _USER_ERROR_REASONS:
            self.user_errors.inc()
        elif reason is CloseReason.SERVICE_TRANSIENT_ERROR:
            self.system_errors.inc()

    # messages ------------------------------------------------------------------------

    def message_in(self, size: int = 0) -> None:
        """A client sent one hub message (not a ping) of ``size`` bytes (0 when the caller
        counts bytes per read with :meth:`bytes_in` instead)."""
        self._in_messages.inc()
        if size:
            self._in_bytes.inc(size)

    def bytes_in(self, size: int) -> None:
        """The client endpoint read ``size`` bytes of hub protocol (pings included: the
        transport cannot tell them apart before parsing)."""
        self._in_bytes.inc(size)

    def messages_out(self, receivers: int, size: int) -> None:
        """One message of ``size`` bytes was queued for ``receivers`` connections (a
        fan-out counts once here, for all its receivers)."""
        if receivers <= 0:
            return
        self._out_messages.inc(receivers)
        self._out_bytes.inc(receivers * size)
        self.billed.inc(receivers * billed_units(size))

    # upstream and REST ---------------------------------------------------------------

    def upstream_request(
        self, category: str, status: int | None, seconds: float, body_size: int = 0
    ) -> None:
        """One upstream request ended (``status`` ``None``: no answer).

        The request itself is an outbound, billed message of ``body_size`` bytes.
        """
        label = self._category(category)
        self.upstream.labels(label, status_label(status)).inc()
        self.upstream_duration.labels(label).observe(seconds)
        self._out_messages.inc()
        self._out_bytes.inc(body_size)
        self.billed.inc(billed_units(body_size))

    def rest_request(self, operation: str | None, status: int, seconds: float) -> None:
        """The REST API answered one request (``operation`` ``None``: no route matched)."""
        label = self._operation(operation)
        self.rest.labels(label, status_label(status)).inc()
        self.rest_duration.labels(label).observe(seconds)
        if status >= 500:
            self.system_errors.inc()
        elif status >= 400:
            self.user_errors.inc()

    # exposition ----------------------------------------------------------------------

    def render(self) -> bytes:
        """The registry in the Prometheus text format (``GET /metrics``)."""
        return generate_latest(self.registry)


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
