"""Telemetry of the backend: OpenTelemetry traces, Prometheus metrics, JSON logs.

**Traces.** Off unless configured, and then nearly free: with no SDK tracer provider
installed every helper here returns one shared no-op context manager, so a request pays a
method call. :func:`configure_tracing` turns tracing on from the standard variables:

* ``APPLICATIONINSIGHTS_CONNECTION_STRING`` set: traces, metrics and logs go to Azure
  Monitor through Microsoft's OpenTelemetry distribution (``configure_azure_monitor``),
  an optional extra: ``pip install "serverless-signalr[azure-monitor]"``;
* else ``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``, ``none``, any installed exporter),
  ``OTEL_METRICS_EXPORTER`` or ``OTEL_LOGS_EXPORTER`` set, or an OTLP endpoint
  (``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, which implies
  ``otlp``): the OpenTelemetry SDK configures itself from its own variables
  (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``, ``OTEL_TRACES_SAMPLER``,
  ``OTEL_BSP_*``, ``OTEL_EXPORTER_OTLP_HEADERS`` …). OTLP goes over HTTP/protobuf (the
  specification's default protocol; the package ships that exporter);
* ``OTEL_SDK_DISABLED=true`` or none of these: off.

Spans (:class:`Telemetry`): ``negotiate``, the webhook request, the hub method it runs
(its child) and each REST call the method makes (a child of the method, retries as span
events). Attributes: hub, category, event, connection id, user id, operation, endpoint,
status; never tokens, keys or claim values. A ``traceparent`` header on a negotiate or
webhook request makes its span a child of the caller's trace. Those two spans are the
requests' server spans (:func:`fastapi_options` keeps FastAPI's own request span off them);
under a request the sampler dropped no child span is made. Every request is sampled unless
``OTEL_TRACES_SAMPLER`` says otherwise; an exported span costs about 75 µs of CPU, hence
README's advice to sample (``parentbased_traceidratio``) at high request rates. When the
configured sampler decides a root span by its trace id alone (``traceidratio``,
``parentbased_traceidratio``, ``always_off``, ``parentbased_always_off``), a request with
no ``traceparent`` is decided here first, as that sampler would (:class:`_RootSampler`):
a dropped one never reaches the SDK (its span is a non-recording one in its own trace,
made for about 1 µs), a kept one is the SDK's, with the same trace id.

**Metrics.** :class:`BackendMetrics` on its own registry (``GET /metrics``, Prometheus
text format; ``SIGNALR_METRICS_ENABLED=false`` turns the route off):

=========================================  =========  ================================
name                                        type       labels
=========================================  =========  ================================
``signalr_negotiate_total``                 counter    (none)
``signalr_negotiate_errors_total``          counter    (none)
``signalr_webhook_requests_total``          counter    ``category``, ``outcome``
``signalr_webhook_duration_seconds``        histogram  (none)
``signalr_rest_requests_total``             counter    ``operation``, ``status``
``signalr_rest_duration_seconds``           histogram  ``operation``
``signalr_rest_retries_total``              counter    (none)
``signalr_fire_and_forget_failures_total``  counter    ``category``
``signalr_endpoint_online``                 gauge      ``endpoint``
=========================================  =========  ================================

Label values are bounded: ``category`` is ``connections``, ``messages`` or ``other``;
``outcome`` one of :data:`WEBHOOK_OUTCOMES`; ``operation`` one of :data:`REST_OPERATIONS`
(anything else: ``other``); ``status`` an HTTP status code or ``error`` (no answer);
``endpoint`` a configured endpoint's name or URL (configuration, not callers, sets them).
No connection id, user id, group or target name is ever a label: an unknown target is a
``not_found`` outcome. With a metrics exporter configured (Azure Monitor or
``OTEL_METRICS_EXPORTER``), :func:`bridge_to_opentelemetry` exports the same values there.

**Logs.** One safe line per record (:mod:`signalr_protocol.logsafe`: tokens redacted,
control characters escaped), under ``python -m app`` (:func:`configure_logging`) and
``uvicorn app.main:app`` (:func:`configure_served_logging`). ``SIGNALR_LOG_FORMAT=json``:
one JSON object per line, with the trace and span ids of the current span
(:class:`TraceContext`).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import random
import sys
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager
from contextvars import Token
from dataclasses import dataclass
from itertools import accumulate
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, cast

import prometheus_client.metrics
from fastapi import FastAPI
from opentelemetry import context as otel_context, propagate, trace
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.trace import (
    INVALID_SPAN,
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    Tracer,
)
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

from app.exceptions import ConfigurationError
from signalr_protocol import logsafe

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.id_generator import IdGenerator

__all__ = [
    "AZURE_MONITOR_ENV",
    "INSTRUMENTATION_NAME",
    "LOG_FORMAT_ENV",
    "METRICS_CONTENT_TYPE",
    "METRICS_ENABLED_ENV",
    "OTHER",
    "REST_OPERATIONS",
    "WEBHOOK_CATEGORIES",
    "WEBHOOK_OUTCOMES",
    "BackendMetrics",
    "RestCall",
    "Telemetry",
    "TelemetryConfig",
    "TelemetryError",
    "TraceContext",
    "bridge_to_opentelemetry",
    "configure_logging",
    "configure_served_logging",
    "configure_tracing",
    "current_trace_id",
    "fastapi_options",
    "outcome_for_status",
]

AZURE_MONITOR_ENV: Final = "APPLICATIONINSIGHTS_CONNECTION_STRING"
METRICS_ENABLED_ENV: Final = "SIGNALR_METRICS_ENABLED"
LOG_FORMAT_ENV: Final = "SIGNALR_LOG_FORMAT"
INSTRUMENTATION_NAME: Final = "serverless_signalr"
DEFAULT_SERVICE_NAME: Final = "serverless-signalr"
METRICS_CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
"""The ``Content-Type`` of :meth:`BackendMetrics.render`."""

OTHER: Final = "other"
WEBHOOK_CATEGORIES: Final = ("connections", "messages")
WEBHOOK_OUTCOMES: Final = ("ok", "error", "rejected", "unauthorized", "not_found", "bad_request")
"""``ok``: handled; ``error``: the handler failed or answered an error completion;
``rejected``: a filter or ``on_connected`` refused (403 or error completion);
``unauthorized``: 401; ``not_found``: no handler (404); ``bad_request``: 400, 413, 415."""

REST_OPERATIONS: Final = (
    "send_to_all",
    "send_to_user",
    "send_to_group",
    "send_to_connection",
    "add_connection_to_group",
    "remove_connection_from_group",
    "remove_connection_from_all_groups",
    "add_user_to_group",
    "remove_user_from_group",
    "remove_user_from_all_groups",
    "close_connection",
    "close_all_connections",
    "close_group_connections",
    "close_user_connections",
    "connection_exists",
    "user_exists",
    "group_exists",
    "user_in_group",
    "list_group_connections",
    "health",
    "access_key",
)
"""The data-plane REST operations the backend calls (``SignalRService`` method names)."""

_FALSE = frozenset({"0", "false", "no", "off"})
_TRUE = frozenset({"1", "true", "yes", "on"})
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_OTLP_ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
_SIGNAL_EXPORTERS = ("OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER")

logger = logging.getLogger("app.telemetry")


class TelemetryError(ConfigurationError):
    """Telemetry is configured in a way this installation cannot honour."""


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise TelemetryError(f"{name} must be true or false, not {raw!r}.")


# -- configuration ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    """What the environment asks for.

    Attributes:
        tracing: ``off``, ``otel`` (the SDK from ``OTEL_*``) or ``azure_monitor``.
        otlp_implied: an OTLP endpoint is set but no ``OTEL_TRACES_EXPORTER``: export
            traces over OTLP (the specification's default exporter).
        metrics_enabled: serve ``GET /metrics`` (``SIGNALR_METRICS_ENABLED``, default on).
        log_format: ``text`` or ``json`` (``SIGNALR_LOG_FORMAT``).
    """

    tracing: Literal["off", "otel", "azure_monitor"] = "off"
    otlp_implied: bool = False
    metrics_enabled: bool = True
    log_format: Literal["text", "json"] = "text"

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None) -> TelemetryConfig:
        """Read the configuration (``os.environ`` by default).

        Raises:
            TelemetryError: a flag or the log format has a value nobody understands.
        """
        env = os.environ if env is None else env
        log_format = (env.get(LOG_FORMAT_ENV) or "text").strip().lower()
        if log_format not in ("text", "json"):
            raise TelemetryError(f"{LOG_FORMAT_ENV} must be text or json, not {log_format!r}.")
        metrics_enabled = _flag(env, METRICS_ENABLED_ENV, True)
        fmt: Literal["text", "json"] = "json" if log_format == "json" else "text"
        if (env.get(AZURE_MONITOR_ENV) or "").strip():
            return cls("azure_monitor", False, metrics_enabled, fmt)
        if _flag(env, "OTEL_SDK_DISABLED", False):
            return cls("off", False, metrics_enabled, fmt)
        named = [(env.get(name) or "").strip().lower() for name in _SIGNAL_EXPORTERS]
        if any(value and value != "none" for value in named):
            return cls("otel", False, metrics_enabled, fmt)
        if not named[0] and any((env.get(name) or "").strip() for name in _OTLP_ENDPOINTS):
            return cls("otel", True, metrics_enabled, fmt)
        return cls("off", False, metrics_enabled, fmt)


_configured: str | None = None
_configure_lock = threading.Lock()


def configure_tracing(config: TelemetryConfig | None = None) -> str:
    """Install the process's OpenTelemetry providers as the environment asks; once.

    Call it once at start-up, before the app is built (``python -m app`` and
    ``app.main``). The providers are process-wide; later calls return the first mode.

    Returns:
        The mode now in force: ``off``, ``otel`` or ``azure_monitor``.

    Raises:
        TelemetryError: the Azure Monitor extra is not installed, or the SDK refused its
            configuration (an exporter that is not installed, a bad sampler …).
    """
    global _configured
    with _configure_lock:
        if _configured is not None:
            return _configured
        config = config if config is not None else TelemetryConfig.from_environ()
        if config.tracing == "azure_monitor":
            _configure_azure_monitor()
        elif config.tracing == "otel":
            _configure_sdk(config.otlp_implied)
        _configured = config.tracing
        return _configured


def _configure_azure_monitor() -> None:
    try:
        from azure.monitor.opentelemetry import configure_azure_monitor
    except ImportError:
        raise TelemetryError(
            f"{AZURE_MONITOR_ENV} is set but the Azure Monitor extra is not installed: "
            'pip install "serverless-signalr[azure-monitor]"'
        ) from None
    resource_attributes = _default_resource_attributes()
    kwargs: dict[str, Any] = {}
    if resource_attributes:
        from opentelemetry.sdk.resources import Resource

        kwargs["resource"] = Resource.create(resource_attributes)
    try:
        configure_azure_monitor(**kwargs)  # reads the connection string itself
    except ValueError as exc:  # a malformed connection string
        raise TelemetryError(f"{AZURE_MONITOR_ENV} is not usable: {exc}") from None


def _default_resource_attributes() -> dict[str, str]:
    """``service.name`` unless the environment names the service."""
    if os.environ.get("OTEL_SERVICE_NAME", "").strip():
        return {}
    if "service.name=" in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        return {}
    return {"service.name": DEFAULT_SERVICE_NAME}


def _configure_sdk(otlp_implied: bool) -> None:
    # The SDK's own environment-driven set-up, as `opentelemetry-instrument` runs it: it
    # reads OTEL_{TRACES,METRICS,LOGS}_EXPORTER through the exporters' entry points, the
    # sampler, the resource and every exporter variable.
    from opentelemetry.sdk._configuration import _initialize_components

    # The Python SDK maps a bare `otlp` to gRPC unless told; the package ships the
    # HTTP/protobuf exporter, the specification's default protocol.
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
        "OTEL_EXPORTER_OTLP_PROTOCOL"
    )
    if not protocol:
        os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = protocol = "http/protobuf"
    implied = "otlp_proto_grpc" if protocol.strip() == "grpc" else "otlp_proto_http"
    try:
        _initialize_components(
            trace_exporter_names=[implied] if otlp_implied else None,
            resource_attributes=_default_resource_attributes() or None,
        )
    except (RuntimeError, ValueError, ImportError) as exc:
        raise TelemetryError(f"OpenTelemetry configuration refused: {exc}") from None


# -- metrics ----------------------------------------------------------------------------


def _status(status: int | None) -> str:
    if status is None:
        return "error"
    return str(status) if 100 <= status <= 599 else OTHER


def outcome_for_status(status: int) -> str:
    """The webhook outcome a response status stands for (a 200 is ``ok``; a 200 carrying
    an error completion is ``error``, which only the webhook knows)."""
    if 200 <= status < 300:
        return "ok"
    if status == 401:
        return "unauthorized"
    if status == 403:
        return "rejected"
    if status == 404:
        return "not_found"
    if status in (400, 413, 415):
        return "bad_request"
    return "error"


class _Latency:
    """One histogram's state: a count per bucket (the last one ``+Inf``) and the sum.

    :meth:`observe` is a bisect on the bounds and two additions, with no lock: the
    backend records from its event loop's thread only (requests, the REST client).
    """

    __slots__ = ("counts", "created", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_LATENCY_BUCKETS) + 1)
        self.total = 0.0
        self.created = time.time()

    def observe(self, seconds: float) -> None:
        """Count one observation (``le`` bounds: a value equal to a bound is in it)."""
        self.counts[bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds

    def buckets(self) -> list[tuple[str, float]]:
        """The cumulative buckets, as the exposition writes them."""
        return list(zip(_LATENCY_LE, map(float, accumulate(self.counts)), strict=True))


_LATENCY_LE: Final = (
    *(floatToGoString(bound) for bound in _LATENCY_BUCKETS),  # type: ignore[no-untyped-call]
    "+Inf",
)


class BackendMetrics:
    """The backend's Prometheus metrics (see the module docstring), on their own registry.

    A request pays plain integer increments (and, for a latency, a bisect on the bucket
    bounds); the registry reads the counts when scraped, through a custom collector, so
    no ``prometheus_client`` lock is taken on the request path. Update it from the event
    loop's thread (every caller in the backend does).

    Args:
        registry: where to register; by default a new one (one per app, so tests and
            several apps in a process keep separate counts).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.created = time.time()
        self.negotiations = 0
        self.negotiate_errors = 0
        self.rest_retries = 0
        # Every category x outcome exists from the start (exported as 0 until counted).
        self.webhook_requests = {
            (c, o): 0 for c in (*WEBHOOK_CATEGORIES, OTHER) for o in WEBHOOK_OUTCOMES
        }
        self.webhook_duration = _Latency()
        self.rest_requests: dict[tuple[str, str], int] = {}
        self.rest_duration: dict[str, _Latency] = {}
        self.fire_and_forget_failures: dict[str, int] = {}
        self.endpoint_online: dict[str, int] = {}
        self._created: dict[tuple[str, ...], float] = {}
        self.registry.register(_BackendCollector(self))

    def negotiated(self) -> None:
        """One negotiate request was answered with a URL and token."""
        self.negotiations += 1

    def negotiate_failed(self) -> None:
        """One negotiate request was answered with an error."""
        self.negotiate_errors += 1

    def webhook(self, category: str | None, outcome: str, seconds: float) -> None:
        """One webhook request was answered."""
        # An unknown outcome is a bug of the caller; count it as an error, not a new label.
        self.webhook_requests[(_CATEGORY.get(category, OTHER), _OUTCOME.get(outcome, "error"))] += 1
        self.webhook_duration.observe(seconds)

    def fire_and_forget_failed(self, category: str | None) -> None:
        """A handler failed and no client could be told (logged by the caller)."""
        label = _CATEGORY.get(category, OTHER)
        counts = self.fire_and_forget_failures
        if label not in counts:
            self._created[("fire_and_forget", label)] = time.time()
        counts[label] = counts.get(label, 0) + 1

    def rest_call(self, operation: str | None, status: int | None, seconds: float) -> None:
        """One REST call ended (after its retries) with ``status`` (``None``: no answer)."""
        key = (_OPERATION.get(operation, OTHER), _status(status))
        counts = self.rest_requests
        if key not in counts:
            self._created[("rest", *key)] = time.time()
        counts[key] = counts.get(key, 0) + 1
        latency = self.rest_duration.get(key[0])
        if latency is None:
            latency = self.rest_duration[key[0]] = _Latency()
        latency.observe(seconds)

    def rest_retried(self) -> None:
        """One REST attempt failed and will be retried."""
        self.rest_retries += 1

    def endpoint_health(self, endpoint: str, online: bool) -> None:
        """Record what is known of a configured endpoint's health."""
        self.endpoint_online[endpoint] = 1 if online else 0

    def render(self) -> bytes:
        """The registry in the Prometheus text format (the ``GET /metrics`` body)."""
        return generate_latest(self.registry)


# Label value maps: a known value maps to itself, anything else misses (one dict lookup).
_CATEGORY: Final[dict[str | None, str]] = {c: c for c in WEBHOOK_CATEGORIES}
_OUTCOME: Final[dict[str | None, str]] = {o: o for o in WEBHOOK_OUTCOMES}
_OPERATION: Final[dict[str | None, str]] = {o: o for o in REST_OPERATIONS}


def _created_series() -> bool:
    """Whether counters and histograms export ``_created`` (prometheus_client's switch:
    ``PROMETHEUS_DISABLE_CREATED_SERIES``, ``disable_created_metrics()``)."""
    return bool(getattr(prometheus_client.metrics, "_use_created", True))


class _BackendCollector:
    """Builds the exposition of :class:`BackendMetrics` when the registry is scraped:
    the names, help texts, types and samples ``prometheus_client``'s own ``Counter``,
    ``Histogram`` and ``Gauge`` would write for the same counts."""

    def __init__(self, metrics: BackendMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        created = _created_series()
        at = m._created.get

        def counter(name: str, help_text: str, labels: Sequence[str] = ()) -> Any:
            return CounterMetricFamily(name, help_text, labels=labels)

        def add(family: Any, labels: Sequence[str], value: float, when: float | None) -> None:
            family.add_metric(labels, value, created=when if created else None)

        negotiate = counter("signalr_negotiate", _HELP["negotiate"])
        add(negotiate, [], m.negotiations, m.created)
        yield negotiate
        errors = counter("signalr_negotiate_errors", _HELP["negotiate_errors"])
        add(errors, [], m.negotiate_errors, m.created)
        yield errors
        webhook = counter("signalr_webhook_requests", _HELP["webhook"], ("category", "outcome"))
        for (category, outcome), count in m.webhook_requests.items():
            add(webhook, [category, outcome], count, m.created)
        yield webhook
        duration = HistogramMetricFamily("signalr_webhook_duration_seconds", _HELP["duration"])
        _add_latency(duration, (), (), m.webhook_duration, created)
        yield duration
        rest = counter("signalr_rest_requests", _HELP["rest"], ("operation", "status"))
        for (operation, status), count in list(m.rest_requests.items()):
            add(rest, [operation, status], count, at(("rest", operation, status)))
        yield rest
        rest_duration = HistogramMetricFamily(
            "signalr_rest_duration_seconds", _HELP["rest_duration"], labels=("operation",)
        )
        for operation, latency in list(m.rest_duration.items()):
            _add_latency(rest_duration, ("operation",), (operation,), latency, created)
        yield rest_duration
        retries = counter("signalr_rest_retries", _HELP["retries"])
        add(retries, [], m.rest_retries, m.created)
        yield retries
        failures = counter("signalr_fire_and_forget_failures", _HELP["failures"], ("category",))
        for category, count in list(m.fire_and_forget_failures.items()):
            add(failures, [category], count, at(("fire_and_forget", category)))
        yield failures
        online = GaugeMetricFamily("signalr_endpoint_online", _HELP["online"], labels=("endpoint",))
        for endpoint, value in list(m.endpoint_online.items()):
            online.add_metric([endpoint], value)
        yield online


def _add_latency(
    family: HistogramMetricFamily,
    names: tuple[str, ...],
    labels: tuple[str, ...],
    latency: _Latency,
    created: bool,
) -> None:
    family.add_metric(labels, latency.buckets(), latency.total)
    if created:  # what prometheus_client's Histogram adds (the family class has no argument)
        labelled = dict(zip(names, labels, strict=True))
        family.samples.append(Sample(family.name + "_created", labelled, latency.created))


_HELP: Final = {
    "negotiate": "Negotiate requests answered with a URL and token.",
    "negotiate_errors": "Negotiate requests answered with an error.",
    "webhook": "Upstream webhook requests, by category and outcome.",
    "duration": "Time to answer an upstream webhook request (body read to response).",
    "rest": "Data-plane REST calls to the SignalR Service, by operation and final status "
    "('error': no answer).",
    "rest_duration": "Data-plane REST call latency, retries included, by operation.",
    "retries": "Data-plane REST attempts that were retried.",
    "failures": "Handler failures no client was told about (send invocations, disconnects).",
    "online": "1 while the SignalR Service endpoint answers, 0 after a failed call or check.",
}


def bridge_to_opentelemetry(
    registry: CollectorRegistry, meter_provider: MeterProvider | None = None
) -> None:
    """Export a Prometheus registry's values through OpenTelemetry metrics too.

    Observable instruments read the registry when the metrics exporter collects (Azure
    Monitor or ``OTEL_METRICS_EXPORTER``), so the request path pays nothing. Counters
    and gauges keep their names and labels; a histogram is exported as its ``_sum`` and
    ``_count`` counters. Call once per registry, after :func:`configure_tracing`.
    """
    provider = meter_provider if meter_provider is not None else _global_meter_provider()
    meter = provider.get_meter(INSTRUMENTATION_NAME)
    for family in list(registry.collect()):
        name = family.name
        if family.type == "counter":
            meter.create_observable_counter(
                name + "_total",
                callbacks=[_observer(registry, name, (name + "_total",))],
                description=family.documentation,
            )
        elif family.type == "gauge":
            meter.create_observable_gauge(
                name,
                callbacks=[_observer(registry, name, (name,))],
                description=family.documentation,
            )
        elif family.type == "histogram":
            for suffix in ("_sum", "_count"):
                meter.create_observable_counter(
                    name + suffix,
                    callbacks=[_observer(registry, name, (name + suffix,))],
                    description=family.documentation,
                )


def _global_meter_provider() -> MeterProvider:
    from opentelemetry import metrics

    return metrics.get_meter_provider()


def _observer(registry: CollectorRegistry, family: str, samples: tuple[str, ...]) -> Any:
    def observe(options: CallbackOptions) -> Iterator[Observation]:
        for metric in registry.collect():
            if metric.name != family:
                continue
            for sample in metric.samples:
                if sample.name in samples:
                    yield Observation(sample.value, dict(sample.labels))

    return observe


# -- traces -----------------------------------------------------------------------------

_NO_SPAN: Final = contextlib.nullcontext(INVALID_SPAN)


class _Current:
    """A started span made current for a ``with`` block, then ended.

    What ``Tracer.start_as_current_span`` does, without its generator-based context
    manager (a third of a span's cost in the SDK): attach on entry; on exit record an
    escaping exception and mark the span failed, detach and end.
    """

    __slots__ = ("_span", "_token")

    def __init__(self, span: Span) -> None:
        self._span = span

    def __enter__(self) -> Span:
        self._token = otel_context.attach(trace.set_span_in_context(self._span))
        return self._span

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        span = self._span
        try:
            if exc is not None and span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            otel_context.detach(self._token)
            span.end()


def _unsampled_parent() -> bool:
    """Whether the current span exists but is not recorded (its trace was not sampled).

    Its children would not be sampled either (the SDK's samplers decide by parent or by
    trace id), so the helpers make none: the request's span alone carries the context.
    """
    current = trace.get_current_span()
    if type(current) is _DroppedSpan:
        return True
    return not current.is_recording() and current.get_span_context().is_valid


_LOW_64_BITS: Final = (1 << 64) - 1
"""The bits of a trace id that ``TraceIdRatioBased`` compares with its bound."""


class _RootSampler:
    """Head sampling of root requests, before the SDK, exactly as its sampler decides.

    Made by :func:`_root_sampler` when the tracer's sampler decides a root span by its
    trace id alone: ``TraceIdRatioBased(r)``, ``ParentBased`` with that root (what
    ``OTEL_TRACES_SAMPLER=traceidratio`` / ``parentbased_traceidratio`` configure), or
    always-off. For a root request (no ``traceparent``, no current span)
    :meth:`Telemetry._head` draws the trace id as the SDK's ``RandomIdGenerator`` does and
    applies the sampler's own test (``trace_id & (2**64 - 1) < bound``). A dropped request
    gets a :class:`_DroppedSpan` and never reaches the SDK, whose unsampled span cost
    10-15 µs per request; a sampled one is started by the SDK with that trace id, which
    this object hands over as the tracer's id generator (:attr:`pending`), so the SDK's
    sampler makes the same decision on the same id.

    Used from one thread (the event loop's): :attr:`pending` is set and consumed within
    one synchronous ``start_span`` call.
    """

    __slots__ = ("_ids", "bound", "dropped_flags", "pending")

    def __init__(self, ids: IdGenerator, bound: int) -> None:
        self._ids = ids
        self.bound = bound
        self.pending = 0
        # The flags the SDK gives an unsampled span: not sampled, and W3C's random-trace-id
        # flag when the generator says its ids are random (SDKs that know the flag).
        random_ids = getattr(ids, "is_trace_id_random", None)
        self.dropped_flags = TraceFlags(0x02 if random_ids is not None and random_ids() else 0)

    # The id generator interface, as the SDK tracer calls it.

    def generate_trace_id(self) -> int:
        trace_id = self.pending
        if trace_id:
            self.pending = 0
            return trace_id
        return self._ids.generate_trace_id()

    def generate_span_id(self) -> int:
        return self._ids.generate_span_id()

    def is_trace_id_random(self) -> bool:
        return self.dropped_flags == 0x02


def _root_sampler(tracer: Tracer) -> _RootSampler | None:
    """The head sampler for ``tracer``'s root spans, or ``None``: the SDK decides them all.

    Only where the SDK's decision is a function of the trace id we would draw: an SDK
    tracer with the default ``RandomIdGenerator`` (a custom generator makes its own ids),
    a sampler that is ``TraceIdRatioBased``, always-off, or ``ParentBased`` over one of
    them, read from the tracer the SDK configured from ``OTEL_TRACES_SAMPLER`` (nothing
    here overrides it), and the SDK's own span metrics off
    (``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED``, which count the dropped spans). Any
    other sampler (always-on, Azure Monitor's, a custom one) leaves every span to the SDK.
    """
    from opentelemetry.sdk.trace import Tracer as SdkTracer
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
    from opentelemetry.sdk.trace.sampling import (
        Decision,
        ParentBased,
        StaticSampler,
        TraceIdRatioBased,
    )

    if not isinstance(tracer, SdkTracer):
        return None
    ids = tracer.id_generator
    if isinstance(ids, _RootSampler):  # the provider's cached tracer, already set up
        return ids
    if type(ids) is not RandomIdGenerator:
        return None
    if os.environ.get("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "").strip().lower() == "true":
        return None
    sampler: Any = tracer.sampler
    if (
        isinstance(sampler, ParentBased)
        and type(sampler).should_sample is ParentBased.should_sample
    ):
        # A root span's decision is the root delegate's (no public accessor in the SDK).
        sampler = getattr(sampler, "_root", None)
    if (
        isinstance(sampler, TraceIdRatioBased)
        and type(sampler).should_sample is TraceIdRatioBased.should_sample
    ):
        bound = int(sampler.bound)
    elif (
        isinstance(sampler, StaticSampler)
        and type(sampler).should_sample is StaticSampler.should_sample
        and getattr(sampler, "_decision", None) is Decision.DROP
    ):
        bound = 0
    else:
        return None
    root = _RootSampler(ids, bound)
    tracer.id_generator = cast("IdGenerator", root)
    return root


class _DroppedSpan(NonRecordingSpan):
    """The span of a root request the head sampler dropped, made without the SDK.

    What the SDK would have returned (a non-recording span in the request's trace, so
    logs carry its trace id and REST calls a ``traceparent`` saying "not sampled"), except
    that its span context, with a span id, is only made when somebody asks for it.
    """

    _token: Token[otel_context.Context]

    def __init__(self, trace_id: int, sampler: _RootSampler) -> None:
        self._context = INVALID_SPAN_CONTEXT  # NonRecordingSpan's, made on demand
        self._trace_id = trace_id
        self._sampler = sampler

    # Its own current-span manager (what :class:`_Current` does, for one object less):
    # current for the ``with`` block, then no longer. Ending it records nothing.

    def __enter__(self) -> _DroppedSpan:
        self._token = otel_context.attach(trace.set_span_in_context(self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        otel_context.detach(self._token)

    def get_span_context(self) -> SpanContext:
        context = self._context
        if context is INVALID_SPAN_CONTEXT:
            sampler = self._sampler
            context = SpanContext(
                self._trace_id,
                sampler.generate_span_id(),
                is_remote=False,
                trace_flags=sampler.dropped_flags,
            )
            self._context = context
        return context


class RestCall:
    """One REST call being made: its span (if tracing), its timing, its retries.

    Made by :meth:`Telemetry.rest_call` and used as a ``with`` block, which starts the
    span (a child of the current one) and the clock. The caller reports :meth:`retry`
    before each retry and :meth:`done` with the final status; leaving the block records
    the call in the metrics (status ``error`` when none was given) and ends the span.
    """

    __slots__ = (
        "_attributes",
        "_metrics",
        "_scope",
        "_started",
        "_tracer",
        "attempts",
        "operation",
        "span",
        "status",
    )

    def __init__(
        self,
        metrics: BackendMetrics | None,
        tracer: Tracer | None,
        operation: str,
        attributes: dict[str, Any] | None = None,
    ) -> None:
        self._metrics = metrics
        self._tracer = tracer
        self._attributes = attributes
        self._scope: _Current | None = None
        self._started = 0.0
        self.operation = operation
        self.span: Span = INVALID_SPAN
        self.status: int | None = None
        self.attempts = 1

    def retry(self, delay: float, reason: str, *, status: int | None = None) -> None:
        """The attempt failed with ``reason`` (no secrets) and is retried in ``delay`` s."""
        if self._metrics is not None:
            self._metrics.rest_retried()
        if self.span.is_recording():
            attributes: dict[str, Any] = {
                "signalr.attempt": self.attempts,
                "signalr.retry_delay_s": round(delay, 3),
                "exception.message": reason,
            }
            if status is not None:
                attributes["http.response.status_code"] = status
            self.span.add_event("retry", attributes)
        self.attempts += 1

    def done(self, status: int | None) -> None:
        """The call's final status (``None``: no answer)."""
        self.status = status

    def __enter__(self) -> RestCall:
        if self._tracer is not None:
            self._scope = _Current(
                self._tracer.start_span(
                    f"SignalR REST {self.operation}",
                    kind=SpanKind.CLIENT,
                    attributes=self._attributes,
                )
            )
            self.span = self._scope.__enter__()
        self._started = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        seconds = time.perf_counter() - self._started
        if self._metrics is not None:
            self._metrics.rest_call(self.operation, self.status, seconds)
        scope = self._scope
        if scope is None:
            return
        span = self.span
        if span.is_recording():
            if self.status is not None:
                span.set_attribute("http.response.status_code", self.status)
            if self.attempts > 1:
                span.set_attribute("signalr.attempts", self.attempts)
            if exc is None and (self.status is None or self.status >= 400):
                span.set_status(Status(StatusCode.ERROR, f"status {self.status or 'none'}"))
        self._scope = None
        scope.__exit__(exc_type, exc, tb)  # records an exception and marks the span failed


class Telemetry:
    """The span helpers and the metrics of one app.

    Args:
        metrics: the metrics to update; ``None``: metrics are off.
        tracer_provider: the provider to trace with; by default the global one when an
            SDK provider is installed (:func:`configure_tracing`), else tracing is off.

    Attributes:
        tracing: whether spans are recorded (else every span helper is a no-op).
        metrics: the metrics, or ``None``.
    """

    def __init__(
        self,
        metrics: BackendMetrics | None = None,
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.metrics = metrics
        provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
        self._tracer: Tracer | None = None
        self._sampler: _RootSampler | None = None
        if not isinstance(provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider):
            self._tracer = provider.get_tracer(INSTRUMENTATION_NAME)
            self._sampler = _root_sampler(self._tracer)
        self.tracing = self._tracer is not None

    def _head(self, headers: Mapping[str, str] | None) -> _DroppedSpan | int:
        """Decide a root request before the SDK (see :class:`_RootSampler`).

        Returns:
            The dropped request's span (its own ``with`` manager); or the trace id of a
            sampled one, for :meth:`_root`; or 0: not a root, or no head sampler, the SDK
            decides.
        """
        sampler = self._sampler
        if (
            sampler is None
            or (headers is not None and "traceparent" in headers)
            or (
                # An empty context (a fast path's request) has no span; else look.
                (current := otel_context.get_current())
                and trace.get_current_span(current) is not INVALID_SPAN
            )
        ):
            return 0
        trace_id = random.getrandbits(128)  # as the SDK's RandomIdGenerator draws it
        while not trace_id:
            trace_id = random.getrandbits(128)
        if trace_id & _LOW_64_BITS < sampler.bound:
            return trace_id
        return _DroppedSpan(trace_id, sampler)

    def _root(
        self,
        name: str,
        headers: Mapping[str, str] | None,
        attributes: dict[str, Any],
        trace_id: int = 0,
    ) -> AbstractContextManager[Span]:
        assert self._tracer is not None
        if trace_id and self._sampler is not None:
            # A root the head sampler kept: the SDK starts it with that trace id, and its
            # sampler keeps it too.
            self._sampler.pending = trace_id
            return _Current(
                self._tracer.start_span(name, kind=SpanKind.SERVER, attributes=attributes)
            )
        parent = None
        if headers is not None and "traceparent" in headers:
            parent = propagate.extract(headers)
            kind = SpanKind.SERVER
        else:
            # Under an HTTP server span (FastAPI instrumentation, Azure Monitor) this one
            # is internal; alone, it is the request.
            current = trace.get_current_span().get_span_context()
            kind = SpanKind.INTERNAL if current.is_valid else SpanKind.SERVER
        return _Current(
            self._tracer.start_span(name, context=parent, kind=kind, attributes=attributes)
        )

    def negotiate(
        self, hub: str, user_id: str | None = None, headers: Mapping[str, str] | None = None
    ) -> AbstractContextManager[Span]:
        """A span for one negotiate request (``headers``: to continue a caller's trace)."""
        if self._tracer is None:
            return _NO_SPAN
        head = self._head(headers)
        if isinstance(head, _DroppedSpan):
            return head
        attributes: dict[str, Any] = {"signalr.hub": hub}
        if user_id is not None:
            attributes["enduser.id"] = user_id
        return self._root("SignalR negotiate", headers, attributes, head)

    def webhook(
        self,
        *,
        hub: str | None = None,
        category: str | None = None,
        event: str | None = None,
        connection_id: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AbstractContextManager[Span]:
        """A span for one upstream webhook request (its hub method's span is a child)."""
        if self._tracer is None:
            return _NO_SPAN
        head = self._head(headers)
        if isinstance(head, _DroppedSpan):
            return head
        label = category if category in WEBHOOK_CATEGORIES else OTHER
        attributes = _attributes(hub, category, event, connection_id, None)
        return self._root(f"SignalR webhook {label}", headers, attributes, head)

    def hub_method(
        self,
        hub: str,
        category: str,
        event: str,
        connection_id: str,
        user_id: str | None = None,
    ) -> AbstractContextManager[Span]:
        """A span for the hub method a webhook request runs (call once the handler is
        found: the span name has the hub and event, so unknown targets never name one)."""
        if self._tracer is None or _unsampled_parent():
            return _NO_SPAN
        return _Current(
            self._tracer.start_span(
                f"{hub}.{event}",
                kind=SpanKind.INTERNAL,
                attributes=_attributes(hub, category, event, connection_id, user_id),
            )
        )

    def rest_call(self, operation: str, endpoint: str, method: str = "POST") -> RestCall:
        """Time one REST call (all its attempts) and trace it as a child of the current
        span; use it as a ``with`` block (see :class:`RestCall`).

        Args:
            operation: one of :data:`REST_OPERATIONS`.
            endpoint: the service endpoint (scheme, host, port: no path, no query).
            method: the HTTP method.
        """
        if self._tracer is None or _unsampled_parent():
            return RestCall(self.metrics, None, operation)
        attributes = {
            "signalr.operation": operation,
            "server.address": endpoint,
            "http.request.method": method,
        }
        return RestCall(self.metrics, self._tracer, operation, attributes)

    @staticmethod
    def inject(headers: dict[str, str]) -> None:
        """Add the current trace context (``traceparent``) to outgoing request headers."""
        propagate.inject(headers)

    @staticmethod
    def failed(span: Span, reason: str, exc: BaseException | None = None) -> None:
        """Mark a span failed (a handler error the webhook caught); no secrets."""
        if span.is_recording():
            if exc is not None:
                span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, reason))


def _attributes(
    hub: str | None,
    category: str | None,
    event: str | None,
    connection_id: str | None,
    user_id: str | None,
) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for key, value in (
        ("signalr.hub", hub),
        ("signalr.category", category),
        ("signalr.event", event),
        ("signalr.connection_id", connection_id),
        ("enduser.id", user_id),
    ):
        if value:
            attributes[key] = value
    return attributes


def fastapi_options(exclude: Callable[[MutableMapping[str, Any]], bool]) -> dict[str, Any]:
    """Keyword arguments for ``FastAPI(...)``: leave the requests ``exclude`` accepts to
    our own spans.

    FastAPI 0.162 and later trace every request themselves once an SDK tracer provider
    is installed (an HTTP server span, its context attached, send and receive wrapped).
    The negotiate and webhook fast paths answer before FastAPI's router, and their spans
    (:meth:`Telemetry.negotiate`, :meth:`Telemetry.webhook`) are the request's server
    span: a second one around each would double the cost of tracing the hot paths for
    nothing. Older FastAPI versions have no such span and take no ``telemetry`` argument.
    """
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"exclude": exclude}}


def current_trace_id() -> str | None:
    """The current span's trace id (32 hex digits), or ``None`` outside a recorded span."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


# -- logs -------------------------------------------------------------------------------


class TraceContext(logging.Filter):
    """Put the current span's ``trace_id`` and ``span_id`` on each record (a handler's
    filter), for :class:`~signalr_protocol.logsafe.JsonFormatter`; nothing outside a span."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "trace_id", None) is None:
            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                record.trace_id = format(context.trace_id, "032x")
                record.span_id = format(context.span_id, "016x")
        return True


def configure_logging(level: str, log_format: str, *, uvicorn_level: str | None = None) -> None:
    """The process's logging for ``python -m app``: one safe stderr handler
    (:func:`signalr_protocol.logsafe.configure_logging`) with the trace ids of
    :class:`TraceContext`."""
    logsafe.configure_logging(
        level, fmt=log_format, uvicorn_level=uvicorn_level, filters=(TraceContext(),)
    )


def configure_served_logging(level: str, log_format: str) -> None:
    """Safe log lines under ``uvicorn app.main:app``, leaving uvicorn's own set-up in place.

    uvicorn configures its loggers (``uvicorn`` to stderr, ``uvicorn.access`` to stdout)
    and leaves the root logger alone, so the backend's records would reach Python's
    last-resort handler, neither escaped nor redacted. So, once:

    * with no handler on the root logger, the ``app`` logger gets one stderr handler with
      the token and control-character filters (:func:`signalr_protocol.logsafe.secure_handler`)
      and the text or JSON format; its level is ``level`` unless a log config set one;
    * handlers already on the root logger (a ``--log-config`` of the user's) get the
      filters, and the JSON formatter for ``json``;
    * uvicorn's handlers get the filters too; their format is kept (``json`` replaces it).
    """
    filters = (TraceContext(),)
    replace = log_format if log_format == "json" else None
    root = logging.getLogger()
    backend = logging.getLogger("app")
    if root.handlers:
        for handler in root.handlers:
            logsafe.secure_handler(handler, replace, filters=filters)
    elif not any(handler.get_name() == logsafe.HANDLER_NAME for handler in backend.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name(logsafe.HANDLER_NAME)
        backend.addHandler(logsafe.secure_handler(handler, log_format, filters=filters))
    if backend.level == logging.NOTSET:
        backend.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.access"):
        for handler in logging.getLogger(name).handlers:
            logsafe.secure_handler(handler, replace, filters=filters)
