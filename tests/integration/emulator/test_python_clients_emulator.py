"""pysignalr and signalrcore connect through a negotiate redirect and receive REST sends.

Both follow a ``{url, accessToken}`` negotiate answer by opening a WebSocket straight to the
emulator with ``Authorization: Bearer`` and no connection id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.emulator import RunningEmulator
from tests.support.emulator_kit import Rest
from tests.support.servers import serve_asgi

pytestmark = pytest.mark.anyio


@contextlib.asynccontextmanager
async def negotiate_server(emu: RunningEmulator, hub: str, user_id: str) -> AsyncIterator[str]:
    """A stand-in backend whose /api/negotiate redirects to the emulator."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = json.dumps(
            {"url": emu.client_url(hub), "accessToken": emu.client_token(hub, user_id=user_id)}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async with serve_asgi(app, lifespan="off") as base_url:
        yield f"{base_url}/api"


@contextlib.asynccontextmanager
async def running_pysignalr(client: Any) -> AsyncIterator[asyncio.Queue[list[Any]]]:
    """Run a pysignalr client until it is open; yield its ``newMessage`` arguments."""
    opened = asyncio.Event()
    received: asyncio.Queue[list[Any]] = asyncio.Queue()

    async def on_open() -> None:
        opened.set()

    async def on_message(args: list[Any]) -> None:
        received.put_nowait(args)

    client.on_open(on_open)
    client.on("newMessage", on_message)
    task = asyncio.create_task(client.run())
    try:
        await asyncio.wait_for(opened.wait(), 10)
        yield received
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_pysignalr_receives_rest_sends(emu: RunningEmulator, rest: Rest, hub: str) -> None:
    """pysignalr connects via the redirect and gets a message sent to its user."""
    from pysignalr.client import SignalRClient

    async with (
        negotiate_server(emu, hub, "py-user") as url,
        running_pysignalr(SignalRClient(url)) as received,
    ):
        await rest.send(f"/api/hubs/{hub}/users/py-user/:send", "newMessage", "hi", {"n": 1})
        assert await asyncio.wait_for(received.get(), 5) == ["hi", {"n": 1}]


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
async def test_signalrcore_receives_rest_sends(
    emu: RunningEmulator, rest: Rest, hub: str, protocol: str
) -> None:
    """signalrcore (threaded client) connects via the redirect and gets a group message."""
    from signalrcore.hub_connection_builder import HubConnectionBuilder
    from signalrcore.protocol.messagepack_protocol import MessagePackHubProtocol

    loop = asyncio.get_running_loop()
    opened = asyncio.Event()
    received: asyncio.Queue[Any] = asyncio.Queue()
    async with negotiate_server(emu, hub, "core-user") as url:
        builder = HubConnectionBuilder().with_url(url)
        if protocol == "messagepack":
            builder = builder.with_hub_protocol(MessagePackHubProtocol())
        connection = builder.build()
        connection.on_open(lambda: loop.call_soon_threadsafe(opened.set))
        connection.on(
            "newMessage", lambda args: loop.call_soon_threadsafe(received.put_nowait, args)
        )
        await asyncio.to_thread(connection.start)
        try:
            await asyncio.wait_for(opened.wait(), 10)
            base = f"/api/hubs/{hub}"
            response = await rest("PUT", f"{base}/users/core-user/groups/team")
            assert response.status_code == 200
            await rest.send(f"{base}/groups/team/:send", "newMessage", "to-team")
            assert await asyncio.wait_for(received.get(), 5) == ["to-team"]
        finally:
            # signalrcore's stop() joins its reader thread, which sits in a blocking recv()
            # until something arrives: wake it with messages instead of waiting for a ping.
            stopping = asyncio.ensure_future(asyncio.to_thread(connection.stop))
            while not stopping.done():
                await rest.send(f"/api/hubs/{hub}/users/core-user/:send", "wake")
                await asyncio.wait([stopping], timeout=0.1)
            await stopping


async def test_pysignalr_direct_negotiate_v0(emu: RunningEmulator, rest: Rest, hub: str) -> None:
    """Pointed at the emulator itself, pysignalr negotiates (v0 id) and connects with it."""
    from pysignalr.client import SignalRClient

    token = emu.client_token(hub, user_id="direct")
    client = SignalRClient(emu.client_url(hub), headers={"Authorization": f"Bearer {token}"})
    async with running_pysignalr(client) as received:
        await rest.send(f"/api/hubs/{hub}/users/direct/:send", "newMessage", "direct")
        assert await asyncio.wait_for(received.get(), 5) == ["direct"]
