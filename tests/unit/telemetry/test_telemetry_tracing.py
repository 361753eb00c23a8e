"""Backend spans: the webhook → hub method → REST call tree, retries as events, no secrets."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased
from opentelemetry.trace import SpanKind, StatusCode

from app.telemetry import BackendMetrics, Telemetry, TraceContext, current_trace_id
from signalr_protocol.logsafe import JsonFormatter


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def telemetry(exporter: InMemorySpanExporter) -> Telemetry:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Telemetry(BackendMetrics(), tracer_provider=provider)


def _by_name(spans: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in spans}


def test_without_a_provider_every_helper_is_a_shared_no_op() -> None:
    """No SDK provider installed: tracing is off and the helpers record nothing."""
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    telemetry = Telemetry(BackendMetrics())
    assert not telemetry.tracing
    assert telemetry.webhook(hub="chat") is telemetry.negotiate("chat")
    with telemetry.webhook(hub="chat", category="messages") as span:
        assert not span.is_recording()
        with telemetry.rest_call("send_to_all", "http://localhost:8888") as call:
            call.retry(0.1, "503 Service Unavailable", status=503)
            call.done(202)
    # Metrics still count when tracing is off.
    registry = telemetry.metrics.registry  # type: ignore[union-attr]
    assert registry.get_sample_value("signalr_rest_retries_total") == 1
    assert (
        registry.get_sample_value(
            "signalr_rest_requests_total", {"operation": "send_to_all", "status": "202"}
        )
        == 1
    )


@pytest.mark.anyio
async def test_rest_calls_are_children_of_the_hub_method_inside_the_webhook(
    telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    """webhook ⊃ hub method ⊃ REST call, across awaits and a spawned task."""

    async def send(operation: str) -> None:
        with telemetry.rest_call(operation, "http://localhost:8888") as call:
            await asyncio.sleep(0)
            call.done(202)

    with telemetry.webhook(hub="chat", category="messages", event="broadcast", connection_id="c1"):
        with telemetry.hub_method("chat", "messages", "broadcast", "c1", user_id="alice"):
            await send("send_to_all")
            await asyncio.create_task(send("send_to_group"))

    spans = _by_name(exporter.get_finished_spans())
    webhook = spans["SignalR webhook messages"]
    method = spans["chat.broadcast"]
    assert webhook.parent is None and webhook.kind is SpanKind.SERVER
    assert method.parent is not None and method.parent.span_id == webhook.context.span_id
    for name in ("SignalR REST send_to_all", "SignalR REST send_to_group"):
        rest = spans[name]
        assert rest.kind is SpanKind.CLIENT
        assert rest.parent is not None and rest.parent.span_id == method.context.span_id
        assert rest.context.trace_id == webhook.context.trace_id
        assert rest.attributes is not None
        assert rest.attributes["http.response.status_code"] == 202
        assert rest.attributes["server.address"] == "http://localhost:8888"
    assert method.attributes == {
        "signalr.hub": "chat",
        "signalr.category": "messages",
        "signalr.event": "broadcast",
        "signalr.connection_id": "c1",
        "enduser.id": "alice",
    }


def test_retries_are_span_events_and_a_final_failure_marks_the_span(
    telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    """Each retry is an event with its attempt and delay; a 503 at the end fails the span."""
    with telemetry.rest_call("send_to_user", "https://x.service.signalr.net") as call:
        call.retry(0.5, "503 Service Unavailable", status=503)
        call.retry(1.0, "ConnectError")
        call.done(503)

    (span,) = exporter.get_finished_spans()
    assert [e.name for e in span.events] == ["retry", "retry"]
    assert [e.attributes["signalr.attempt"] for e in span.events if e.attributes] == [1, 2]
    assert span.events[0].attributes is not None
    assert span.events[0].attributes["http.response.status_code"] == 503
    assert span.attributes is not None and span.attributes["signalr.attempts"] == 3
    assert span.status.status_code is StatusCode.ERROR
    registry = telemetry.metrics.registry  # type: ignore[union-attr]
    assert registry.get_sample_value("signalr_rest_retries_total") == 2


def test_an_exception_in_a_rest_call_is_recorded_and_counted_as_error(
    telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    """A call that raises without a status counts as status ``error``, with the exception."""
    with pytest.raises(TimeoutError), telemetry.rest_call("user_exists", "http://h"):
        raise TimeoutError("no answer")

    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert [e.name for e in span.events] == ["exception"]
    registry = telemetry.metrics.registry  # type: ignore[union-attr]
    assert (
        registry.get_sample_value(
            "signalr_rest_requests_total", {"operation": "user_exists", "status": "error"}
        )
        == 1
    )


def test_a_traceparent_header_continues_the_callers_trace(
    telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    """negotiate with a W3C traceparent becomes a server span in the caller's trace."""
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    headers = {"traceparent": f"00-{trace_id}-b7ad6b7169203331-01"}
    with telemetry.negotiate("chat", user_id="bob", headers=headers):
        pass

    (span,) = exporter.get_finished_spans()
    assert span.name == "SignalR negotiate" and span.kind is SpanKind.SERVER
    assert format(span.context.trace_id, "032x") == trace_id
    assert span.parent is not None and format(span.parent.span_id, "016x") == "b7ad6b7169203331"


