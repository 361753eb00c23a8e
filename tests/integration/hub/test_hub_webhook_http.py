"""The webhook route over real HTTP: the backend served by uvicorn, called with httpx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgpack
import pytest
from fastapi import FastAPI

from app.main import create_app
from app.routers import upstream
from app.services.registry import HubRegistry
from app.services.webhook import Webhook
from app.settings import Settings
from tests.support.hubkit import invocation_body, signed_headers
from tests.support.hubs.probe_hub import Probe
from tests.support.servers import serve_asgi

pytestmark = pytest.mark.anyio

PATH = "/runtime/webhooks/signalr"
HUBS = ["app.samples.chat:ChatHub", "tests.support.hubs.probe_hub:Probe"]


def settings(**overrides: Any) -> Settings:
    return Settings(hubs=HUBS, webhook_max_body_bytes=4096, **overrides)


def backend(config: Settings, entrance: str) -> FastAPI:
    """The backend with the ASGI fast path ("fast") or only the FastAPI route ("route")."""
    if entrance == "route":
        app = FastAPI()
        app.include_router(upstream.router)
        app.state.webhook = Webhook.from_settings(config, HubRegistry.from_settings(config))
        return app
    app = create_app(config)
    if not any(getattr(m, "cls", None) is upstream.UpstreamFastPath for m in app.user_middleware):
        app.add_middleware(upstream.UpstreamFastPath)
    return app


@pytest.fixture(params=["fast", "route"])
async def client(request: pytest.FixtureRequest) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client on the backend served on a free port, through either entrance."""
    Probe.reset()
    async with serve_asgi(backend(settings(), request.param)) as base_url:
        async with httpx.AsyncClient(base_url=base_url) as http:
            yield http


async def post(client: httpx.AsyncClient, body: bytes, **header_args: Any) -> httpx.Response:
    header_args.setdefault("hub", "probe")
    return await client.post(PATH, content=body, headers=signed_headers(**header_args))


async def test_invoke_json_gets_framed_completion(client: httpx.AsyncClient) -> None:
    """An invocation with an id is answered 200 with a 0x1E-terminated JSON Completion."""
    response = await post(client, invocation_body("echo", [1, "two"], invocation_id="4"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content.endswith(b"\x1e")
    assert json.loads(response.content[:-1]) == {
        "type": 3,
        "invocationId": "4",
        "result": [1, "two"],
    }


async def test_invoke_msgpack_gets_framed_completion(client: httpx.AsyncClient) -> None:
    """A MessagePack invocation is answered with a VarInt-prefixed MessagePack Completion."""
    body = invocation_body("ECHO", {"k": 1}, invocation_id="5", msgpack=True)
    response = await post(client, body, event="ECHO", content_type="application/x-msgpack")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-msgpack"
    assert response.content[0] == len(response.content) - 1
    assert msgpack.unpackb(response.content[1:]) == [3, {}, "5", 3, {"k": 1}]


async def test_send_and_connection_events_answer_empty_200(client: httpx.AsyncClient) -> None:
    """Sends, connects and disconnects are answered 200 without a body."""
    response = await post(client, invocation_body("echo", 1, invocation_id=None))
    assert (response.status_code, response.content) == (200, b"")
    response = await post(client, b'{"type":10}', category="connections", event="connected")
    assert (response.status_code, response.content) == (200, b"")
    response = await post(
        client, b'{"Type":11,"Error":"lost"}', category="connections", event="disconnected"
    )
    assert (response.status_code, response.content) == (200, b"")
    assert [e[0] for e in Probe.events] == ["connected", "disconnected"]
    assert Probe.events[1][3] == "lost"


async def test_refused_connect_is_403(client: httpx.AsyncClient) -> None:
    """A connect refused by on_connected is answered 403."""
    response = await post(
        client,
        b'{"type":10}',
        category="connections",
        event="connected",
        X_ASRS_Client_Query="?refuse=1",
    )
    assert response.status_code == 403


async def test_admin_broadcast_by_non_admin_is_an_error_completion(
    client: httpx.AsyncClient,
) -> None:
    """The sample hub's adminBroadcast refuses a caller without the admin role."""
    response = await post(
        client, invocation_body("adminBroadcast", "hi"), hub="chat", event="adminBroadcast"
    )
    assert response.status_code == 200
    assert json.loads(response.content[:-1]) == {
        "type": 3,
        "invocationId": "1",
        "error": "Unauthorized: the role 'admin' is required.",
    }


@pytest.mark.parametrize(
    ("header_args", "body", "status"),
    [
        ({"content_type": "text/plain"}, b"{}", 415),
        ({"event": ""}, b"{}", 400),
        ({"hub": ""}, b"{}", 400),
        ({"event": "nothing"}, invocation_body("nothing"), 404),
        ({"hub": "unknown"}, invocation_body("echo", 1), 404),
        ({}, b"\x00\x01", 400),
    ],
)
async def test_error_statuses(
    client: httpx.AsyncClient, header_args: dict[str, str], body: bytes, status: int
) -> None:
    """Malformed requests get 415, 400 or 404 with a plain-text reason."""
    response = await post(client, body, **header_args)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text


async def test_bad_signature_is_401(client: httpx.AsyncClient) -> None:
    """A request signed with another key is refused with 401."""
    response = await post(client, invocation_body("echo", 1), keys=["not-the-key"])
    assert response.status_code == 401


async def test_body_over_the_cap_is_413(client: httpx.AsyncClient) -> None:
    """Bodies over the cap are refused with 413, with or without Content-Length."""
    big = invocation_body("echo", "x" * 5000)
    assert (await post(client, big)).status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"y" * 1000

    response = await client.post(PATH, content=chunks(), headers=signed_headers(hub="probe"))
    assert response.status_code == 413


@pytest.mark.parametrize("entrance", ["fast", "route"])
async def test_code_key_from_settings(entrance: str) -> None:
    """With SIGNALR_UPSTREAM_CODE set, ``?code=`` must carry it."""
    app = backend(settings(upstream_code="letmein"), entrance)
    async with serve_asgi(app) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        body = invocation_body("echo", 1)
        headers = signed_headers(hub="probe")
        assert (await http.post(PATH, content=body, headers=headers)).status_code == 401
        response = await http.post(PATH, params={"code": "letmein"}, content=body, headers=headers)
        assert response.status_code == 200
        response = await http.post(
            PATH, params={"x": "1", "code": "nope"}, content=body, headers=headers
        )
        assert response.status_code == 401
        # A repeated key: both entrances read the last value.
        twice: list[tuple[str, str | int | float | bool | None]] = [
            ("code", "nope"),
            ("code", "letmein"),
        ]
        response = await http.post(PATH, params=twice, content=body, headers=headers)
        assert response.status_code == 200


async def test_route_is_documented() -> None:
    """The webhook appears in the backend's OpenAPI document with its status codes."""
    async with (
        serve_asgi(backend(settings(), "fast")) as base_url,
        httpx.AsyncClient(base_url=base_url) as client,
    ):
        spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"][PATH]["post"]
    assert operation["summary"] == "Post Upstream"
    assert {"200", "400", "401", "403", "404", "413", "415"} <= set(operation["responses"])


async def test_other_methods_and_paths_pass_through(client: httpx.AsyncClient) -> None:
    """The fast path only takes POSTs to the webhook path; the rest reach FastAPI."""
    assert (await client.get(PATH)).status_code == 405
    assert (await client.post(PATH + "/x", content=b"{}")).status_code == 404
