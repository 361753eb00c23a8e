"""Telemetry configuration from the standard environment variables."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import app.telemetry as telemetry_module
from app.telemetry import TelemetryConfig, TelemetryError, configure_tracing

ROOT = Path(__file__).resolve().parents[3]

# A process that configures tracing from its environment and makes one webhook → REST tree.
SCRIPT = """
from app.telemetry import Telemetry, configure_tracing
mode = configure_tracing()
telemetry = Telemetry()
with telemetry.webhook(hub="chat", category="messages", event="broadcast", connection_id="c1"):
    with telemetry.rest_call("send_to_all", "http://localhost:8888") as call:
        call.done(202)
print("MODE", mode, telemetry.tracing, flush=True)
"""


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "APPLICATIONINSIGHTS"))
    }
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "mode", "implied"),
    [
        ({}, "off", False),
        ({"OTEL_TRACES_EXPORTER": "none"}, "off", False),
        ({"OTEL_TRACES_EXPORTER": "console"}, "otel", False),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, "off", False),
        ({"OTEL_METRICS_EXPORTER": "otlp"}, "otel", False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "otel", True),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"},
            "off",
            False,
        ),
        (
            {
                "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x",
                "OTEL_SDK_DISABLED": "true",
            },
            "azure_monitor",
            False,
        ),
    ],
)
def test_mode_follows_the_standard_variables(env: dict[str, str], mode: str, implied: bool) -> None:
    """Tracing is off unless an exporter, an OTLP endpoint or Application Insights is set."""
    config = TelemetryConfig.from_environ(env)
    assert (config.tracing, config.otlp_implied) == (mode, implied)


def test_metrics_flag_and_log_format() -> None:
    """SIGNALR_METRICS_ENABLED and SIGNALR_LOG_FORMAT are read; bad values are refused."""
    assert TelemetryConfig.from_environ({}).metrics_enabled
    assert not TelemetryConfig.from_environ({"SIGNALR_METRICS_ENABLED": "false"}).metrics_enabled
    assert TelemetryConfig.from_environ({"SIGNALR_LOG_FORMAT": "JSON"}).log_format == "json"
    with pytest.raises(TelemetryError, match="SIGNALR_METRICS_ENABLED"):
        TelemetryConfig.from_environ({"SIGNALR_METRICS_ENABLED": "maybe"})
    with pytest.raises(TelemetryError, match="SIGNALR_LOG_FORMAT"):
        TelemetryConfig.from_environ({"SIGNALR_LOG_FORMAT": "xml"})


def test_application_insights_without_the_extra_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """APPLICATIONINSIGHTS_CONNECTION_STRING without the extra names the pip command."""
    pytest.importorskip("azure.core")  # the namespace exists; the distro must not
    with pytest.raises(ImportError):
        __import__("azure.monitor.opentelemetry")
    monkeypatch.setattr(telemetry_module, "_configured", None)
    config = TelemetryConfig.from_environ(
        {"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=k"}
    )
    with pytest.raises(TelemetryError) as info:
        configure_tracing(config)
    message = str(info.value)
    assert "serverless-signalr[azure-monitor]" in message and "\n" not in message
    assert telemetry_module._configured is None  # nothing half-configured


def test_off_installs_nothing() -> None:
    """With no variables the process keeps the API's no-op provider."""
    result = _run({})
    assert result.returncode == 0, result.stderr
    assert "MODE off False" in result.stdout


def test_console_exporter_prints_the_spans_with_the_default_service_name() -> None:
    """OTEL_TRACES_EXPORTER=console: the SDK's console exporter prints both spans."""
    result = _run({"OTEL_TRACES_EXPORTER": "console"})
    assert result.returncode == 0, result.stderr
    assert "MODE otel True" in result.stdout
    assert '"name": "SignalR webhook messages"' in result.stdout
    assert '"name": "SignalR REST send_to_all"' in result.stdout
    assert '"service.name": "serverless-signalr"' in result.stdout


def test_an_unknown_exporter_is_one_clear_error() -> None:
    """An exporter that is not installed fails start-up with one line, no traceback."""
    script = (
        "from app.telemetry import TelemetryError, configure_tracing\n"
        "try:\n    configure_tracing()\n"
        "except TelemetryError as exc:\n    print('ERROR', exc)\n"
    )
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", script],
        env={**clean, "OTEL_TRACES_EXPORTER": "zipkin_json_nonexistent"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.stdout.startswith("ERROR OpenTelemetry configuration refused"), result.stderr


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.received.append((self.path, self.headers.get("content-type", ""), body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    received: list[tuple[str, str, bytes]] = []
    handler = type("Collector", (_Collector,), {"received": received})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


def test_an_otlp_endpoint_alone_exports_over_http_protobuf(
    collector: tuple[str, list[tuple[str, str, bytes]]],
) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT set: spans are POSTed to {endpoint}/v1/traces."""
    url, received = collector
    result = _run({"OTEL_EXPORTER_OTLP_ENDPOINT": url, "OTEL_SERVICE_NAME": "my-backend"})
    assert result.returncode == 0, result.stderr
    traces = [(ctype, body) for path, ctype, body in received if path == "/v1/traces"]
    assert traces, received
    ctype, body = traces[0]
    assert ctype == "application/x-protobuf"
    assert b"SignalR REST send_to_all" in body and b"my-backend" in body