def test_under_an_http_server_span_the_webhook_span_is_internal(
    telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    """When an HTTP instrumentation already made the request span, ours is its child."""
    tracer = TracerProvider().get_tracer("outer")
    with tracer.start_as_current_span("POST /runtime/webhooks/signalr"):
        with telemetry.webhook(category="connections"):
            pass
    (span,) = exporter.get_finished_spans()
    assert span.kind is SpanKind.INTERNAL and span.parent is not None


def test_no_token_or_claim_value_reaches_a_span(
    telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    """Spans carry names and ids only: nothing the helpers take can hold a secret."""
    headers = {"authorization": "Bearer SECRET", "x-asrs-user-claims": "SECRET"}
    with telemetry.webhook(hub="chat", category="messages", event="echo", connection_id="c"):
        with telemetry.negotiate("chat", headers=headers):
            pass
    dumped = json.dumps([span.to_json() for span in exporter.get_finished_spans()], default=str)
    assert "SECRET" not in dumped


def test_failed_marks_a_span_with_the_reason(
    telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    """A handler failure the webhook catches still shows on the method's span."""
    with telemetry.hub_method("chat", "messages", "echo", "c1") as span:
        Telemetry.failed(span, "handler failed", ValueError("boom"))
    (finished,) = exporter.get_finished_spans()
    assert finished.status.status_code is StatusCode.ERROR
    assert finished.status.description == "handler failed"
    assert finished.events[0].name == "exception"


def test_json_log_lines_carry_the_trace_id(telemetry: Telemetry) -> None:
    """SIGNALR_LOG_FORMAT=json: one object per line with trace id and connection id."""

    def line() -> dict[str, Any]:
        record = logging.LogRecord("app", logging.WARNING, __file__, 1, "failed %s", ("x",), None)
        record.connection_id = "c1"
        TraceContext().filter(record)
        entry: dict[str, Any] = json.loads(JsonFormatter().format(record))
        return entry

    with telemetry.hub_method("chat", "messages", "echo", "c1"):
        entry = line()
        trace_id = current_trace_id()
    assert entry["message"] == "failed x" and entry["level"] == "WARNING"
    assert entry["trace_id"] == trace_id and len(entry["span_id"]) == 16
    assert entry["connection_id"] == "c1"
    assert entry["time"].endswith("+00:00")
    outside = line()
    assert "trace_id" not in outside and current_trace_id() is None


def test_an_exception_escaping_a_request_span_fails_it_and_restores_the_context(
    telemetry: Telemetry, exporter: InMemorySpanExporter
) -> None:
    """An exception leaving the webhook's block is recorded on its span, marked failed,
    and the span stops being the current one."""
    with (
        pytest.raises(ValueError),
        telemetry.webhook(hub="chat", category="messages") as span,
    ):
        assert trace.get_current_span() is span
        raise ValueError("boom")
    assert not trace.get_current_span().get_span_context().is_valid
    (finished,) = exporter.get_finished_spans()
    assert finished.status.status_code is StatusCode.ERROR
    assert finished.status.description == "ValueError: boom"
    assert [event.name for event in finished.events] == ["exception"]


def test_an_unsampled_request_makes_no_child_spans_but_keeps_its_trace_id(
    exporter: InMemorySpanExporter,
) -> None:
    """Under a request span its sampler dropped, the hub method and REST helpers make no
    spans (they would be dropped too); logs still get the request's trace id."""
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = Telemetry(BackendMetrics(), tracer_provider=provider)
    with telemetry.webhook(hub="chat", category="messages", connection_id="c1") as request:
        assert not request.is_recording() and request.get_span_context().is_valid
        with telemetry.hub_method("chat", "messages", "echo", "c1") as method:
            assert not method.is_recording()
            assert trace.get_current_span() is request
            with telemetry.rest_call("send_to_all", "http://localhost:8888") as call:
                assert not call.span.is_recording()
                call.done(202)
            assert current_trace_id() == format(request.get_span_context().trace_id, "032x")
    assert exporter.get_finished_spans() == ()
    registry = telemetry.metrics.registry  # type: ignore[union-attr]
    sample = {"operation": "send_to_all", "status": "202"}
    assert registry.get_sample_value("signalr_rest_requests_total", sample) == 1
