"""Spans of a backend traced through the OpenTelemetry SDK's own set-up (``OTEL_*``
variables, console exporter), served by uvicorn in a child process: the negotiate and
webhook requests are traced once, by the backend's spans, and FastAPI's own request span
is left to the other routes.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.telemetry import fastapi_options
from signalr_protocol.connection_string import EMULATOR_ACCESS_KEY, emulator_connection_string
from tests.support.hubkit import invocation_body, signed_headers
from tests.support.servers import free_port, wait_listening

pytestmark = [pytest.mark.anyio]

WEBHOOK = "/runtime/webhooks/signalr"


@pytest.fixture
def anyio_backend() -> str:
    """asyncio only: the child process is driven with asyncio subprocesses."""
    return "asyncio"


def console_spans(text: str) -> list[dict[str, Any]]:
    """The spans the SDK's console exporter printed (one JSON object per span)."""
    decoder = json.JSONDecoder()
    spans: list[dict[str, Any]] = []
    index = 0
    while True:
        start = text.find("{", index)
        if start < 0:
            return spans
        span, index = decoder.raw_decode(text, start)
        spans.append(span)


async def traced_backend_spans(tmp_path: Path) -> list[dict[str, Any]]:
    """Serve ``app.main:app`` with OTEL_TRACES_EXPORTER=console; negotiate, invoke
    ``echo`` through the webhook and GET /healthz; stop it and return its spans."""
    port = free_port()
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OTEL_", "SIGNALR_", "Azure", "APPLICATIONINSIGHTS"))
    }
    env |= {
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "AzureSignalRConnectionString": emulator_connection_string(),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uvicorn",
        "app.main:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
        cwd=tmp_path,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_listening(port, process)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base) as client:
            negotiate = await client.post("/api/negotiate")
            assert negotiate.status_code == 200, negotiate.text
            headers = signed_headers(keys=(EMULATOR_ACCESS_KEY,))
            body = invocation_body("echo", "hi")
            echo = await client.post(WEBHOOK, content=body, headers=headers)
            assert echo.status_code == 200, echo.text
            health = await client.get("/healthz")
            assert health.status_code == 200
    finally:
        if process.returncode is None:
            process.terminate()
        async with asyncio.timeout(30):
            out, err = await process.communicate()
    return console_spans(out.decode())


async def test_fast_paths_are_traced_once_by_their_own_spans(tmp_path: Path) -> None:
    """negotiate and the webhook are root server spans (the hub method a child of the
    webhook's), with no FastAPI request span around them; /healthz keeps FastAPI's."""
    spans = await traced_backend_spans(tmp_path)
    names = [span["name"] for span in spans]
    (negotiate,) = [span for span in spans if span["name"] == "SignalR negotiate"]
    (webhook,) = [span for span in spans if span["name"] == "SignalR webhook messages"]
    (method,) = [span for span in spans if span["name"] == "chat.echo"]
    for root in (negotiate, webhook):
        assert root["kind"] == "SpanKind.SERVER", root
        assert root["parent_id"] is None, root
        assert root["attributes"]["http.response.status_code"] == 200
    assert method["parent_id"] == webhook["context"]["span_id"]
    assert method["context"]["trace_id"] == webhook["context"]["trace_id"]
    fastapi_paths = [
        span["attributes"].get("url.path")
        for span in spans
        if "http.request.method" in span["attributes"]
    ]
    assert "/api/negotiate" not in fastapi_paths and WEBHOOK not in fastapi_paths, names
    if fastapi_options(lambda scope: False):  # FastAPI traces requests itself
        assert "/healthz" in fastapi_paths, names
