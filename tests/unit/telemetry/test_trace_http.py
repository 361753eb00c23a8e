"""The live trace's HTTP side on a real server: page, assets, state, SSE stream, metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from emulator.connection import ClientConnection
from emulator.lifecycle import Transport
from emulator.metrics import CONTENT_TYPE, EmulatorMetrics
from emulator.registry import Registry
from emulator.trace import TraceBus, handle_trace_request, hub_snapshot, is_trace_path
from signalr_protocol.codec import JSON_CODEC, MSGPACK_CODEC
from tests.support.servers import serve_asgi

pytestmark = pytest.mark.anyio


def _connect(
    registry: Registry, cid: str, user: str | None, transport: Transport, codec: Any
) -> None:
    conn = ClientConnection(connection_id=cid, token=f"t-{cid}", hub="chat", user_id=user)
    conn.attach(transport)
    conn.open(codec)
    registry.track(conn)
    registry.hub("chat").add(conn)


class Stack:
    def __init__(self, metrics_on: bool = True) -> None:
        self.bus = TraceBus(history=10)
        self.registry = Registry()
        self.metrics = EmulatorMetrics()
        self.metrics_on = metrics_on

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        if not is_trace_path(scope["path"]):
            await send({"type": "http.response.start", "status": 418, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        await handle_trace_request(
            scope,
            receive,
            send,
            bus=self.bus,
            snapshot=lambda: hub_snapshot(self.registry),
            metrics=self.metrics.render if self.metrics_on else None,
            metrics_content_type=CONTENT_TYPE,
        )


@pytest.fixture
async def stack() -> AsyncIterator[tuple[Stack, httpx.AsyncClient]]:
    app = Stack()
    async with serve_asgi(app, lifespan="off") as url, httpx.AsyncClient(base_url=url) as client:
        yield app, client


async def test_page_and_assets_are_served_from_the_package(
    stack: tuple[Stack, httpx.AsyncClient],
) -> None:
    """GET / is the page; it loads only its own script and style (no CDN)."""
    _, client = stack
    page = await client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text
    for asset, ctype in (("app.js", "text/javascript"), ("style.css", "text/css")):
        response = await client.get(f"/trace/static/{asset}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(ctype)
        assert f"/trace/static/{asset}" in page.text
        assert "https://" not in response.text
    for name in ("secret.txt", "%2E%2E%2Fhttp.py", "..%2Fhttp.py", "static"):
        assert (await client.get(f"/trace/static/{name}")).status_code == 404
    assert (await client.post("/")).status_code == 405


async def test_state_lists_hubs_connections_users_and_groups(
    stack: tuple[Stack, httpx.AsyncClient],
) -> None:
    """GET /trace/state: each live connection with user, transport, protocol and groups,
    group membership through a user included."""
    app, client = stack
    _connect(app.registry, "c1", "alice", Transport.WEB_SOCKETS, JSON_CODEC)
    _connect(app.registry, "c2", None, Transport.LONG_POLLING, MSGPACK_CODEC)
    hub = app.registry.hub("chat")
    hub.add_to_group("room", "c2")
    hub.add_user_to_group("vip", "alice")

    state = (await client.get("/trace/state")).json()
    assert state == {
        "hubs": [
            {
                "name": "chat",
                "connections": [
                    {
                        "id": "c1",
                        "user": "alice",
                        "transport": "WebSockets",
                        "protocol": "json",
                        "groups": ["vip"],
                    },
                    {
                        "id": "c2",
                        "user": None,
                        "transport": "LongPolling",
                        "protocol": "messagepack",
                        "groups": ["room"],
                    },
                ],
                "users": [{"id": "alice", "connections": ["c1"]}],
                "groups": [
                    {"name": "room", "connections": ["c2"]},
                    {"name": "vip", "connections": ["c1"]},
                ],
            }
        ]
    }


async def _events(lines: AsyncIterator[str]) -> AsyncIterator[tuple[str, str]]:
    kind, data = "message", ""
    async for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and data:
            yield kind, data
            kind, data = "message", ""


async def test_event_stream_sends_history_then_live_events_and_unsubscribes_on_close(
    stack: tuple[Stack, httpx.AsyncClient],
) -> None:
    """GET /trace/events: ``history`` first, then each event; closing the page turns the
    bus idle again."""
    app, client = stack
    app.bus.publish("connection.opened", hub="chat", connectionId="c0")
    async with client.stream("GET", "/trace/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = _events(response.aiter_lines())
        kind, data = await anext(events)
        assert kind == "history"
        assert [e["connectionId"] for e in json.loads(data)] == ["c0"]
        assert app.bus.subscribers == 1
        app.bus.publish("message.out", hub="chat", target="newMessage", size=42, receivers=3)
        app.bus.publish("connection.closed", hub="chat", connectionId="c0", reason="PingTimeout")
        received = [json.loads((await anext(events))[1]) for _ in range(2)]
        assert [(e["type"], e.get("reason")) for e in received] == [
            ("message.out", None),
            ("connection.closed", "PingTimeout"),
        ]
    for _ in range(200):
        if app.bus.subscribers == 0:
            break
        await asyncio.sleep(0.01)
    assert app.bus.subscribers == 0
    assert not app.bus.active


async def test_metrics_route_and_its_switch() -> None:
    """GET /metrics serves the Prometheus text; with metrics off it is a 404."""
    on = Stack()
    on.metrics.connection_opened("chat", "WebSockets")
    async with serve_asgi(on, lifespan="off") as url, httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/metrics")
        assert response.status_code == 200
        assert response.headers["content-type"] == CONTENT_TYPE
        assert 'signalr_connections{hub="chat",transport="WebSockets"} 1.0' in response.text
    off = Stack(metrics_on=False)
    async with serve_asgi(off, lifespan="off") as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/metrics")).status_code == 404
