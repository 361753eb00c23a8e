"""The client-to-server path with real parts: the official JS client, the emulator, the webhook.

One emulator + backend pair serves the module; the test that stops the backend builds its own.
Every test runs the JSON and the MessagePack protocol.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.hubs.probe_hub import Probe
from tests.support.node import NODE, NodeClientError, NodeProcess, node_process
from tests.support.stack import HubStack, hub_stack

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.node,
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
]

PROTOCOLS = ["json", "messagepack"]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module-scoped so the stack and the Node process are shared by the module's tests."""
    return "asyncio"


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[HubStack]:
    """The emulator and the backend, wired together."""
    async with hub_stack(tmp_path_factory.mktemp("hub")) as running:
        yield running


@pytest.fixture(scope="module")
async def node() -> AsyncIterator[NodeProcess]:
    """One Node process hosting the tests' JS clients."""
    async with node_process() as process:
        yield process


@pytest.fixture(params=PROTOCOLS)
def protocol(request: pytest.FixtureRequest) -> str:
    """The hub protocol the clients use."""
    value: str = request.param
    return value


async def wait_for(
    predicate: Callable[[], bool], changed: asyncio.Event, within: float = 5
) -> None:
    """Wait until ``predicate()`` holds, re-checking whenever ``changed`` fires."""
    async with asyncio.timeout(within):
        while not predicate():
            changed.clear()
            await changed.wait()


async def expect_nothing_before(marker: Callable[[], Awaitable[list[Any]]], text: str) -> None:
    """The next newMessage is the marker: anything sent before it would arrive first."""
    args = await marker()
    assert args[0]["text"] == text


async def test_echo_resolves_to_its_argument(
    stack: HubStack, node: NodeProcess, protocol: str
) -> None:
    """``invoke("echo", x)`` resolves to ``x`` through the emulator and the webhook."""
    value: Any = {"list": [1, 2.5, "three", None, True], "nested": {"k": "v"}}
    if protocol == "messagepack":
        value["bin"] = b"\x00\x01\xff"
    async with node.connect(f"{stack.backend}/api/chat", protocol=protocol) as client:
        assert await client.invoke("echo", value) == value
        assert await client.invoke("Echo", "ü€") == "ü€"
        assert await client.invoke("echo", None) is None


async def test_broadcast_reaches_everyone(
    stack: HubStack, node: NodeProcess, protocol: str
) -> None:
    """``send("broadcast", text)`` reaches every connection with the table's message shape."""
    base = f"{stack.backend}/api/chat"
    async with (
        node.connect(base, protocol=protocol, headers={"x-ms-signalr-user-id": "alice"}) as alice,
        node.connect(base, protocol=protocol) as anon,
    ):
        await alice.send("broadcast", "hello all")
        expected = {"sender": "alice", "connectionId": alice.connection_id, "text": "hello all"}
        assert await alice.next_message("newMessage") == [expected]
        assert await anon.next_message("newMessage") == [expected]


async def test_admin_broadcast_needs_the_admin_role(
    stack: HubStack, node: NodeProcess, protocol: str
) -> None:
    """A non-admin's adminBroadcast rejects and reaches no one; an admin's reaches everyone."""
    emu = stack.emulator
    url = emu.client_url("chat")
    admin_token = emu.client_token("chat", user_id="root", claims=[("role", "admin")])
    async with (
        node.connect(f"{stack.backend}/api/chat", protocol=protocol) as user,
        node.connect(url, access_token=admin_token, protocol=protocol) as admin,
    ):
        with pytest.raises(NodeClientError, match="role 'admin' is required"):
            await user.invoke("adminBroadcast", "let me in")
        await user.invoke("echo", "connection still usable")
        await user.send("broadcast", "marker")
        await expect_nothing_before(lambda: admin.next_message("newMessage"), "marker")
        await expect_nothing_before(lambda: user.next_message("newMessage"), "marker")

        await admin.invoke("adminBroadcast", "from root")
        expected = {"sender": "root", "connectionId": admin.connection_id, "text": "from root"}
        assert await user.next_message("newMessage") == [expected]
        assert await admin.next_message("newMessage") == [expected]


