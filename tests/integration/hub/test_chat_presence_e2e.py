"""The sample hub's presence with real parts: official JS clients, the emulator, the webhook.

``whoIsHere`` lists the connections from the service (the group listing of the REST API),
so a client that connects later still learns who was there; ``connectionLeft`` announces a
departure; ``sendToUser`` marks its message with ``to``; the presence group is reserved.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.samples.chat import PRESENCE_GROUP
from tests.support.node import NODE, NodeClientError, NodeProcess, node_process
from tests.support.stack import HubStack, hub_stack

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.node,
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
]

TARGETS = ("newMessage", "newConnection", "connectionLeft")


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[HubStack]:
    """A fresh emulator and backend, so nobody else is connected."""
    async with hub_stack(tmp_path) as running:
        yield running


@pytest.fixture
async def node() -> AsyncIterator[NodeProcess]:
    async with node_process() as process:
        yield process


async def who_is_here(client: Any, expected: int) -> list[dict[str, Any]]:
    """``whoIsHere`` once it lists ``expected`` connections (the connected events of the
    others may still be on their way to the backend)."""
    async with asyncio.timeout(15):
        while True:
            present: list[dict[str, Any]] = await client.invoke("whoIsHere")
            if len(present) >= expected:
                return present
            await asyncio.sleep(0.1)


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
async def test_a_late_comer_learns_who_is_here_and_who_leaves(
    stack: HubStack, node: NodeProcess, protocol: str
) -> None:
    """Bob, connecting after Alice and an anonymous client, lists all three (himself too);
    when Alice stops, Bob gets connectionLeft for her and she is no longer listed."""
    base = f"{stack.backend}/api/chat"
    async with (
        node.connect(
            base, protocol=protocol, headers={"x-ms-signalr-user-id": "alice"}, targets=TARGETS
        ) as alice,
        node.connect(base, protocol=protocol, targets=TARGETS) as anonymous,
    ):
        async with node.connect(
            base, protocol=protocol, headers={"x-ms-signalr-user-id": "bob"}, targets=TARGETS
        ) as bob:
            present = await who_is_here(bob, 3)
            assert {p["connectionId"]: p["userId"] for p in present} == {
                alice.connection_id: "alice",
                anonymous.connection_id: None,
                bob.connection_id: "bob",
            }
            assert len(present) == 3
            assert all(set(p) == {"connectionId", "userId"} for p in present)

            await alice.invoke("sendToUser", "bob", "psst")
            (direct,) = await bob.next_message("newMessage")
            assert direct == {
                "sender": "alice",
                "connectionId": alice.connection_id,
                "text": "psst",
                "to": "bob",
            }

            await alice.stop()
            async with asyncio.timeout(15):
                while True:
                    (left,) = await bob.next_message("connectionLeft")
                    if left["connectionId"] == alice.connection_id:
                        break
            assert left == {"connectionId": alice.connection_id, "userId": "alice"}
            ids = {p["connectionId"] for p in await bob.invoke("whoIsHere")}
            assert ids == {anonymous.connection_id, bob.connection_id}


async def test_the_presence_group_is_reserved(stack: HubStack, node: NodeProcess) -> None:
    """Joining, leaving or writing to the presence group fails with a message naming it."""
    async with node.connect(f"{stack.backend}/api/chat") as client:
        for target, arguments in (
            ("joinGroup", [PRESENCE_GROUP]),
            ("leaveGroup", [PRESENCE_GROUP]),
            ("sendToGroup", [PRESENCE_GROUP, "hi"]),
        ):
            with pytest.raises(NodeClientError, match="reserved by the chat hub"):
                await client.invoke(target, *arguments)
