"""The emulator's ``GET /metrics`` by value after real traffic (official JS clients over the
three transports, REST sends and closes, refused tokens, a failing upstream), and the
settings that turn the metrics and the trace page off.

The close categories are the service's ``ConnectionCloseCategory`` values (MicrosoftDocs/
azure-docs ``articles/azure-signalr/monitor-signalr-reference.md``); one message is billed
per started 2 KB outbound (``articles/azure-signalr/signalr-concept-messages-and-connections.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import websockets
from prometheus_client.parser import text_string_to_metric_families

from tests.support.emulator import RunningEmulator, running_emulator
from tests.support.node import NODE, NodeClientError, NodeProcess, node_process
from tests.support.outbound_kit import Reply, recording_server

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.node,
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
]

Key = tuple[str, tuple[tuple[str, str], ...]]


@pytest.fixture
def anyio_backend() -> str:
    """asyncio only: uvicorn and the Node bridge run on it."""
    return "asyncio"


@pytest.fixture
async def node() -> AsyncIterator[NodeProcess]:
    """One Node process hosting the test's JS clients."""
    async with node_process() as process:
        yield process


async def metrics(emu: RunningEmulator) -> dict[Key, float]:
    """``GET /metrics`` of the emulator, as ``{(sample, sorted labels): value}``."""
    async with httpx.AsyncClient() as client:
        response = await client.get(emu.base_url + "/metrics")
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(values: dict[Key, float], name: str, **labels: str) -> float:
    """One sample's value (0 when the labelled child was never created)."""
    return values.get((name, tuple(sorted(labels.items()))), 0.0)


async def eventually(check: Callable[[], Any], within: float = 10) -> None:
    """Poll an async ``check`` until it stops raising AssertionError."""
    async with asyncio.timeout(within):
        while True:
            try:
                await check()
                return
            except AssertionError:
                await asyncio.sleep(0.05)