async def test_unknown_target_rejects_quickly(
    stack: HubStack, node: NodeProcess, protocol: str
) -> None:
    """Invoking a target no hub method handles rejects within seconds (webhook 404)."""
    async with node.connect(f"{stack.backend}/api/chat", protocol=protocol) as client:
        with pytest.raises(NodeClientError, match="status code 404"):
            await client.invoke("noSuchMethod", 1, timeout=5)
        with pytest.raises(NodeClientError, match="expects 1 argument"):
            await client.invoke("echo", timeout=5)
        assert await client.invoke("echo", 2) == 2


async def test_connects_and_disconnects_reach_the_hooks(
    stack: HubStack, node: NodeProcess, protocol: str
) -> None:
    """on_connected / on_disconnected see the connection id the client sees, and the user."""
    changed = Probe.reset()
    base = f"{stack.backend}/api/probe"
    async with node.connect(
        base, protocol=protocol, headers={"x-ms-signalr-user-id": "carol"}
    ) as client:
        cid = client.connection_id
        await wait_for(lambda: ("connected", cid, "carol", None) in Probe.events, changed)
    await wait_for(lambda: ("disconnected", cid, "carol", None) in Probe.events, changed)


async def test_sample_hub_connect_users_and_groups(
    stack: HubStack, node: NodeProcess, protocol: str
) -> None:
    """The sample hub: newConnection on connect, sendToUser, join/send/leave group."""
    base = f"{stack.backend}/api/chat"
    async with node.connect(
        base,
        protocol=protocol,
        headers={"x-ms-signalr-user-id": "dave"},
        targets=("newMessage", "newConnection"),
    ) as dave:
        async with node.connect(
            base, protocol=protocol, headers={"x-ms-signalr-user-id": "erin"}
        ) as erin:
            while True:  # skip announcements of other tests' connections, if any
                (announced,) = await dave.next_message("newConnection")
                if announced["connectionId"] == erin.connection_id:
                    break
            assert announced == {"connectionId": erin.connection_id, "userId": "erin"}

            await dave.invoke("sendToUser", "erin", "psst")
            assert await erin.next_message("newMessage") == [
                {"sender": "dave", "connectionId": dave.connection_id, "text": "psst", "to": "erin"}
            ]
            await erin.invoke("joinGroup", "room")
            await dave.invoke("sendToGroup", "room", "hi room")
            assert await erin.next_message("newMessage") == [
                {
                    "sender": "dave",
                    "connectionId": dave.connection_id,
                    "text": "hi room",
                    "group": "room",
                }
            ]
            await erin.invoke("leaveGroup", "room")
            await dave.invoke("sendToGroup", "room", "anyone?")
            await dave.invoke("sendToUser", "erin", "marker")
            await expect_nothing_before(lambda: erin.next_message("newMessage"), "marker")
            assert dave.pending("newMessage") == 0


async def test_negotiate_hook_adds_claims(
    stack: HubStack, node: NodeProcess, protocol: str
) -> None:
    """A hub's negotiate hook shapes the token; the claims come back in the webhook context."""
    base = f"{stack.backend}/api/probe?role=admin"
    async with node.connect(
        base, protocol=protocol, headers={"x-ms-signalr-user-id": "frank"}
    ) as client:
        me = await client.invoke("whoami")
        assert me == {"connectionId": client.connection_id, "userId": "frank", "roles": ["admin"]}


async def test_stopped_backend_gives_an_error_and_the_connection_survives(
    tmp_path: Path, node: NodeProcess, protocol: str
) -> None:
    """With the backend down an invoke rejects with an error; after a restart it works again."""
    async with hub_stack(tmp_path) as own:
        emu = own.emulator
        token = emu.client_token("chat", user_id="gina")
        async with node.connect(
            emu.client_url("chat"), access_token=token, protocol=protocol
        ) as client:
            assert await client.invoke("echo", 1) == 1
            port = own.port
            await own.stop_backend()
            with pytest.raises(NodeClientError, match="Invocation failed"):
                await client.invoke("echo", 2, timeout=10)
            assert not client.closed.is_set()
            await own.start_backend(port=port)
            assert await client.invoke("echo", 3) == 3
            assert not client.closed.is_set()
