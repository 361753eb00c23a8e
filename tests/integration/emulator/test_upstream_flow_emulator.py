"""Client events travel upstream through the emulator's connection loop, in order.

A small real upstream server (raw ASGI) records what it receives and answers invocations;
the official JS client invokes through the emulator and gets the upstream's answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from emulator.http import read_body
from signalr_protocol.codec import get_codec
from signalr_protocol.messages import CompletionMessage, InvocationMessage
from tests.support.emulator import running_emulator
from tests.support.node import NodeClientError, NodeProcess
from tests.support.servers import serve_asgi

pytestmark = [pytest.mark.anyio, pytest.mark.node]


@dataclass
class Upstream:
    """Records (event, headers, body) per request; answers echo / fail / slow."""

    events: list[tuple[str, dict[str, str], Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body = await read_body(receive, 2**31)
        event = headers.get("x-asrs-event", "")
        status, answer = 200, b""
        if headers.get("x-asrs-category") == "messages":
            codec = get_codec("messagepack" if "msgpack" in headers["content-type"] else "json")
            invocation = codec.decode_payload(body)
            assert isinstance(invocation, InvocationMessage)
            self.events.append((event, headers, list(invocation.arguments)))
            if event == "slow":
                await asyncio.sleep(0.2)
            if event == "fail":
                status = 500
            elif invocation.invocation_id is not None:
                answer = codec.encode(
                    CompletionMessage.with_result(invocation.invocation_id, invocation.arguments[0])
                )
        else:
            self.events.append((event, headers, json.loads(body)))
        self.changed.set()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": answer})

    async def wait_for(self, event: str) -> tuple[str, dict[str, str], Any]:
        async with asyncio.timeout(5):
            while True:
                for item in self.events:
                    if item[0] == event:
                        return item
                self.changed.clear()
                await self.changed.wait()


@contextlib.asynccontextmanager
async def upstream_server() -> AsyncIterator[tuple[Upstream, str]]:
    upstream = Upstream()
    async with serve_asgi(upstream, lifespan="off") as base_url:
        yield upstream, f"{base_url}/runtime/webhooks/signalr"


@pytest.mark.parametrize(
    ("transport", "protocol"), [("WebSockets", "json"), ("LongPolling", "messagepack")]
)
async def test_invocations_go_upstream_in_order(
    node: NodeProcess, transport: str, protocol: str
) -> None:
    """connected, invocations (in order, answers relayed) and disconnected reach upstream."""
    async with upstream_server() as (upstream, url), running_emulator(upstream_url=url) as emu:
        token = emu.client_token("chat", user_id="ursula", claims=[("role", "admin")])
        async with node.connect(
            emu.client_url("chat"), access_token=token, transport=transport, protocol=protocol
        ) as client:
            _, headers, body = await upstream.wait_for("connected")
            assert body == {"type": 10}
            assert headers["x-asrs-connection-id"] == client.connection_id
            assert headers["x-asrs-user-id"] == "ursula"
            assert headers["x-asrs-hub"] == "chat"
            assert "role" in headers.get("x-asrs-user-claims", "")

            await client.send("slow", "first")
            assert await client.invoke("echo", {"v": [1, 2]}) == {"v": [1, 2]}
            order = [e for e, _, _ in upstream.events if e in ("slow", "echo")]
            assert order == ["slow", "echo"]
            with pytest.raises(NodeClientError, match="status code 500"):
                await client.invoke("fail", 1)
            assert await client.invoke("echo", "still open") == "still open"
            assert not client.closed.is_set()
            connection_id = client.connection_id
        _, headers, body = await upstream.wait_for("disconnected")
        assert headers["x-asrs-connection-id"] == connection_id
        assert body["type"] == 11
