"""SignalRService and the gateway against the real emulator, received by official JS clients.

Each test connects ``@microsoft/signalr`` clients (JSON and MessagePack) to a running
emulator, sends through the REST client or the backend's gateway, and checks what the
clients received. "Did not receive" is checked with a barrier: a later broadcast that the
client does receive, after which nothing earlier may be waiting.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from app.main import create_app
from app.services.signalr import SignalRService
from app.settings import Settings
from tests.support.emulator import RunningEmulator
from tests.support.node import NODE, NodeClient, NodeProcess
from tests.support.servers import serve_asgi

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.node,
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
]

HOSTILE_GROUP = "a/../b g%?#\U0001f600"
WAIT = 20.0
"""Seconds a client may take to receive a message (generous: 2 busy cores)."""


async def barrier(service: SignalRService, *clients: NodeClient) -> None:
    """Broadcast a marker and wait until every client got it (delivery is in order)."""
    await service.send_to_all("chat", "marker", [])
    for client in clients:
        assert await client.next_message("marker", timeout=WAIT) == []


async def test_json_and_messagepack_clients_get_the_same_broadcast(
    emulator: RunningEmulator, node: NodeProcess, service: SignalRService
) -> None:
    """One send_to_all reaches a JSON (WebSockets) and a MessagePack (SSE is JSON-only, so
    WebSockets too) client with equal arguments."""
    url = emulator.client_url("chat")
    token = emulator.client_token("chat")
    payload = {"sender": None, "text": "h\u00e9llo \U0001f600", "n": [1, 2.5, True]}
    async with (
        node.connect(url, access_token=token, protocol="json") as json_client,
        node.connect(url, access_token=token, protocol="messagepack") as msgpack_client,
        node.connect(
            url, access_token=token, protocol="json", transport="ServerSentEvents"
        ) as sse_client,
    ):
        await service.send_to_all("Chat", "newMessage", [payload, "second"])
        for client in (json_client, msgpack_client, sse_client):
            assert await client.next_message("newMessage", timeout=WAIT) == [payload, "second"]


async def test_groups_users_exclusions_and_existence(
    emulator: RunningEmulator, node: NodeProcess, service: SignalRService
) -> None:
    """Group and user sends reach only their members; excluded is honoured; exists agrees."""
    url = emulator.client_url("chat")
    targets = ("newMessage", "marker")
    async with (
        node.connect(
            url, access_token=emulator.client_token("chat", user_id="alice"), targets=targets
        ) as alice,
        node.connect(
            url,
            access_token=emulator.client_token("chat", user_id="bob"),
            protocol="messagepack",
            targets=targets,
        ) as bob,
    ):
        assert alice.connection_id and bob.connection_id
        assert await service.connection_exists("chat", alice.connection_id)
        assert not await service.connection_exists("chat", "no-such-connection")
        assert await service.user_exists("chat", "bob")
        assert not await service.user_exists("chat", "carol")

        await service.add_connection_to_group("chat", HOSTILE_GROUP, alice.connection_id)
        assert await service.group_exists("chat", HOSTILE_GROUP)
        assert not await service.group_exists("chat", "a")
        await service.send_to_group("chat", HOSTILE_GROUP, "newMessage", ["to the group"])
        assert await alice.next_message("newMessage", timeout=WAIT) == ["to the group"]

        await service.send_to_user("chat", "bob", "newMessage", ["to bob"])
        assert await bob.next_message("newMessage", timeout=WAIT) == ["to bob"]

        await service.send_to_all(
            "chat", "newMessage", ["not alice"], excluded=[alice.connection_id]
        )
        assert await bob.next_message("newMessage", timeout=WAIT) == ["not alice"]

        await barrier(service, alice, bob)
        assert alice.pending("newMessage") == 0
        assert bob.pending("newMessage") == 0

        await service.add_user_to_group("chat", "room", "bob")
        assert await service.user_in_group("chat", "room", "bob")
        await service.remove_connection_from_group("chat", HOSTILE_GROUP, alice.connection_id)
        await service.send_to_groups("chat", ["room", HOSTILE_GROUP], "newMessage", ["rooms"])
        assert await bob.next_message("newMessage", timeout=WAIT) == ["rooms"]
        await barrier(service, alice, bob)
        assert alice.pending("newMessage") == 0

        await service.remove_user_from_all_groups("chat", "bob")
        assert not await service.user_in_group("chat", "room", "bob")


async def test_close_connection_with_a_reason(
    emulator: RunningEmulator, node: NodeProcess, service: SignalRService
) -> None:
    """close_connection ends the client's connection and the client sees the reason."""
    url = emulator.client_url("chat")
    async with node.connect(url, access_token=emulator.client_token("chat")) as client:
        assert client.connection_id
        await service.close_connection("chat", client.connection_id, reason="maintenance")
        await asyncio.wait_for(client.closed.wait(), WAIT)
        assert client.close_error is not None and "maintenance" in client.close_error
        assert not await service.connection_exists("chat", client.connection_id)


async def test_health_and_a_wrong_key(emulator: RunningEmulator) -> None:
    """The emulator's health check passes with the right key and a 401 is typed."""
    from app.exceptions import ServiceUnauthorizedError

    good = Settings(connection_string=emulator.connection_string)
    async with SignalRService.open(good) as service:
        assert await service.is_healthy()
    wrong = Settings(
        connection_string=emulator.connection_string.replace(emulator.settings.access_key, "W" * 44)
    )
    async with SignalRService.open(wrong) as service:
        assert not await service.is_healthy()
        with pytest.raises(ServiceUnauthorizedError):
            await service.send_to_all("chat", "t", [])


async def test_gateway_messages_reach_the_right_clients(
    emulator: RunningEmulator, node: NodeProcess, service: SignalRService
) -> None:
    """Messages and group actions posted to the backend's gateway reach the right clients."""
    settings = Settings(connection_string=emulator.connection_string, gateway_api_keys=["gw-key"])
    url = emulator.client_url("chat")
    targets = ("newMessage", "marker")
    async with (
        serve_asgi(create_app(settings)) as backend,
        httpx.AsyncClient(base_url=backend, params={"code": "gw-key"}) as http,
        node.connect(
            url, access_token=emulator.client_token("chat", user_id="alice"), targets=targets
        ) as alice,
        node.connect(
            url,
            access_token=emulator.client_token("chat", user_id="bob"),
            protocol="messagepack",
            targets=targets,
        ) as bob,
    ):
        response = await http.post(
            "/api/hubs/chat/groupActions",
            json={"action": "add", "groupName": "team", "userId": "bob"},
        )
        assert response.status_code == 200, response.text

        response = await http.post(
            "/api/hubs/chat/messages",
            json=[
                {"target": "newMessage", "arguments": ["for alice"], "userId": "alice"},
                {"target": "newMessage", "arguments": ["for the team"], "groupName": "team"},
                {"target": "newMessage", "arguments": [{"all": True}]},
            ],
        )
        assert response.status_code == 202, response.text
        assert response.json()["succeeded"] == 3

        assert await alice.next_message("newMessage", timeout=WAIT) == ["for alice"]
        assert await alice.next_message("newMessage", timeout=WAIT) == [{"all": True}]
        assert await bob.next_message("newMessage", timeout=WAIT) == ["for the team"]
        assert await bob.next_message("newMessage", timeout=WAIT) == [{"all": True}]
        await barrier(service, alice, bob)
        assert alice.pending("newMessage") == bob.pending("newMessage") == 0

        response = await http.post(
            "/api/hubs/chat/messages", params={"code": "wrong"}, json={"target": "x"}
        )
        assert response.status_code == 401
