"""Backend metrics: names, labels and values, bounded label sets, and the OTel bridge."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client.parser import text_string_to_metric_families

from app.telemetry import (
    METRICS_CONTENT_TYPE,
    REST_OPERATIONS,
    BackendMetrics,
    bridge_to_opentelemetry,
    outcome_for_status,
)


def _value(metrics: BackendMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_contract_metric_names_are_exposed_with_their_labels() -> None:
    """The exposition holds every contract name, with the contract's label names."""
    metrics = BackendMetrics()
    metrics.negotiated()
    metrics.webhook("messages", "ok", 0.002)
    metrics.rest_call("send_to_all", 202, 0.01)
    metrics.rest_retried()
    families = {f.name: f for f in text_string_to_metric_families(metrics.render().decode())}

    assert {"signalr_negotiate", "signalr_webhook_requests", "signalr_rest_requests"} <= set(
        families
    )
    assert families["signalr_webhook_duration_seconds"].type == "histogram"
    webhook = families["signalr_webhook_requests"].samples
    assert any(
        s.name == "signalr_webhook_requests_total"
        and s.labels == {"category": "messages", "outcome": "ok"}
        and s.value == 1
        for s in webhook
    )
    rest = [s for s in families["signalr_rest_requests"].samples if s.value]
    assert [(s.name, s.labels) for s in rest if s.name.endswith("_total")] == [
        ("signalr_rest_requests_total", {"operation": "send_to_all", "status": "202"})
    ]
    assert _value(metrics, "signalr_rest_retries_total") == 1
    assert _value(metrics, "signalr_negotiate_total") == 1
    assert METRICS_CONTENT_TYPE.startswith("text/plain")


def test_values_accumulate_per_label_set() -> None:
    """Counters count per label set; the histogram counts and sums every observation."""
    metrics = BackendMetrics()
    for outcome in ("ok", "ok", "not_found", "unauthorized"):
        metrics.webhook("connections", outcome, 0.5)
    metrics.fire_and_forget_failed("messages")
    metrics.endpoint_health("primary", False)
    metrics.endpoint_health("secondary", True)

    assert (
        _value(metrics, "signalr_webhook_requests_total", category="connections", outcome="ok") == 2
    )
    assert (
        _value(
            metrics, "signalr_webhook_requests_total", category="connections", outcome="not_found"
        )
        == 1
    )
    assert _value(metrics, "signalr_webhook_duration_seconds_count") == 4
    assert _value(metrics, "signalr_webhook_duration_seconds_sum") == pytest.approx(2.0)
    assert _value(metrics, "signalr_fire_and_forget_failures_total", category="messages") == 1
    assert _value(metrics, "signalr_endpoint_online", endpoint="primary") == 0
    assert _value(metrics, "signalr_endpoint_online", endpoint="secondary") == 1


def test_caller_controlled_values_never_become_new_labels() -> None:
    """Unknown categories, operations and outcomes fold into one value each."""
    metrics = BackendMetrics()
    for n in range(50):
        metrics.webhook(f"category-{n}", f"outcome-{n}", 0.001)
        metrics.rest_call(f"op-{n}", 200, 0.001)
    metrics.rest_call("send_to_user", None, 1.0)
    metrics.rest_call("send_to_user", 999, 1.0)

    webhook = {
        tuple(sorted(s.labels.items()))
        for f in metrics.registry.collect()
        if f.name == "signalr_webhook_requests"
        for s in f.samples
        if s.name == "signalr_webhook_requests_total" and s.value
    }
    assert webhook == {(("category", "other"), ("outcome", "error"))}
    assert _value(metrics, "signalr_rest_requests_total", operation="other", status="200") == 50
    assert (
        _value(metrics, "signalr_rest_requests_total", operation="send_to_user", status="error")
        == 1
    )
    assert (
        _value(metrics, "signalr_rest_requests_total", operation="send_to_user", status="other")
        == 1
    )


def test_registries_are_per_instance() -> None:
    """Two apps in one process (tests) count separately."""
    first, second = BackendMetrics(), BackendMetrics()
    first.negotiated()
    assert _value(first, "signalr_negotiate_total") == 1
    assert _value(second, "signalr_negotiate_total") == 0


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "ok"),
        (401, "unauthorized"),
        (403, "rejected"),
        (404, "not_found"),
        (400, "bad_request"),
        (413, "bad_request"),
        (415, "bad_request"),
        (500, "error"),
    ],
)
def test_outcome_for_status(status: int, outcome: str) -> None:
    """Each webhook status the router can answer maps to one outcome."""
    assert outcome_for_status(status) == outcome


def test_rest_operations_are_the_rest_client_methods() -> None:
    """Every operation label names a public method of the REST client (or a wire-only call)."""
    from app.services.signalr import SignalRService

    wire_only = {"health", "access_key"}
    assert all(hasattr(SignalRService, op) for op in set(REST_OPERATIONS) - wire_only)


def test_bridge_exports_the_registry_through_opentelemetry() -> None:
    """With a metrics exporter configured, the same counters reach OpenTelemetry."""
    metrics = BackendMetrics()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    bridge_to_opentelemetry(metrics.registry, provider)
    metrics.webhook("messages", "ok", 0.25)
    metrics.webhook("messages", "ok", 0.25)
    metrics.endpoint_health("primary", True)

    data = reader.get_metrics_data()
    assert data is not None
    points = {
        (m.name, tuple(sorted(p.attributes.items())) if p.attributes else ()): getattr(
            p, "value", None
        )
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        for p in m.data.data_points
    }
    key = ("signalr_webhook_requests_total", (("category", "messages"), ("outcome", "ok")))
    assert points[key] == 2
    assert points[("signalr_webhook_duration_seconds_count", ())] == 2
    assert points[("signalr_webhook_duration_seconds_sum", ())] == pytest.approx(0.5)
    assert points[("signalr_endpoint_online", (("endpoint", "primary"),))] == 1
    provider.shutdown()
