"""Emulator metrics: the service's vocabulary, billing rule, bounded labels."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from emulator.lifecycle import Transport
from emulator.metrics import BILLING_UNIT_BYTES, CloseReason, EmulatorMetrics, billed_units


def _value(metrics: EmulatorMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_close_reasons_are_the_services_close_categories() -> None:
    """The reason label takes the ConnectionCloseCategory values of Azure SignalR Service
    (MicrosoftDocs/azure-docs articles/azure-signalr/monitor-signalr-reference.md)."""
    assert {reason.value for reason in CloseReason} == {
        "Normal",
        "Throttled",
        "PingTimeout",
        "NoAvailableServerConnection",
        "InvokeUpstreamFailed",
        "SlowClient",
        "HandshakeError",
        "ServerConnectionNotFound",
        "ServerConnectionClosed",
        "ServiceTransientError",
        "BadRequest",
        "ClosedByAppServer",
        "ServiceReload",
        "ServiceModeSwitched",
        "Unauthorized",
    }


@pytest.mark.parametrize(
    ("size", "units"),
    [(0, 1), (1, 1), (2048, 1), (2049, 2), (4096, 2), (4097, 3), (10 * 1024, 5)],
)
def test_billed_units_count_each_started_2_kb(size: int, units: int) -> None:
    """A message over 2 KB is billed as several 2 KB messages (MicrosoftDocs/azure-docs
    articles/azure-signalr/signalr-concept-messages-and-connections.md: a 4 KB message
    counts as two)."""
    assert BILLING_UNIT_BYTES == 2048
    assert billed_units(size) == units


def test_connection_gauge_follows_opens_and_closes() -> None:
    """signalr_connections counts live connections per hub and transport."""
    metrics = EmulatorMetrics()
    metrics.connection_opened("chat", Transport.WEB_SOCKETS)
    metrics.connection_opened("chat", "WebSockets")
    metrics.connection_opened("chat", Transport.LONG_POLLING)
    metrics.connection_closed("chat", Transport.WEB_SOCKETS, CloseReason.NORMAL)
    metrics.connection_closed("chat", "LongPolling", CloseReason.PING_TIMEOUT)
    metrics.connection_refused(CloseReason.HANDSHAKE_ERROR)

    assert _value(metrics, "signalr_connections", hub="chat", transport="WebSockets") == 1
    assert _value(metrics, "signalr_connections", hub="chat", transport="LongPolling") == 0
    assert _value(metrics, "signalr_connections_opened_total", transport="WebSockets") == 2
    assert _value(metrics, "signalr_connections_closed_total", reason="Normal") == 1
    assert _value(metrics, "signalr_connections_closed_total", reason="PingTimeout") == 1
    assert _value(metrics, "signalr_connections_closed_total", reason="HandshakeError") == 1
    assert _value(metrics, "signalr_user_errors_total") == 2


@pytest.mark.parametrize("transport", list(Transport))
def test_every_transport_has_its_own_label(transport: Transport) -> None:
    """Each transport of the enum is counted under its wire name, never as 'other'."""
    metrics = EmulatorMetrics()
    metrics.connection_opened("chat", transport)
    assert _value(metrics, "signalr_connections_opened_total", transport=transport.value) == 1
    assert _value(metrics, "signalr_connections_opened_total", transport="other") is None


def test_a_fan_out_counts_every_receiver_once() -> None:
    """Outbound messages, bytes and billed messages scale with receivers; pings are not
    counted (callers never report them)."""
    metrics = EmulatorMetrics()
    metrics.messages_out(receivers=100, size=3000)
    metrics.messages_out(receivers=0, size=10)
    metrics.message_in(50)
    metrics.message_in()
    metrics.bytes_in(7)
    metrics.upstream_request("messages", 200, 0.004, body_size=120)

    assert _value(metrics, "signalr_messages_total", direction="outbound") == 101
    assert _value(metrics, "signalr_message_bytes_total", direction="outbound") == 300_120
    assert _value(metrics, "signalr_billed_messages_total") == 201
    assert _value(metrics, "signalr_messages_total", direction="inbound") == 2
    assert _value(metrics, "signalr_message_bytes_total", direction="inbound") == 57


def test_upstream_and_rest_calls_by_category_operation_and_status() -> None:
    """Upstream calls count by category and status (``error``: no answer), REST calls by
    operation and status; 4xx are user errors, 5xx system errors."""
    metrics = EmulatorMetrics()
    metrics.upstream_request("connections", 200, 0.01)
    metrics.upstream_request("messages", None, 5.0)
    metrics.rest_request("send_all", 202, 0.001)
    metrics.rest_request("close_connection", 404, 0.001)
    metrics.rest_request("send_group", 500, 0.001)
    metrics.rest_request(None, 404, 0.001)

    assert (
        _value(metrics, "signalr_upstream_requests_total", category="connections", status="200")
        == 1
    )
    assert (
        _value(metrics, "signalr_upstream_requests_total", category="messages", status="error") == 1
    )
    assert _value(metrics, "signalr_upstream_duration_seconds_count", category="messages") == 1
    assert _value(metrics, "signalr_rest_requests_total", operation="send_all", status="202") == 1
    assert _value(metrics, "signalr_rest_requests_total", operation="other", status="404") == 1
    assert _value(metrics, "signalr_user_errors_total") == 2
    assert _value(metrics, "signalr_system_errors_total") == 1


def test_client_chosen_names_stay_bounded() -> None:
    """Hub names beyond the cap, unknown transports, categories and operations fold into
    ``other``."""
    metrics = EmulatorMetrics(max_hubs=3)
    for n in range(10):
        metrics.connection_opened(f"hub{n}", "Carrier-Pigeon")
        metrics.upstream_request(f"cat{n}", 200, 0.0)
        metrics.rest_request(f"op{n}", 200, 0.0)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}
    hubs = {s.labels["hub"] for s in families["signalr_connections"].samples}
    assert hubs == {"hub0", "hub1", "hub2", "other"}
    assert _value(metrics, "signalr_connections", hub="other", transport="other") == 7
    assert {s.labels["category"] for s in families["signalr_upstream_requests"].samples} == {
        "other"
    }
    ops = {s.labels["operation"] for s in families["signalr_rest_requests"].samples}
    assert ops == {"other"}


def test_render_is_prometheus_text_with_the_contract_names() -> None:
    """GET /metrics body: the contract names, parseable by Prometheus's own parser."""
    metrics = EmulatorMetrics()
    metrics.connection_opened("chat", "WebSockets")
    names = {f.name for f in text_string_to_metric_families(metrics.render().decode())}
    assert {
        "signalr_connections",
        "signalr_connections_closed",
        "signalr_messages",
        "signalr_upstream_requests",
    } <= names
