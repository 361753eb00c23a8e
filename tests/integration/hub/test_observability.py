"""The backend's telemetry after real traffic: ``GET /metrics`` values, spans and their
parents, and the failure log line, with the official JS client, the emulator and a real
REST sink that fails once.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families

from app.main import create_app
from app.settings import Settings
from app.telemetry import BackendMetrics, Telemetry, TraceContext
from signalr_protocol.logsafe import JsonFormatter
from tests.support.emulator import RunningEmulator, running_emulator, write_upstream_settings
from tests.support.hubkit import invocation_body, signed_headers
from tests.support.node import NODE, NodeClientError, NodeProcess, node_process
from tests.support.outbound_kit import Reply, recording_server, settings_for
from tests.support.servers import serve_asgi

pytestmark = [pytest.mark.anyio]

WEBHOOK = "/runtime/webhooks/signalr"
GATEWAY_KEY = "observability-test-key"
HUBS = ["app.samples.chat:ChatHub", "tests.support.hubs.observed_hub:Observed"]
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")


@pytest.fixture
def anyio_backend() -> str:
    """asyncio only: uvicorn and the Node bridge run on it."""
    return "asyncio"


def tracer() -> tuple[TracerProvider, InMemorySpanExporter]:
    """A tracer provider of the test's own, exporting to memory as spans end."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@dataclass
class Stack:
    """The emulator and a backend wired together; the backend's telemetry is the test's."""

    emulator: RunningEmulator
    backend: str
    telemetry: Telemetry


