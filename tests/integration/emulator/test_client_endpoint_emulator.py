"""The client endpoint: negotiate, auth, CORS, transports' edge cases, timeouts, slow readers."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from emulator.http import read_body
from signalr_protocol.codec import JSON_CODEC
from signalr_protocol.messages import CompletionMessage, InvocationMessage
from signalr_protocol.tokens import mint_token
from tests.support.emulator import RunningEmulator, running_emulator
from tests.support.emulator_kit import RS, Rest, eventually, raw_client
from tests.support.servers import serve_asgi

pytestmark = pytest.mark.anyio


async def negotiate(
    emu: RunningEmulator, hub: str, query: str = "", **headers: str
) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(f"{emu.base_url}/client/negotiate?hub={hub}{query}", headers=headers)


async def test_negotiate_versions(emu: RunningEmulator, hub: str) -> None:
    """Version 1 gets a connectionToken, version 0 only a connectionId; all transports offered."""
    bearer = f"Bearer {emu.client_token(hub)}"
    v1 = (await negotiate(emu, hub, "&negotiateVersion=1", Authorization=bearer)).json()
    assert v1["negotiateVersion"] == 1 and v1["connectionToken"] != v1["connectionId"]
    assert [t["transport"] for t in v1["availableTransports"]] == [
        "WebSockets",
        "ServerSentEvents",
        "LongPolling",
    ]
    assert "useStatefulReconnect" not in v1
    v0 = (await negotiate(emu, hub, Authorization=bearer)).json()
    assert v0["negotiateVersion"] == 0 and "connectionToken" not in v0
    v9 = (await negotiate(emu, hub, "&negotiateVersion=9", Authorization=bearer)).json()
    assert v9["negotiateVersion"] == 1


@pytest.mark.parametrize(
    ("token_kind", "needle"),
    [
        ("none", "No access token"),
        ("expired", "expired"),
        ("wrong-key", "signature"),
        ("other-hub", "audience"),
        ("other-path", "audience"),
    ],
)
async def test_negotiate_401_says_what_is_wrong(
    emu: RunningEmulator, hub: str, token_kind: str, needle: str
) -> None:
    """A refused token gets 401 with a body naming the problem."""
    key = emu.settings.access_key
    tokens = {
        "none": None,
        "expired": mint_token(key, f"http://127.0.0.1/client/?hub={hub}", now=1_000_000),
        "wrong-key": emu.client_token(hub, key="not-the-key-" + "x" * 32),
        "other-hub": emu.client_token("otherhub"),
        "other-path": mint_token(key, f"http://127.0.0.1/api/hubs/{hub}"),
    }
    token = tokens[token_kind]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await negotiate(emu, hub, **headers)
    assert response.status_code == 401
    assert needle in response.text
    assert (token or "-") not in response.text


async def test_bad_requests(emu: RunningEmulator, hub: str) -> None:
    """Missing hub, bad hub name, GET negotiate and unknown ids are refused with clear codes."""
    bearer = {"Authorization": f"Bearer {emu.client_token(hub)}"}
    async with httpx.AsyncClient() as http:
        assert (
            await http.post(f"{emu.base_url}/client/negotiate", headers=bearer)
        ).status_code == 400
        response = await http.post(f"{emu.base_url}/client/negotiate?hub=1bad", headers=bearer)
        assert response.status_code == 400 and "hub name" in response.text
        response = await http.get(f"{emu.base_url}/client/negotiate?hub={hub}", headers=bearer)
        assert response.status_code == 405
        response = await http.get(f"{emu.base_url}/client/?hub={hub}&id=nope", headers=bearer)
        assert response.status_code == 404
        assert response.headers["x-ms-error-code"] == "Error.NotFound"
        response = await http.post(f"{emu.base_url}/client/?hub={hub}", headers=bearer)
        assert response.status_code == 400
        response = await http.get(f"{emu.base_url}/nowhere")
        assert response.status_code == 404
        assert response.headers["x-ms-error-code"] == "Error.NotFound"
    url = emu.client_url(hub).replace("http://", "ws://")
    with pytest.raises(InvalidStatus) as info:
        async with connect(url + "&id=nope", additional_headers=bearer):
            pass
    assert info.value.response.status_code == 404
    assert info.value.response.headers["x-ms-error-code"] == "Error.NotFound"
    with pytest.raises(InvalidStatus) as info:
        async with connect(url):
            pass
    assert info.value.response.status_code == 401


async def test_secondary_key_is_accepted() -> None:
    """Tokens signed with the secondary key pass; any other key fails."""
    async with running_emulator(
        secondary_access_key="second-key-0123456789-0123456789-0123456789"
    ) as emu:
        good = (
            f"Bearer {emu.client_token('chat', key='second-key-0123456789-0123456789-0123456789')}"
        )
        bad = f"Bearer {emu.client_token('chat', key='third-key-0123456789-0123456789-0123456789')}"
        assert (await negotiate(emu, "chat", Authorization=good)).status_code == 200
        assert (await negotiate(emu, "chat", Authorization=bad)).status_code == 401


async def test_cors_echoes_origin_with_credentials(emu: RunningEmulator, hub: str) -> None:
    """Answers echo the Origin and allow credentials; preflights allow the SignalR headers."""
    origin = "http://page.example:3000"
    async with httpx.AsyncClient() as http:
        response = await http.options(
            f"{emu.base_url}/client/negotiate?hub={hub}&negotiateVersion=1",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": (
                    "authorization,x-requested-with,x-signalr-user-agent"
                ),
            },
        )
        assert response.status_code == 204
        assert response.headers["access-control-allow-origin"] == origin
        assert response.headers["access-control-allow-credentials"] == "true"
        allowed = response.headers["access-control-allow-headers"].lower()
        for header in ("authorization", "x-requested-with", "x-signalr-user-agent"):
            assert header in allowed
        response = await http.post(
            f"{emu.base_url}/client/negotiate?hub={hub}",
            headers={"Origin": origin, "Authorization": f"Bearer {emu.client_token(hub)}"},
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == origin
        assert response.headers["access-control-allow-credentials"] == "true"
        # Errors too, so that a page can read why (e.g. a 401's text).
        response = await http.post(
            f"{emu.base_url}/client/negotiate?hub={hub}", headers={"Origin": origin}
        )
        assert response.status_code == 401
        assert response.headers["access-control-allow-origin"] == origin
        assert response.headers["access-control-allow-credentials"] == "true"


async def test_query_token_counts_only_for_websockets_and_sse(
    emu: RunningEmulator, hub: str
) -> None:
    """access_token in the query is accepted on WebSocket and SSE requests only; a header wins."""
    token = emu.client_token(hub)
    base = f"{emu.base_url}/client"
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{base}/negotiate?hub={hub}&negotiateVersion=1&access_token={token}"
        )
        assert response.status_code == 401 and token not in response.text
        body = (
            await negotiate(emu, hub, "&negotiateVersion=1", Authorization=f"Bearer {token}")
        ).json()
        with_query = f"{base}/?hub={hub}&id={body['connectionToken']}&access_token={token}"
        assert (await http.get(with_query)).status_code == 401  # a long poll
        assert (await http.post(with_query, content=b"{}\x1e")).status_code == 401
        async with http.stream("GET", with_query, headers={"Accept": "text/event-stream"}) as sse:
            assert sse.status_code == 200
            assert sse.headers["content-type"].startswith("text/event-stream")
    url = emu.client_url(hub).replace("http://", "ws://") + f"&access_token={token}"
    async with connect(url) as ws:
        await ws.send('{"protocol":"json","version":1}' + RS)
        assert str(await ws.recv()).startswith("{}")
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, additional_headers={"Authorization": "Bearer not.a.token"}):
            pass
    assert info.value.response.status_code == 401


async def test_websocket_without_id_creates_a_connection(
    emu: RunningEmulator, rest: Rest, hub: str
) -> None:
    """A WebSocket with no negotiate and no id (Python clients) gets a working connection."""
    async with raw_client(emu, hub, user_id="carol", negotiate=False) as client:
        await rest.send(f"/api/hubs/{hub}/users/carol/:send", "hello", "x")
        message = await client.receive()
        assert message == {"type": 1, "target": "hello", "arguments": ["x"]}


async def test_second_websocket_on_same_id_is_refused(emu: RunningEmulator, hub: str) -> None:
    """A connection token serves one transport only (409 for a second WebSocket)."""
    token = emu.client_token(hub)
    body = (
        await negotiate(emu, hub, "&negotiateVersion=1", Authorization=f"Bearer {token}")
    ).json()
    url = emu.client_url(hub).replace("http://", "ws://") + f"&id={body['connectionToken']}"
    headers = {"Authorization": f"Bearer {token}"}
    async with connect(url, additional_headers=headers):
        with pytest.raises(InvalidStatus) as info:
            async with connect(url, additional_headers=headers):
                pass
        assert info.value.response.status_code == 409


async def test_a_connection_keeps_the_transport_it_started_with(
    emu: RunningEmulator, hub: str
) -> None:
    """After a first long poll, SSE and WebSocket requests get 409; SSE refuses polls and DELETE."""
    token = emu.client_token(hub)
    bearer = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient() as http:

        async def new_id() -> str:
            url = f"{emu.base_url}/client/negotiate?hub={hub}&negotiateVersion=1"
            return str((await http.post(url, headers=bearer)).json()["connectionToken"])

        polled = f"{emu.client_url(hub)}&id={await new_id()}"
        assert (await http.get(polled, headers=bearer)).status_code == 200
        sse = await http.get(polled, headers={**bearer, "Accept": "text/event-stream"})
        assert sse.status_code == 409 and "already has a transport" in sse.text
        with pytest.raises(InvalidStatus) as info:
            async with connect(polled.replace("http://", "ws://"), additional_headers=bearer):
                pass
        assert info.value.response.status_code == 409

        streamed = f"{emu.client_url(hub)}&id={await new_id()}"
        sse_headers = {**bearer, "Accept": "text/event-stream"}
        async with http.stream("GET", streamed, headers=sse_headers) as stream:
            assert stream.status_code == 200
            poll = await http.get(streamed, headers=bearer)
            assert poll.status_code == 400 and "ServerSentEvents" in poll.text
            assert (await http.delete(streamed, headers=bearer)).status_code == 400


@pytest.mark.parametrize(
    ("handshake", "error"),
    [
        ('{"protocol":"xml","version":1}', "xml"),
        ('{"protocol":"json","version":99}', "version"),
        ('{"nope":1}', ""),
    ],
)
async def test_bad_handshake_gets_error_and_close(
    emu: RunningEmulator, hub: str, handshake: str, error: str
) -> None:
    """An invalid handshake is answered with {"error": ...} and the connection is closed."""
    url = emu.client_url(hub).replace("http://", "ws://")
    headers = {"Authorization": f"Bearer {emu.client_token(hub)}"}
    async with connect(url, additional_headers=headers) as ws:
        await ws.send(handshake + RS)
        reply = await ws.recv()
        text = reply if isinstance(reply, str) else reply.decode()
        answer = json.loads(text.split(RS)[0])
        assert error in answer["error"]
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)


async def test_keep_alive_and_client_timeout() -> None:
    """A silent client receives pings, then is closed with a timeout Close message."""
    async with running_emulator(keep_alive_interval=0.2, client_timeout=0.8) as emu:
        async with raw_client(emu, "chat") as client:
            assert (await asyncio.wait_for(client.receive(skip_pings=False), 2))["type"] == 6
            while (message := await asyncio.wait_for(client.receive(), 3))["type"] != 7:
                pass
            assert "timeout" in message["error"].lower()


async def test_handshake_timeout_closes_connection() -> None:
    """A client that never sends its handshake is disconnected."""
    async with running_emulator(handshake_timeout=0.3) as emu:
        url = emu.client_url("chat").replace("http://", "ws://")
        headers = {"Authorization": f"Bearer {emu.client_token('chat')}"}
        async with connect(url, additional_headers=headers) as ws:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 3)


async def test_slow_receiver_is_closed_without_stalling_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A client that stops reading is closed once its buffer is full; a reader gets everything."""
    caplog.set_level(logging.WARNING, logger="emulator.connection")
    async with running_emulator(max_buffered_bytes=256 * 1024) as emu:
        rest = Rest(emu, httpx.AsyncClient())
        async with rest.client, raw_client(emu, "chat", user_id="fast") as fast:
            # A small, fixed receive buffer (no autotuning up to tcp_rmem's maximum, which
            # can be tens of MB) so the 9 MB below surely overflow the slow client.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
            sock.setblocking(False)
            try:
                await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", emu.port))
            except OSError:
                sock.close()
                raise
            async with raw_client(
                emu, "chat", user_id="slow", max_queue=1, close_timeout=0.2, sock=sock
            ) as slow:
                blob = "x" * 60_000
                count = 150  # 9 MB: beyond loopback socket buffers and the 256 KiB limit
                received = 0

                async def read_all() -> None:
                    nonlocal received
                    while received < count:
                        message = await fast.receive()
                        if message.get("target") == "blob":
                            received += 1

                reader = asyncio.create_task(read_all())
                for _ in range(count):
                    await rest.send("/api/hubs/chat/:send", "blob", blob)
                await asyncio.wait_for(reader, 20)
                assert received == count
                assert slow.connection_id is not None
                assert any(
                    slow.connection_id in r.getMessage() and "fell" in r.getMessage()
                    for r in caplog.records
                )
                hub = emu.app.state.registry.hub("chat")

                async def dropped() -> bool:  # after 2 s of grace to flush
                    return hub.connection(slow.connection_id or "") is None

                await eventually(dropped)


