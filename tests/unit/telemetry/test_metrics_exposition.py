"""The lock-free metrics expose what prometheus_client's own Counter, Histogram and Gauge
would for the same events: names, help texts, types, label sets and values."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from app.telemetry import BackendMetrics
from emulator.lifecycle import Transport
from emulator.metrics import CloseReason, EmulatorMetrics

_BACKEND_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_EMULATOR_BUCKETS = (0.0005, *_BACKEND_BUCKETS, 30.0)


def _families(
    text: str,
) -> list[tuple[str, str, str, list[tuple[str, tuple[tuple[str, str], ...], float]]]]:
    """Each family's name, type, help and samples (``_created`` values zeroed: times)."""
    return [
        (
            family.name,
            family.type,
            family.documentation,
            [
                (
                    sample.name,
                    tuple(sorted(sample.labels.items())),
                    0.0 if sample.name.endswith("_created") else sample.value,
                )
                for sample in family.samples
            ],
        )
        for family in text_string_to_metric_families(text)
    ]


def test_backend_exposition_matches_prometheus_client_types() -> None:
    """Negotiations, webhooks (unknown labels folded, a latency on a bucket bound), REST
    calls, retries, failures and endpoint health read the same as with the client's types."""
    ours = BackendMetrics()
    ref = CollectorRegistry(auto_describe=True)
    negotiate = Counter(
        "signalr_negotiate", "Negotiate requests answered with a URL and token.", registry=ref
    )
    errors = Counter(
        "signalr_negotiate_errors", "Negotiate requests answered with an error.", registry=ref
    )
    webhook = Counter(
        "signalr_webhook_requests",
        "Upstream webhook requests, by category and outcome.",
        ("category", "outcome"),
        registry=ref,
    )
    duration = Histogram(
        "signalr_webhook_duration_seconds",
        "Time to answer an upstream webhook request (body read to response).",
        buckets=_BACKEND_BUCKETS,
        registry=ref,
    )
    rest = Counter(
        "signalr_rest_requests",
        "Data-plane REST calls to the SignalR Service, by operation and final status "
        "('error': no answer).",
        ("operation", "status"),
        registry=ref,
    )
    rest_duration = Histogram(
        "signalr_rest_duration_seconds",
        "Data-plane REST call latency, retries included, by operation.",
        ("operation",),
        buckets=_BACKEND_BUCKETS,
        registry=ref,
    )
    retries = Counter(
        "signalr_rest_retries", "Data-plane REST attempts that were retried.", registry=ref
    )
    failures = Counter(
        "signalr_fire_and_forget_failures",
        "Handler failures no client was told about (send invocations, disconnects).",
        ("category",),
        registry=ref,
    )
    online = Gauge(
        "signalr_endpoint_online",
        "1 while the SignalR Service endpoint answers, 0 after a failed call or check.",
        ("endpoint",),
        registry=ref,
    )
    for group in ("connections", "messages", "other"):
        for result in ("ok", "error", "rejected", "unauthorized", "not_found", "bad_request"):
            webhook.labels(group, result)

    ours.negotiated()
    ours.negotiated()
    negotiate.inc(2)
    ours.negotiate_failed()
    errors.inc()
    webhooks: list[tuple[str | None, str, float, tuple[str, str]]] = [
        ("messages", "ok", 0.0025, ("messages", "ok")),  # exactly on a bound: in it
        ("connections", "not_found", 0.3, ("connections", "not_found")),
        ("weird", "strange", 20.0, ("other", "error")),
        (None, "ok", 0.0, ("other", "ok")),
    ]
    for category, outcome, seconds, label in webhooks:
        ours.webhook(category, outcome, seconds)
        webhook.labels(*label).inc()
        duration.observe(seconds)
    calls: list[tuple[str, int | None, float, tuple[str, str]]] = [
        ("send_to_all", 202, 0.01, ("send_to_all", "202")),
        ("send_to_all", None, 0.5, ("send_to_all", "error")),
        ("bogus", 999, 0.005, ("other", "other")),
    ]
    for operation, status, seconds, label in calls:
        ours.rest_call(operation, status, seconds)
        rest.labels(*label).inc()
        rest_duration.labels(label[0]).observe(seconds)
    ours.rest_retried()
    retries.inc()
    ours.fire_and_forget_failed("messages")
    ours.fire_and_forget_failed("nonsense")
    failures.labels("messages").inc()
    failures.labels("other").inc()
    ours.endpoint_health("primary", True)
    ours.endpoint_health("backup", False)
    ours.endpoint_health("primary", False)
    online.labels("primary").set(0)
    online.labels("backup").set(0)

    assert _families(ours.render().decode()) == _families(generate_latest(ref).decode())


