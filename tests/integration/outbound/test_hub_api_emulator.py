"""The hub API (``self.clients``, ``self.groups``, ``self.user_groups``, ``self.client_manager``)
reaches the real emulator through SignalRService, and official JS clients see the effect.

Three ``@microsoft/signalr`` clients (alice and carol speak JSON, bob MessagePack) stay
connected while a :class:`ServerlessHub` instance, built as the webhook router builds it
for an invocation by alice, calls every member of the hub API. Each send carries a unique
label; :func:`check` waits for it at the expected receivers and then proves, with an
in-order marker broadcast, that nobody else got it. The close operations of the service
that the hub API does not expose (close a group's, a user's, all connections) and the
gateway's ``removeAll`` of a connection are checked at the end.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta

import httpx
import pytest

from app.hub import InvocationContext, ServerlessHub
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

TARGETS = ("newMessage", "marker")
WAIT = 20.0
"""Seconds a client may take to receive a message (generous: 2 busy cores)."""


class Probe(ServerlessHub):
    """A hub whose only use is its API; its methods are never invoked."""

    hub_name = "chat"


_labels = itertools.count()


async def check(
    service: SignalRService,
    clients: Mapping[str, NodeClient],
    send: Callable[[str], Awaitable[None]],
    expected: set[str],
) -> None:
    """Run ``send(label)`` and assert exactly the ``expected`` clients received ``label``."""
    label = f"m{next(_labels)}"
    await send(label)
    for name in sorted(expected):
        assert await clients[name].next_message("newMessage", timeout=WAIT) == [label], name
    await service.send_to_all("chat", "marker", [label])
    live = {name: client for name, client in clients.items() if not client.closed.is_set()}
    for client in live.values():
        assert await client.next_message("marker", timeout=WAIT) == [label]
    leaked = {name for name, client in live.items() if client.pending("newMessage")}
    assert leaked == set(), f"{label} also reached {leaked}"


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = WAIT) -> None:  # noqa: ASYNC109
    """Poll ``predicate`` until it is true (TimeoutError after ``timeout`` seconds)."""
    async with asyncio.timeout(timeout):
        while True:
            if await predicate():
                return
            await asyncio.sleep(0.05)


async def test_every_hub_api_call_reaches_the_emulator(
    emulator: RunningEmulator, node: NodeProcess, service: SignalRService
) -> None:
    """Each hub API member makes the right REST call: the right clients receive or change."""
    url = emulator.client_url("chat")

    def token(user: str) -> str:
        return emulator.client_token("chat", user_id=user)

    async with (
        node.connect(url, access_token=token("alice"), targets=TARGETS) as alice,
        node.connect(
            url, access_token=token("bob"), protocol="messagepack", targets=TARGETS
        ) as bob,
        node.connect(url, access_token=token("carol"), targets=TARGETS) as carol,
    ):
        clients = {"alice": alice, "bob": bob, "carol": carol}
        ids = {name: client.connection_id for name, client in clients.items()}
        assert all(ids.values())
        a, b, c = ids["alice"], ids["bob"], ids["carol"]
        assert a is not None and b is not None and c is not None
        context = InvocationContext(
            connection_id=a, hub="chat", category="messages", event="probe", user_id="alice"
        )
        hub = Probe(service=service, context=context)
        everyone = {"alice", "bob", "carol"}

        # self.clients: every way of choosing receivers.
        await check(service, clients, lambda m: hub.clients.all.send("newMessage", m), everyone)
        await check(service, clients, lambda m: hub.clients.caller.send("newMessage", m), {"alice"})
        await check(
            service, clients, lambda m: hub.clients.others.send("newMessage", m), {"bob", "carol"}
        )
        await check(
            service,
            clients,
            lambda m: hub.clients.all_except([b, c]).send("newMessage", m),
            {"alice"},
        )
        await check(
            service, clients, lambda m: hub.clients.user("bob").send("newMessage", m), {"bob"}
        )
        await check(
            service,
            clients,
            lambda m: hub.clients.users(["bob", "carol", "nobody"]).send("newMessage", m),
            {"bob", "carol"},
        )
        await check(
            service, clients, lambda m: hub.clients.client(c).send("newMessage", m), {"carol"}
        )
        await check(
            service,
            clients,
            lambda m: hub.clients.clients([a, b]).send("newMessage", m),
            {"alice", "bob"},
        )

        # self.groups: connection <-> group.
        await hub.groups.add_to_group(a, "g/1")
        await hub.groups.add_to_group(b, "g/1")
        await hub.groups.add_to_group(c, "g 2")
        assert await hub.client_manager.group_exists("g/1")
        await check(
            service,
            clients,
            lambda m: hub.clients.group("g/1").send("newMessage", m),
            {"alice", "bob"},
        )
        await check(
            service,
            clients,
            lambda m: hub.clients.group_except("g/1", [a]).send("newMessage", m),
            {"bob"},
        )
        await check(
            service,
            clients,
            lambda m: hub.clients.groups(["g 2", "g/1"], excluded=[b]).send("newMessage", m),
            {"alice", "carol"},
        )
        await hub.groups.remove_from_group(b, "g/1")
        await check(
            service,
            clients,
            lambda m: hub.clients.group("g/1").send("newMessage", m),
            {"alice"},
        )
        await hub.groups.add_to_group(a, "g 2")
        await hub.groups.remove_from_all_groups(a)
        await check(
            service,
            clients,
            lambda m: hub.clients.groups(["g/1", "g 2"]).send("newMessage", m),
            {"carol"},
        )
        assert not await hub.client_manager.group_exists("g/1")

        # self.user_groups: user <-> group, with and without TTL.
        await hub.user_groups.add_to_group("bob", "team")
        await hub.user_groups.add_to_group("carol", "team", ttl=timedelta(minutes=5))
        assert await hub.user_groups.is_user_in_group("bob", "team")
        assert await hub.user_groups.is_user_in_group("carol", "team")
        assert not await hub.user_groups.is_user_in_group("alice", "team")
        await check(
            service,
            clients,
            lambda m: hub.clients.group("team").send("newMessage", m),
            {"bob", "carol"},
        )
        await hub.user_groups.remove_from_group("carol", "team")
        assert not await hub.user_groups.is_user_in_group("carol", "team")
        await hub.user_groups.add_to_group("bob", "other")
        await hub.user_groups.remove_from_all_groups("bob")
        assert not await hub.user_groups.is_user_in_group("bob", "team")
        assert not await hub.user_groups.is_user_in_group("bob", "other")
        await check(
            service,
            clients,
            lambda m: hub.clients.groups(["team", "other"]).send("newMessage", m),
            set(),
        )
        await hub.user_groups.add_to_group("alice", "brief", ttl=1)
        assert await hub.user_groups.is_user_in_group("alice", "brief")

        async def expired() -> bool:
            return not await hub.user_groups.is_user_in_group("alice", "brief")

        await wait_until(expired)

        # self.client_manager: existence and closing with a reason.
        assert await hub.client_manager.connection_exists(c)
        assert await hub.client_manager.user_exists("carol")
        assert not await hub.client_manager.user_exists("dave")
        assert not await hub.client_manager.connection_exists("no-such-connection")
        await hub.client_manager.close_connection(c, reason="closed by the hub")
        await asyncio.wait_for(carol.closed.wait(), WAIT)
        assert carol.close_error is not None and "closed by the hub" in carol.close_error
        assert not await hub.client_manager.connection_exists(c)
        assert not await hub.client_manager.user_exists("carol")
        await check(
            service, clients, lambda m: hub.clients.all.send("newMessage", m), {"alice", "bob"}
        )


async def test_close_group_user_and_all_connections(
    emulator: RunningEmulator, node: NodeProcess, service: SignalRService
) -> None:
    """close_group/user/all_connections close exactly their connections, minus excluded."""
    url = emulator.client_url("chat")

    def token(user: str) -> str:
        return emulator.client_token("chat", user_id=user)

    async with (
        node.connect(url, access_token=token("u1"), targets=TARGETS) as one,
        node.connect(url, access_token=token("u1"), protocol="messagepack", targets=TARGETS) as two,
        node.connect(url, access_token=token("u2"), targets=TARGETS) as three,
        node.connect(url, access_token=token("u3"), targets=TARGETS) as four,
    ):
        clients = {"one": one, "two": two, "three": three, "four": four}
        ids = {name: client.connection_id or "" for name, client in clients.items()}

        await service.add_connection_to_group("chat", "g", ids["three"])
        await service.close_group_connections("chat", "g", reason="group closed")
        await asyncio.wait_for(three.closed.wait(), WAIT)
        assert three.close_error is not None and "group closed" in three.close_error

        await service.close_user_connections(
            "chat", "u1", excluded=[ids["two"]], reason="user closed"
        )
        await asyncio.wait_for(one.closed.wait(), WAIT)
        assert one.close_error is not None and "user closed" in one.close_error
        await check(
            service,
            clients,
            lambda m: service.send_to_all("chat", "newMessage", [m]),
            {"two", "four"},
        )

        await service.close_all_connections("chat", excluded=[ids["four"]], reason="all closed")
        await asyncio.wait_for(two.closed.wait(), WAIT)
        assert two.close_error is not None and "all closed" in two.close_error
        assert await service.connection_exists("chat", ids["four"])
        await check(
            service,
            clients,
            lambda m: service.send_to_all("chat", "newMessage", [m]),
            {"four"},
        )
        assert not four.closed.is_set()


async def test_gateway_remove_all_of_a_connection_leaves_every_group(
    emulator: RunningEmulator, node: NodeProcess, service: SignalRService
) -> None:
    """groupActions removeAll with a connectionId really removes it from all its groups
    (the Functions extension silently did nothing)."""
    settings = Settings(connection_string=emulator.connection_string, gateway_api_keys=["gw"])
    url = emulator.client_url("chat")
    async with (
        serve_asgi(create_app(settings)) as backend,
        httpx.AsyncClient(base_url=backend, headers={"x-functions-key": "gw"}) as http,
        node.connect(url, access_token=emulator.client_token("chat"), targets=TARGETS) as client,
    ):
        cid = client.connection_id
        actions = [
            {"action": "add", "groupName": "x", "connectionId": cid},
            {"action": "add", "groupName": "y", "connectionId": cid},
        ]
        response = await http.post("/api/hubs/chat/groupActions", json=actions)
        assert response.status_code == 200, response.text
        assert await service.group_exists("chat", "x")
        assert await service.group_exists("chat", "y")

        response = await http.post(
            "/api/hubs/chat/groupActions", json={"action": "removeAll", "connectionId": cid}
        )
        assert response.status_code == 200, response.text
        assert not await service.group_exists("chat", "x")
        assert not await service.group_exists("chat", "y")
        await check(
            service,
            {"client": client},
            lambda m: service.send_to_groups("chat", ["x", "y"], "newMessage", [m]),
            set(),
        )
