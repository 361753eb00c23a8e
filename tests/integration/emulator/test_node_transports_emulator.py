"""The official JS client, over every transport and protocol, receives REST sends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support.emulator import RunningEmulator
from tests.support.emulator_kit import Rest, q
from tests.support.node import NodeProcess

pytestmark = [pytest.mark.anyio, pytest.mark.node]

COMBOS = [
    ("WebSockets", "json"),
    ("WebSockets", "messagepack"),
    ("ServerSentEvents", "json"),
    ("LongPolling", "json"),
    ("LongPolling", "messagepack"),
]


@pytest.mark.parametrize(("transport", "protocol"), COMBOS)
async def test_rest_sends_reach_the_right_clients(
    emu: RunningEmulator, node: NodeProcess, rest: Rest, hub: str, transport: str, protocol: str
) -> None:
    """Sends to all / user / connection / group, with exclusions, reach exactly their receivers."""
    url = emu.client_url(hub)
    opts: dict[str, Any] = {
        "transport": transport,
        "protocol": protocol,
        "targets": ("newMessage",),
    }
    async with (
        node.connect(url, access_token=emu.client_token(hub, user_id="alice"), **opts) as a,
        node.connect(url, access_token=emu.client_token(hub, user_id="bob"), **opts) as b,
    ):
        assert a.connection_id and b.connection_id
        base = f"/api/hubs/{hub}"
        await rest.send(f"{base}/:send", "newMessage", "all", {"n": 1}, [1.5, None, True])
        for client in (a, b):
            assert await client.next_message("newMessage") == ["all", {"n": 1}, [1.5, None, True]]

        # Excluded: a must not get "x1"; the next thing a sees is the message sent to it alone.
        await rest.send(f"{base}/:send", "newMessage", "x1", query=f"excluded={a.connection_id}")
        await rest.send(f"{base}/connections/{q(a.connection_id)}/:send", "newMessage", "to-a")
        assert await b.next_message("newMessage") == ["x1"]
        assert await a.next_message("newMessage") == ["to-a"]

        await rest.send(f"{base}/users/bob/:send", "newMessage", "to-bob")
        assert await b.next_message("newMessage") == ["to-bob"]

        group = "g/1 ?#%😀"
        response = await rest("PUT", f"{base}/groups/{q(group)}/connections/{q(b.connection_id)}")
        assert response.status_code == 200
        assert (await rest("HEAD", f"{base}/groups/{q(group)}")).status_code == 200
        await rest.send(f"{base}/groups/{q(group)}/:send", "newMessage", "to-group")
        await rest.send(
            f"{base}/groups/{q(group)}/:send",
            "newMessage",
            "none",
            query=f"excluded={b.connection_id}",
        )
        await rest.send(f"{base}/:send", "newMessage", "last")
        assert await b.next_message("newMessage") == ["to-group"]
        assert await b.next_message("newMessage") == ["last"]
        assert await a.next_message("newMessage") == ["last"]

        assert (await rest("HEAD", f"{base}/connections/{q(a.connection_id)}")).status_code == 200
        assert (await rest("HEAD", f"{base}/users/alice")).status_code == 200

        response = await rest(
            "DELETE", f"{base}/connections/{q(a.connection_id)}", query="reason=bye"
        )
        assert response.status_code == 200
        async with asyncio.timeout(5):
            await a.closed.wait()
        assert a.close_error is not None and "bye" in a.close_error
        response = await rest("HEAD", f"{base}/connections/{q(a.connection_id)}")
        assert response.status_code == 404
        assert response.headers["x-ms-error-code"] == "Warning.Connection.NotExisted"
        assert (await rest("HEAD", f"{base}/users/alice")).status_code == 404


async def test_rest_close_lets_the_client_reconnect(
    emu: RunningEmulator, node: NodeProcess, rest: Rest, hub: str
) -> None:
    """A REST close sends allowReconnect, so a client with automatic reconnect comes back."""
    token = emu.client_token(hub, user_id="rita")
    async with node.connect(emu.client_url(hub), access_token=token, reconnect=True) as client:
        first = client.connection_id
        response = await rest("POST", f"/api/hubs/{hub}/users/rita/:closeConnections")
        assert response.status_code == 204
        async with asyncio.timeout(10):
            await client.reconnected.wait()
        assert client.connection_id and client.connection_id != first
        await rest.send(f"/api/hubs/{hub}/users/rita/:send", "newMessage", "welcome back")
        assert await client.next_message("newMessage") == ["welcome back"]
        assert not client.closed.is_set()