async def test_token_expiry_does_not_end_an_open_connection(
    emu: RunningEmulator, rest: Rest, hub: str
) -> None:
    """A token valid at connect time keeps the connection after it expires (checked per request)."""
    expires = time.time() + 2
    token = mint_token(
        emu.settings.access_key,
        f"http://127.0.0.1/client/?hub={hub}",
        lifetime=timedelta(hours=1),
        now=expires - 3600,
    )
    url = emu.client_url(hub).replace("http://", "ws://")
    async with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        await ws.send('{"protocol":"json","version":1}' + RS)
        assert str(await ws.recv()).startswith("{}")
        await asyncio.sleep(max(0.0, expires - time.time() + 0.2))
        assert (await negotiate(emu, hub, Authorization=f"Bearer {token}")).status_code == 401
        await rest.send(f"/api/hubs/{hub}/:send", "after", "expiry")
        messages: list[dict[str, Any]] = []
        while not messages:
            frame = await asyncio.wait_for(ws.recv(), 5)
            text = frame if isinstance(frame, str) else frame.decode()
            messages = [m for p in text.split(RS) if p and (m := json.loads(p))["type"] != 6]
        assert messages[0]["target"] == "after"


async def test_client_timeout_is_paused_while_the_upstream_works() -> None:
    """A connection waiting on a slow upstream is not closed for the client's silence."""

    async def slow_upstream(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive, 2**31)
        answer = b""
        if dict(scope["headers"]).get(b"x-asrs-category") == b"messages":
            await asyncio.sleep(1.2)  # three client timeouts
            invocation = JSON_CODEC.decode_payload(body)
            assert isinstance(invocation, InvocationMessage) and invocation.invocation_id
            answer = JSON_CODEC.encode(
                CompletionMessage.with_result(invocation.invocation_id, "late")
            )
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": answer})

    async with serve_asgi(slow_upstream, lifespan="off") as upstream:
        async with running_emulator(
            upstream_url=f"{upstream}/runtime/webhooks/signalr",
            keep_alive_interval=0.2,
            client_timeout=0.4,
        ) as emu:
            async with raw_client(emu, "chat") as client:
                await client.send(
                    {"type": 1, "invocationId": "1", "target": "slow", "arguments": []}
                )
                message = await asyncio.wait_for(client.receive(), 10)
                assert message == {"type": 3, "invocationId": "1", "result": "late"}