def test_emulator_exposition_matches_prometheus_client_types() -> None:
    """Connections (hub cap, unknown transport), closes, messages in and out, billing,
    upstream and REST calls read the same as with the client's types."""
    ours = EmulatorMetrics(max_hubs=1)
    ref = CollectorRegistry(auto_describe=True)
    connections = Gauge(
        "signalr_connections",
        "Client connections open now (handshake done), by hub and transport.",
        ("hub", "transport"),
        registry=ref,
    )
    opened = Counter(
        "signalr_connections_opened",
        "Client connections that completed their handshake, by transport.",
        ("transport",),
        registry=ref,
    )
    closed = Counter(
        "signalr_connections_closed",
        "Client connections closed, by the service's close category.",
        ("reason",),
        registry=ref,
    )
    messages = Counter(
        "signalr_messages",
        "Hub messages through the emulator (pings excluded); outbound counts each "
        "receiver and each upstream request.",
        ("direction",),
        registry=ref,
    )
    message_bytes = Counter(
        "signalr_message_bytes",
        "Bytes of the hub messages counted by signalr_messages_total.",
        ("direction",),
        registry=ref,
    )
    billed = Counter(
        "signalr_billed_messages",
        "Outbound messages as the service bills them (one per started 2 KB).",
        registry=ref,
    )
    upstream = Counter(
        "signalr_upstream_requests",
        "Upstream (webhook) requests, by category and HTTP status ('error': no answer).",
        ("category", "status"),
        registry=ref,
    )
    upstream_duration = Histogram(
        "signalr_upstream_duration_seconds",
        "Upstream request latency, by category.",
        ("category",),
        buckets=_EMULATOR_BUCKETS,
        registry=ref,
    )
    rest = Counter(
        "signalr_rest_requests",
        "Data-plane REST API requests served, by operation and HTTP status.",
        ("operation", "status"),
        registry=ref,
    )
    rest_duration = Histogram(
        "signalr_rest_duration_seconds",
        "Data-plane REST API request latency, by operation.",
        ("operation",),
        buckets=_EMULATOR_BUCKETS,
        registry=ref,
    )
    user_errors = Counter(
        "signalr_user_errors",
        "Requests and connections that failed because of the caller (4xx, bad tokens, "
        "bad messages, slow clients).",
        registry=ref,
    )
    system_errors = Counter(
        "signalr_system_errors",
        "Requests and connections that failed inside the emulator (5xx).",
        registry=ref,
    )
    for direction in ("inbound", "outbound"):
        messages.labels(direction)
        message_bytes.labels(direction)

    ours.connection_opened("chat", Transport.WEB_SOCKETS)
    ours.connection_opened("second", "carrier-pigeon")  # over the hub cap, unknown transport
    connections.labels("chat", "WebSockets").inc()
    opened.labels("WebSockets").inc()
    connections.labels("other", "other").inc()
    opened.labels("other").inc()
    ours.connection_closed("chat", Transport.WEB_SOCKETS, CloseReason.PING_TIMEOUT)
    connections.labels("chat", "WebSockets").dec()
    closed.labels("PingTimeout").inc()
    user_errors.inc()
    ours.connection_refused(CloseReason.SERVICE_TRANSIENT_ERROR)
    closed.labels("ServiceTransientError").inc()
    system_errors.inc()
    ours.message_in()
    ours.message_in(10)
    ours.bytes_in(100)
    messages.labels("inbound").inc(2)
    message_bytes.labels("inbound").inc(110)
    ours.messages_out(3, 3000)
    ours.messages_out(0, 5)
    messages.labels("outbound").inc(3)
    message_bytes.labels("outbound").inc(9000)
    billed.inc(6)
    ours.upstream_request("messages", 200, 0.0005, 120)  # exactly on a bound
    ours.upstream_request("bogus", None, 50.0)
    upstream.labels("messages", "200").inc()
    upstream_duration.labels("messages").observe(0.0005)
    upstream.labels("other", "error").inc()
    upstream_duration.labels("other").observe(50.0)
    messages.labels("outbound").inc(2)
    message_bytes.labels("outbound").inc(120)
    billed.inc(2)
    ours.rest_request("send_all", 202, 0.002)
    ours.rest_request(None, 404, 0.0001)
    ours.rest_request("health", 503, 0.01)
    rest.labels("send_all", "202").inc()
    rest_duration.labels("send_all").observe(0.002)
    rest.labels("other", "404").inc()
    rest_duration.labels("other").observe(0.0001)
    rest.labels("health", "503").inc()
    rest_duration.labels("health").observe(0.01)
    user_errors.inc()
    system_errors.inc()
    ours.system_errors.inc()
    system_errors.inc()

    assert _families(ours.render().decode()) == _families(generate_latest(ref).decode())