@contextlib.asynccontextmanager
async def stack(directory: Path, telemetry: Telemetry) -> AsyncIterator[Stack]:
    """Start the emulator, then the backend (upstream → its webhook), with ``telemetry``."""
    config = write_upstream_settings(directory / "settings.json", "http://127.0.0.1:9" + WEBHOOK)
    async with running_emulator(config=config) as emu:
        settings = Settings(
            connection_string=emu.connection_string, hubs=HUBS, gateway_api_keys=[GATEWAY_KEY]
        )
        async with serve_asgi(create_app(settings, telemetry=telemetry)) as backend:
            write_upstream_settings(config, backend + WEBHOOK)
            emu.app.templates.reload()  # type: ignore[attr-defined]
            yield Stack(emu, backend, telemetry)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of a Prometheus text page."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def metrics_of(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``GET /metrics`` of the backend at ``base``, parsed."""
    async with httpx.AsyncClient() as client:
        response = await client.get(base + "/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def eventually(check: Callable[[], Any], within: float = 10) -> None:
    """Poll an async ``check`` until it stops raising AssertionError."""
    async with asyncio.timeout(within):
        while True:
            try:
                await check()
                return
            except AssertionError:
                await asyncio.sleep(0.05)


def webhook(category: str, outcome: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The sample key of ``signalr_webhook_requests_total{category, outcome}``."""
    return ("signalr_webhook_requests_total", (("category", category), ("outcome", outcome)))


def rest(operation: str, status: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The sample key of ``signalr_rest_requests_total{operation, status}``."""
    return ("signalr_rest_requests_total", (("operation", operation), ("status", status)))


@pytest.fixture
async def node() -> AsyncIterator[NodeProcess]:
    """One Node process hosting the test's JS clients."""
    async with node_process() as process:
        yield process


@needs_node
@pytest.mark.node
async def test_metrics_count_real_traffic_by_value(tmp_path: Path, node: NodeProcess) -> None:
    """Two negotiated clients, a broadcast, an unknown target and a gateway send show up in
    ``GET /metrics`` with exactly these counts; the disconnects are counted after."""
    async with stack(tmp_path, Telemetry(BackendMetrics())) as running:
        base = f"{running.backend}/api/chat"
        async with (
            node.connect(base, headers={"x-ms-signalr-user-id": "alice"}) as alice,
            node.connect(base) as anon,
        ):
            await alice.send("broadcast", "hello")
            assert (await anon.next_message("newMessage"))[0]["text"] == "hello"
            with pytest.raises(NodeClientError):
                await anon.invoke("noSuchMethod", 1)
            async with httpx.AsyncClient() as client:
                sent = await client.post(
                    f"{running.backend}/api/hubs/chat/messages",
                    headers={"x-functions-key": GATEWAY_KEY},
                    json={"target": "newMessage", "arguments": [{"text": "from the gateway"}]},
                )
            assert sent.status_code == 202, sent.text
            assert (await alice.next_message("newMessage"))[0]["text"] == "hello"
            assert (await alice.next_message("newMessage"))[0]["text"] == "from the gateway"

            values = await metrics_of(running.backend)
            assert values[("signalr_negotiate_total", ())] == 2
            assert values[("signalr_negotiate_errors_total", ())] == 0
            assert values[webhook("connections", "ok")] == 2  # two connected events
            assert values[webhook("messages", "ok")] == 1  # the broadcast
            assert values[webhook("messages", "not_found")] == 1  # noSuchMethod
            assert values[webhook("messages", "error")] == 0
            assert values[("signalr_webhook_duration_seconds_count", ())] == 4
            # on_connected ×2 + the broadcast + the gateway: four sends to everyone
            assert values[rest("send_to_all", "202")] == 4
            assert (
                values[("signalr_rest_duration_seconds_count", (("operation", "send_to_all"),))]
                == 4
            )
            assert values[("signalr_rest_retries_total", ())] == 0
            assert (
                values[("signalr_endpoint_online", (("endpoint", running.emulator.base_url),))] == 1
            )
            assert not any(
                key[0] == "signalr_webhook_requests_total" and "noSuchMethod" in str(key)
                for key in values
            ), "an unknown target must never become a label"

        async def disconnects_counted() -> None:
            values = await metrics_of(running.backend)
            assert values[webhook("connections", "ok")] == 4

        await eventually(disconnects_counted)


async def test_metrics_route_can_be_turned_off() -> None:
    """``SIGNALR_METRICS_ENABLED=false``: ``GET /metrics`` answers 404 with a JSON error."""
    async with recording_server() as sink:
        for enabled, status in ((True, 200), (False, 404)):
            app = create_app(settings_for(sink.base_url, metrics_enabled=enabled))
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await client.get("/metrics")
            assert response.status_code == status
            if enabled:
                assert "signalr_negotiate_total 0.0" in response.text
            else:
                assert response.json()["type"] == "MetricsDisabled"
                assert "SIGNALR_METRICS_ENABLED" in response.json()["error"]


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    """The finished spans called ``name``."""
    return [span for span in spans if span.name == name]


def parent_of(span: ReadableSpan) -> int | None:
    """The span id of ``span``'s parent (``None`` for a root)."""
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    """``span``'s own id."""
    context = span.context
    assert context is not None
    return context.span_id


@needs_node
@pytest.mark.node
async def test_spans_form_webhook_method_rest_tree(tmp_path: Path, node: NodeProcess) -> None:
    """A negotiate is one span with the user; a client's broadcast is a webhook span whose
    child is the hub method, whose child is the REST call (operation, endpoint, 202)."""
    provider, exporter = tracer()
    telemetry = Telemetry(BackendMetrics(), tracer_provider=provider)
    async with stack(tmp_path, telemetry) as running:
        base = f"{running.backend}/api/chat"
        async with node.connect(base, headers={"x-ms-signalr-user-id": "alice"}) as alice:
            await alice.send("broadcast", "traced")
            assert (await alice.next_message("newMessage"))[0]["text"] == "traced"

            def broadcast_spans() -> list[ReadableSpan]:
                return by_name(exporter.get_finished_spans(), "chat.broadcast")

            async def method_span_ended() -> None:
                assert broadcast_spans()

            await eventually(method_span_ended)
    spans = exporter.get_finished_spans()
    (negotiate,) = by_name(spans, "SignalR negotiate")
    assert negotiate.parent is None
    assert negotiate.attributes is not None
    assert negotiate.attributes["signalr.hub"] == "chat"
    assert negotiate.attributes["enduser.id"] == "alice"

    (method,) = by_name(spans, "chat.broadcast")
    parent = [
        s for s in by_name(spans, "SignalR webhook messages") if span_id(s) == parent_of(method)
    ]
    assert len(parent) == 1, "the hub method's parent is the webhook request"
    webhook_span = parent[0]
    assert webhook_span.parent is None
    assert method.attributes is not None
    assert method.attributes["signalr.connection_id"] == alice.connection_id
    assert method.attributes["enduser.id"] == "alice"
    assert method.attributes["signalr.category"] == "messages"

    sends = [
        s for s in by_name(spans, "SignalR REST send_to_all") if parent_of(s) == span_id(method)
    ]
    assert len(sends) == 1, "the broadcast's REST call is the hub method's child"
    attributes = sends[0].attributes
    assert attributes is not None
    assert attributes["http.response.status_code"] == 202
    assert attributes["server.address"] == running.emulator.base_url
    assert attributes["signalr.operation"] == "send_to_all"
    for span in spans:  # no token (a JWT starts with "ey") in any attribute
        for value in (span.attributes or {}).values():
            assert not str(value).startswith("ey"), f"{span.name} carries a token"


@contextlib.asynccontextmanager
async def backend_on_sink(
    telemetry: Telemetry, replies: list[Reply]
) -> AsyncIterator[tuple[str, Any]]:
    """The backend whose service is a recording sink answering ``replies`` first."""
    async with recording_server() as sink:
        sink.replies.extend(replies)
        settings = settings_for(sink.base_url, hubs=HUBS)
        async with serve_asgi(create_app(settings, telemetry=telemetry)) as backend:
            yield backend, sink


async def post_webhook(
    backend: str, hub: str, target: str, *, connection_id: str
) -> httpx.Response:
    """A signed fire-and-forget invocation of ``target``, as the service sends it."""
    headers = signed_headers(
        hub=hub, event=target, connection_id=connection_id, X_ASRS_User_Id="bob"
    )
    async with httpx.AsyncClient() as client:
        return await client.post(
            backend + WEBHOOK,
            headers=headers,
            content=invocation_body(target, "payload", invocation_id=None),
        )


async def test_rest_retry_is_an_event_of_the_rest_span(tmp_path: Path) -> None:
    """The service answers 503 then 202: one REST span (the hub method's child) with a
    ``retry`` event naming the 503, status 202, and the trace carried to the service in
    ``traceparent``; the metrics count one retry and one 202."""
    provider, exporter = tracer()
    metrics = BackendMetrics()
    async with backend_on_sink(Telemetry(metrics, tracer_provider=provider), [Reply(503)]) as (
        backend,
        sink,
    ):
        response = await post_webhook(backend, "chat", "broadcast", connection_id="conn-r")
        assert response.status_code == 200
    spans = exporter.get_finished_spans()
    (method,) = by_name(spans, "chat.broadcast")
    (call,) = by_name(spans, "SignalR REST send_to_all")
    (request,) = by_name(spans, "SignalR webhook messages")
    assert parent_of(call) == span_id(method)
    assert parent_of(method) == span_id(request)
    assert call.attributes is not None
    assert call.attributes["http.response.status_code"] == 202
    assert call.attributes["signalr.attempts"] == 2
    (retry,) = call.events
    assert retry.name == "retry"
    assert retry.attributes is not None
    assert retry.attributes["http.response.status_code"] == 503
    assert retry.attributes["signalr.attempt"] == 1

    sends = [r for r in sink.requests if r.raw_path.endswith("/:send")]
    assert len(sends) == 2
    context = call.get_span_context()
    assert context is not None
    for sent in sends:
        version, trace_id, parent_id, _ = sent.headers["traceparent"].split("-")
        assert trace_id == format(context.trace_id, "032x")
        assert parent_id == format(context.span_id, "016x")

    values = samples(metrics.render().decode())
    assert values[("signalr_rest_retries_total", ())] == 1
    assert values[rest("send_to_all", "202")] == 1
    assert rest("send_to_all", "503") not in values, "a retried attempt is not a call"


@contextlib.contextmanager
def json_log(logger_name: str) -> Iterator[io.StringIO]:
    """Capture ``logger_name``'s records as the JSON formatter writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(TraceContext())
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


async def test_failed_invocation_logs_one_line_with_connection_and_trace(tmp_path: Path) -> None:
    """A handler that raises on a fire-and-forget call: one JSON log line carrying the
    connection id and the trace id of the request's span, which is marked failed; counted
    as an ``error`` outcome and a fire-and-forget failure."""
    provider, exporter = tracer()
    metrics = BackendMetrics()
    with json_log("app.services.webhook") as stream:
        async with backend_on_sink(Telemetry(metrics, tracer_provider=provider), []) as (
            backend,
            _,
        ):
            response = await post_webhook(backend, "observed", "crash", connection_id="conn-x")
            assert response.status_code == 200
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    failures = [line for line in lines if line["level"] == "ERROR"]
    assert len(failures) == 1, lines
    (line,) = failures
    (method,) = by_name(exporter.get_finished_spans(), "observed.crash")
    context = method.get_span_context()
    assert context is not None
    assert line["connection_id"] == "conn-x"
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert f"trace={line['trace_id']}" in line["message"]
    assert "RuntimeError" in line["exception"]
    assert method.status.status_code.name == "ERROR"
    values = samples(metrics.render().decode())
    assert values[webhook("messages", "error")] == 1
    assert values[("signalr_fire_and_forget_failures_total", (("category", "messages"),))] == 1


async def test_application_insights_without_the_extra_stops_the_launcher(tmp_path: Path) -> None:
    """``APPLICATIONINSIGHTS_CONNECTION_STRING`` set without the ``azure-monitor`` extra:
    ``python -m app`` exits 2 with one line naming the extra to install, no traceback."""
    import importlib.util
    import os
    import sys

    if importlib.util.find_spec("azure.monitor") is not None:
        pytest.skip("the azure-monitor extra is installed here")
    env = {
        **os.environ,
        "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=" + "0" * 32,
        "SIGNALR_PORT": "0",
        "SIGNALR_EMULATOR_PORT": "0",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await process.communicate()
    assert process.returncode == 2, (out, err)
    text = err.decode()
    assert 'pip install "serverless-signalr[azure-monitor]"' in text
    assert "Traceback" not in text
    assert "InstrumentationKey" not in text