async def test_a_target_without_utf8_form_gets_an_error_completion_before_upstream() -> None:
    """A JSON target holding a lone surrogate (no header or URL can carry it) gets an error
    completion naming the lone surrogate, never reaches the upstream, and the connection
    stays open: ASP.NET Core answers an invocation it can't bind the same way
    (dotnet/aspnetcore src/SignalR/server/Core/src/Internal/DefaultHubDispatcher.cs,
    ProcessInvocationBindingFailure)."""
    seen: list[tuple[bytes, bytes]] = []

    async def upstream_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await read_body(receive, 2**20)
        headers = dict(scope["headers"])
        if headers.get(b"x-asrs-category") == b"messages":
            seen.append((scope["raw_path"], headers[b"x-asrs-event"]))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with serve_asgi(upstream_app, lifespan="off") as upstream:
        async with running_emulator(upstream_url=f"{upstream}/hook/{{event}}") as emu:
            async with raw_client(emu, "chat") as client:
                frame = '{"type":1,"invocationId":"1","target":"a\\ud800b","arguments":[]}'
                await client.ws.send(frame + RS)
                message = await asyncio.wait_for(client.receive(), 10)
                assert message["type"] == 3 and message["invocationId"] == "1"
                assert message["error"].startswith("Invocation 'a\\ud800b' refused: ")
                assert "lone UTF-16 surrogate" in message["error"]
                frame = '{"type":1,"invocationId":"2","target":"ok","arguments":[]}'
                await client.ws.send(frame + RS)
                message = await asyncio.wait_for(client.receive(), 10)
                assert message == {"type": 3, "invocationId": "2"}
    assert [event for _, event in seen] == [b"ok"]
