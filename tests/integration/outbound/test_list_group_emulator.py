"""Listing a group's connections against the real emulator, with official JS clients connected.

The REST client pages through ``GET /api/hubs/{hub}/groups/{group}/connections``
(api-version 2024-12-01) as the emulator serves it: ``maxpagesize`` pages, an absolute
``nextLink`` carrying the continuation token, ``top``; the hub API's
``self.groups.list_connections`` gives the same answer.
"""

from __future__ import annotations

import contextlib

import pytest

from app.hub import GroupMember, HubContext
from app.services.signalr import SignalRService
from tests.support.emulator import RunningEmulator
from tests.support.node import NODE, NodeClient, NodeProcess

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.node,
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
]

GROUP = "room a/b %1"
USERS = ["alice", "bob", "carol", "dave", None]


async def test_pages_top_and_departures(
    emulator: RunningEmulator, node: NodeProcess, service: SignalRService
) -> None:
    """Five connections in a group are listed whole at two a page, ``top`` bounds the list,
    another group's members are not listed, and a connection that stopped is gone."""
    url = emulator.client_url("chat")
    async with contextlib.AsyncExitStack() as stack:
        clients: list[NodeClient] = []
        for user in USERS:
            token = emulator.client_token("chat", user_id=user)
            clients.append(await stack.enter_async_context(node.connect(url, access_token=token)))
        ids = [c.connection_id for c in clients]
        assert all(ids)
        for connection_id in ids:
            assert connection_id is not None
            await service.add_connection_to_group("chat", GROUP, connection_id)
        outsider = await stack.enter_async_context(
            node.connect(url, access_token=emulator.client_token("chat", user_id="eve"))
        )
        assert outsider.connection_id is not None
        await service.add_connection_to_group("chat", "elsewhere", outsider.connection_id)

        expected = {GroupMember(cid, user) for cid, user in zip(ids, USERS, strict=True) if cid}
        listed = await service.list_group_connections("Chat", GROUP, page_size=2)
        assert len(listed) == 5
        assert set(listed) == expected
        assert len(await service.list_group_connections("chat", GROUP, top=3, page_size=2)) == 3
        assert await service.list_group_connections("chat", "nobody here") == []

        api = HubContext(service, "chat")
        assert set(await api.groups.list_connections(GROUP)) == expected
        assert len(await api.groups.list_connections(GROUP, top=2)) == 2

        await clients[0].stop()
        remaining = await service.list_group_connections("chat", GROUP, page_size=1)
        assert {m.connection_id for m in remaining} == set(ids[1:])