async def rest(emu: RunningEmulator, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """A signed REST call to the emulator."""
    async with httpx.AsyncClient() as client:
        return await client.request(
            method, emu.base_url + path, headers=emu.rest_headers(path), **kwargs
        )


async def test_connections_messages_and_closes_are_counted(node: NodeProcess) -> None:
    """Three clients (one per transport) show in the connection gauge; a 3,000-byte REST
    broadcast counts three outbound messages and six billed ones; a REST close counts
    ``ClosedByAppServer``, a client's stop ``Normal``, a bad token ``Unauthorized``."""
    async with running_emulator() as emu:
        url = emu.client_url("chat")
        transports = ["WebSockets", "ServerSentEvents", "LongPolling"]
        async with (
            node.connect(
                url, access_token=emu.client_token("chat", user_id="a"), transport=transports[0]
            ) as ws,
            node.connect(
                url, access_token=emu.client_token("chat", user_id="b"), transport=transports[1]
            ) as sse,
            node.connect(
                url, access_token=emu.client_token("chat", user_id="c"), transport=transports[2]
            ) as lp,
        ):
            before = await metrics(emu)
            for transport in transports:
                assert value(before, "signalr_connections", hub="chat", transport=transport) == 1
                assert value(before, "signalr_connections_opened_total", transport=transport) == 1

            text = "x" * 3000
            sent = await rest(
                emu,
                "POST",
                "/api/hubs/chat/:send",
                json={"target": "newMessage", "arguments": [text]},
            )
            assert sent.status_code == 202
            for client in (ws, sse, lp):
                assert await client.next_message("newMessage") == [text]
            after = await metrics(emu)
            out_before = value(before, "signalr_messages_total", direction="outbound")
            assert value(after, "signalr_messages_total", direction="outbound") - out_before == 3
            billed = value(after, "signalr_billed_messages_total") - value(
                before, "signalr_billed_messages_total"
            )
            assert billed == 6, "3,000 bytes is two started 2 KB units, for each of 3"
            assert (
                value(after, "signalr_rest_requests_total", operation="send_all", status="202") == 1
            )

            closed = await rest(emu, "DELETE", f"/api/hubs/chat/connections/{ws.connection_id}")
            assert closed.status_code == 200

            async def closed_by_app_server() -> None:
                values = await metrics(emu)
                assert (
                    value(values, "signalr_connections_closed_total", reason="ClosedByAppServer")
                    == 1
                )
                assert value(values, "signalr_connections", hub="chat", transport="WebSockets") == 0

            await eventually(closed_by_app_server)
            await sse.stop()

            async def normal() -> None:
                values = await metrics(emu)
                assert value(values, "signalr_connections_closed_total", reason="Normal") == 1

            await eventually(normal)

        forged = emu.client_token("chat", user_id="mallory", key="not-the-key" * 4)
        with pytest.raises(NodeClientError):
            async with node.connect(url, access_token=forged):
                pass
        values = await metrics(emu)
        assert value(values, "signalr_connections_closed_total", reason="Unauthorized") >= 1
        assert value(values, "signalr_user_errors_total") >= 1


async def test_silent_client_is_closed_as_ping_timeout(node: NodeProcess) -> None:
    """A client that sends nothing within the client timeout counts as ``PingTimeout``."""
    async with running_emulator(client_timeout=0.5, keep_alive_interval=0.2) as emu:
        token = emu.client_token("chat", user_id="quiet")
        async with node.connect(emu.client_url("chat"), access_token=token, keep_alive=60):

            async def timed_out() -> None:
                values = await metrics(emu)
                assert value(values, "signalr_connections_closed_total", reason="PingTimeout") == 1
                assert value(values, "signalr_connections", hub="chat", transport="WebSockets") == 0

            await eventually(timed_out)


async def test_failing_upstream_is_counted_by_status(node: NodeProcess) -> None:
    """An upstream answering 500 counts ``signalr_upstream_requests_total{category, status}``
    for both the connect and the invocation."""
    async with recording_server() as sink:
        sink.responder = lambda recorded: Reply(500)
        async with running_emulator(upstream_url=sink.base_url + "/upstream") as emu:
            token = emu.client_token("chat", user_id="u")
            async with node.connect(emu.client_url("chat"), access_token=token) as client:
                with pytest.raises(NodeClientError, match="status code 500"):
                    await client.invoke("anything", 1)
                values = await metrics(emu)
                assert (
                    value(
                        values,
                        "signalr_upstream_requests_total",
                        category="connections",
                        status="500",
                    )
                    == 1
                )
                assert (
                    value(
                        values, "signalr_upstream_requests_total", category="messages", status="500"
                    )
                    == 1
                )
                assert value(values, "signalr_messages_total", direction="inbound") == 1


async def test_completions_and_client_invocations_are_outbound_messages(
    node: NodeProcess,
) -> None:
    """What the service sends a client is billed whatever its kind: the Completion answering
    an invocation and a REST ``:invoke``'s Invocation count as outbound messages (with
    their bytes), besides the upstream requests themselves."""
    async with recording_server() as sink:
        sink.responder = lambda recorded: Reply(204)  # an empty answer: a void Completion
        async with running_emulator(upstream_url=sink.base_url + "/upstream") as emu:
            token = emu.client_token("chat", user_id="u")
            async with node.connect(
                emu.client_url("chat"), access_token=token, results=("getAnswer",)
            ) as client:
                before = await metrics(emu)
                assert await client.invoke("anything", 1) is None
                after = await metrics(emu)
                upstream_request = 1
                completion = 1
                assert (
                    value(after, "signalr_messages_total", direction="outbound")
                    - value(before, "signalr_messages_total", direction="outbound")
                    == upstream_request + completion
                )
                invocation = sink.requests[-1].body  # the upstream request's body
                completion_bytes = len(b'{"type":3,"invocationId":"0"}\x1e')
                sent = value(after, "signalr_message_bytes_total", direction="outbound") - value(
                    before, "signalr_message_bytes_total", direction="outbound"
                )
                assert sent == len(invocation) + completion_bytes

                path = f"/api/hubs/chat/connections/{client.connection_id}/:invoke"
                answered = await rest(
                    emu, "POST", path, json={"target": "getAnswer", "arguments": [42]}
                )
                assert answered.status_code == 200, answered.text
                assert answered.json() == {"result": 42}
                last = await metrics(emu)
                assert (
                    value(last, "signalr_messages_total", direction="outbound")
                    - value(after, "signalr_messages_total", direction="outbound")
                    == 1
                )
                assert (
                    value(last, "signalr_billed_messages_total")
                    - value(after, "signalr_billed_messages_total")
                    == 1
                )


@pytest.mark.parametrize("handshake", [None, {"protocol": "nope", "version": 1}])
async def test_connection_without_a_valid_handshake_counts_once_as_handshake_error(
    handshake: dict[str, Any] | None,
) -> None:
    """A WebSocket that never sends its handshake (closed at the handshake timeout) and one
    that sends an unsupported protocol each count one ``HandshakeError`` close and one user
    error, and show as a ``connection.closed`` event with that reason."""
    async with running_emulator(handshake_timeout=0.3) as emu:
        token = emu.client_token("chat", user_id="h")
        url = emu.client_url("chat").replace("http://", "ws://") + f"&access_token={token}"
        async with websockets.connect(url) as ws:
            if handshake is not None:
                await ws.send(json.dumps(handshake) + "\x1e")
            async with asyncio.timeout(10):
                with contextlib.suppress(websockets.ConnectionClosed):
                    while True:
                        await ws.recv()

        async def counted() -> None:
            values = await metrics(emu)
            assert value(values, "signalr_connections_closed_total", reason="HandshakeError") == 1
            assert value(values, "signalr_user_errors_total") == 1

        await eventually(counted)
        await asyncio.sleep(0.3)  # nothing counted twice
        values = await metrics(emu)
        assert value(values, "signalr_connections_closed_total", reason="HandshakeError") == 1
        assert value(values, "signalr_connections_closed_total", reason="Normal") == 0
        closes = [e for e in emu.app.state.trace.history() if e["type"] == "connection.closed"]
        assert [e["reason"] for e in closes] == ["HandshakeError"]


@pytest.mark.parametrize(
    ("settings", "root", "metrics_status"),
    [
        ({}, "text/html", 200),
        ({"metrics_enabled": False}, "text/html", 404),
        ({"trace_enabled": False}, "text/plain", 200),
        ({"trace_enabled": False, "metrics_enabled": False}, "text/plain", 404),
    ],
)
async def test_settings_turn_the_page_and_metrics_off(
    settings: dict[str, bool], root: str, metrics_status: int
) -> None:
    """``EMULATOR_TRACE_ENABLED=false`` makes ``/`` a line of text and ``/trace/*`` 404;
    ``EMULATOR_METRICS_ENABLED=false`` makes ``/metrics`` 404."""
    async with running_emulator(**settings) as emu, httpx.AsyncClient() as client:
        page = await client.get(emu.base_url + "/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith(root)
        state = await client.get(emu.base_url + "/trace/state")
        assert state.status_code == (200 if settings.get("trace_enabled", True) else 404)
        assert (await client.get(emu.base_url + "/metrics")).status_code == metrics_status
