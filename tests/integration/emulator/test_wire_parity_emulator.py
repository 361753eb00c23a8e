"""The emulator's wire details that Microsoft's service and emulator share (issue 11).

``X-ASRS-Client-Query`` is the query of the transport request that starts a connection, and
every 401 carries ``WWW-Authenticate`` as ASP.NET Core's JwtBearer handler writes it. Real
emulator on a real port, a real recording upstream, the official JS client where a client
is involved.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import jwt
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from emulator.http import read_body
from signalr_protocol.codec import get_codec
from signalr_protocol.messages import CompletionMessage, InvocationMessage
from tests.support.emulator import RunningEmulator, running_emulator
from tests.support.emulator_kit import RS
from tests.support.node import NodeProcess
from tests.support.servers import serve_asgi

pytestmark = pytest.mark.anyio

# -- X-ASRS-Client-Query ---------------------------------------------------------------------


@dataclass
class Recorder:
    """A real upstream that records (event, headers) and answers invocations with arg 0."""

    events: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body = await read_body(receive, 2**20)
        answer = b""
        if headers.get("x-asrs-category") == "messages":
            codec = get_codec("messagepack" if "msgpack" in headers["content-type"] else "json")
            invocation = codec.decode_payload(body)
            assert isinstance(invocation, InvocationMessage)
            if invocation.invocation_id is not None:
                answer = codec.encode(
                    CompletionMessage.with_result(invocation.invocation_id, invocation.arguments[0])
                )
        self.events.append((headers.get("x-asrs-event", ""), headers))
        self.changed.set()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": answer})

    async def wait_for(self, event: str) -> dict[str, str]:
        async with asyncio.timeout(5):
            while True:
                for name, headers in self.events:
                    if name == event:
                        return headers
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def emulator_with_recorder() -> AsyncIterator[tuple[Recorder, RunningEmulator]]:
    recorder = Recorder()
    async with serve_asgi(recorder, lifespan="off") as base_url:
        url = f"{base_url}/runtime/webhooks/signalr"
        async with running_emulator(upstream_url=url) as emu:
            yield recorder, emu


def _client_query(headers: dict[str, str]) -> dict[str, list[str]]:
    query = headers["x-asrs-client-query"]
    assert query.startswith("?"), query
    return parse_qs(query[1:], keep_blank_values=True)


@pytest.mark.node
@pytest.mark.parametrize("transport", ["WebSockets", "ServerSentEvents", "LongPolling"])
async def test_the_webhook_sees_the_connect_requests_query(
    node: NodeProcess, transport: str
) -> None:
    """A parameter on the client's connect URL and the transport's ``id`` reach the webhook in
    X-ASRS-Client-Query, for connected and for invocations, without ``access_token``; as
    Azure/azure-signalr src/Microsoft.Azure.SignalR.Emulator/HubEmulator/
    HttpUpstreamPropertiesFeature.cs (the connection's HttpContext query, sent by
    Upstreams/HttpUpstreamTrigger.cs)."""
    async with emulator_with_recorder() as (recorder, emu):
        token = emu.client_token("chat", user_id="rita")
        async with node.connect(
            emu.client_url("chat") + "&room=5", access_token=token, transport=transport
        ) as client:
            connected = _client_query(await recorder.wait_for("connected"))
            assert await client.invoke("echo", "hi") == "hi"
            invoked = _client_query(await recorder.wait_for("echo"))
        for query in (connected, invoked):
            assert query["room"] == ["5"]
            assert query["hub"] == ["chat"]
            assert query["id"][0], query
            assert "access_token" not in query
        assert connected == invoked


async def test_the_client_query_is_the_transport_requests_not_negotiates() -> None:
    """A parameter only on negotiate does not reach the webhook; one only on the WebSocket
    request does (Azure/azure-signalr
    src/Microsoft.Azure.SignalR.Emulator/HubEmulator/HttpUpstreamPropertiesFeature.cs)."""
    async with emulator_with_recorder() as (recorder, emu), httpx.AsyncClient() as http:
        token = emu.client_token("chat")
        response = await http.post(
            f"{emu.base_url}/client/negotiate?hub=chat&negotiateVersion=1&only=negotiate",
            headers={"Authorization": f"Bearer {token}"},
        )
        response.raise_for_status()
        connection_token = response.json()["connectionToken"]
        url = (
            f"{emu.client_url('chat').replace('http://', 'ws://')}"
            f"&id={connection_token}&room=7&access_token={token}"
        )
        async with connect(url) as ws:
            await ws.send('{"protocol":"json","version":1}' + RS)
            await ws.recv()
            query = _client_query(await recorder.wait_for("connected"))
        assert query == {"hub": ["chat"], "id": [connection_token], "room": ["7"]}


# -- WWW-Authenticate ------------------------------------------------------------------------

# dotnet/aspnetcore src/Security/Authentication/JwtBearer/src/JwtBearerHandler.cs:
# HandleChallengeAsync (Options.Challenge "Bearer", then error / error_description) and
# CreateErrorDescription (the wording below).
NO_TOKEN = "Bearer"
MALFORMED = 'Bearer error="invalid_token"'


def _invalid(description: str) -> str:
    return f'Bearer error="invalid_token", error_description="{description}"'


def _token(emu: RunningEmulator, audience: str, *, key: str | None = None, **claims: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"aud": audience, "iat": now, "nbf": now, "exp": now + 3600}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, (key or emu.settings.access_key).encode(), algorithm="HS256")


def _client_tokens(emu: RunningEmulator, hub: str) -> list[tuple[str | None, str]]:
    audience = f"http://127.0.0.1/client/?hub={hub}"
    now = int(time.time())
    return [
        (None, NO_TOKEN),
        ("not-a-jwt", MALFORMED),
        (_token(emu, audience, exp=now - 60), _invalid("The token is expired")),
        (_token(emu, audience, nbf=now + 600), _invalid("The token is not valid yet")),
        (_token(emu, audience, exp=None), _invalid("The token has no expiration")),
        (_token(emu, audience, key="another-key-" * 4), _invalid("The signature is invalid")),
        (_token(emu, "http://127.0.0.1/client/?hub=other"), _invalid("The audience is invalid")),
    ]


def _auth(token: str | None) -> dict[str, str]:
    return {} if token is None else {"Authorization": f"Bearer {token}"}


async def test_client_endpoint_401s_carry_the_jwtbearer_challenge(
    emu: RunningEmulator, hub: str
) -> None:
    """Every kind of refused token on negotiate answers 401 with JwtBearer's WWW-Authenticate
    (dotnet/aspnetcore src/Security/Authentication/JwtBearer/src/JwtBearerHandler.cs) and the
    body and error code it had before."""
    async with httpx.AsyncClient() as http:
        for token, challenge in _client_tokens(emu, hub):
            response = await http.post(
                f"{emu.base_url}/client/negotiate?hub={hub}&negotiateVersion=1",
                headers=_auth(token),
            )
            assert response.status_code == 401, response.text
            assert response.headers["www-authenticate"] == challenge, token
            assert response.headers["x-ms-error-code"] == "Error.Unauthorized"
            assert "access token" in response.text


async def test_transport_401s_carry_the_challenge(emu: RunningEmulator, hub: str) -> None:
    """A WebSocket upgrade and a Server-Sent Events GET with a bad token answer 401 with the
    challenge (dotnet/aspnetcore src/Security/Authentication/JwtBearer/src/JwtBearerHandler.cs)."""
    expired = _token(emu, f"http://127.0.0.1/client/?hub={hub}", exp=int(time.time()) - 60)
    ws_url = emu.client_url(hub).replace("http://", "ws://")
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"{ws_url}&access_token={expired}"):
            pass
    assert refused.value.response.status_code == 401
    assert refused.value.response.headers["www-authenticate"] == _invalid("The token is expired")
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url):
            pass
    assert refused.value.response.headers["www-authenticate"] == NO_TOKEN
    async with httpx.AsyncClient() as http:
        response = await http.get(
            f"{emu.client_url(hub)}&id=x&access_token={expired}",
            headers={"Accept": "text/event-stream"},
        )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == _invalid("The token is expired")


async def test_rest_401s_carry_the_challenge(emu: RunningEmulator, hub: str) -> None:
    """REST calls with a missing, expired, forged or misaddressed token answer 401 with the
    challenge and the ErrorDetail body, HEAD too (dotnet/aspnetcore
    src/Security/Authentication/JwtBearer/src/JwtBearerHandler.cs)."""
    path = f"/api/v1/hubs/{hub}"
    audience = f"http://127.0.0.1{path}"
    now = int(time.time())
    cases = [
        (None, NO_TOKEN),
        ("not-a-jwt", MALFORMED),
        (_token(emu, audience, exp=now - 60), _invalid("The token is expired")),
        (_token(emu, audience, key="another-key-" * 4), _invalid("The signature is invalid")),
        (_token(emu, "http://127.0.0.1/api/v1/hubs/other"), _invalid("The audience is invalid")),
    ]
    async with httpx.AsyncClient() as http:
        for token, challenge in cases:
            response = await http.post(
                emu.base_url + path, headers=_auth(token), json={"target": "t", "arguments": []}
            )
            assert response.status_code == 401, response.text
            assert response.headers["www-authenticate"] == challenge
            assert response.json()["code"] == "Error.Unauthorized"
        response = await http.head(f"{emu.base_url}/api/v1/hubs/{hub}/users/u")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == NO_TOKEN
        response = await http.get(f"{emu.base_url}/api/v1/auth/accessKey")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == NO_TOKEN


async def test_keyless_refusal_of_an_access_key_token_names_the_missing_key() -> None:
    """With local auth disabled, an access-key token is refused as JwtBearer refuses a token
    whose signing key it does not know (dotnet/aspnetcore
    src/Security/Authentication/JwtBearer/src/JwtBearerHandler.cs, "The signature key was not
    found"), on the client endpoint and the REST API."""
    async with running_emulator(keyless=True) as emu, httpx.AsyncClient() as http:
        response = await http.post(
            f"{emu.base_url}/client/negotiate?hub=chat",
            headers=_auth(emu.client_token("chat")),
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == _invalid("The signature key was not found")
        path = "/api/v1/hubs/chat"
        response = await http.post(
            emu.base_url + path, headers=emu.rest_headers(path), json={"target": "t"}
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == _invalid("The signature key was not found")


async def test_a_browser_can_read_the_challenge(emu: RunningEmulator, hub: str) -> None:
    """CORS answers expose WWW-Authenticate (and x-ms-error-code) to the page's script."""
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{emu.base_url}/client/negotiate?hub={hub}",
            headers={"Origin": "http://app.example"},
        )
    assert response.status_code == 401
    exposed = {h.strip() for h in response.headers["access-control-expose-headers"].split(",")}
    assert {"www-authenticate", "x-ms-error-code"} <= exposed
    assert response.headers["www-authenticate"] == NO_TOKEN
