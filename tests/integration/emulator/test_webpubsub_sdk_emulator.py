"""azure-messaging-webpubsubservice (an independent REST client) drives the shared paths.

Its tokens' ``aud`` is the full request URL with the port and every query parameter, which
the emulator's tolerant audience check accepts. Three operations succeed with a different
status in the two services (SignalR 2022-06-01 answers 200 where Web PubSub answers 204:
DELETE a connection, its group membership, all its groups); the SDK raises on the SignalR
status, so :func:`signalr_200` checks the status and the effect instead.
"""

from __future__ import annotations

from collections.abc import Awaitable

import pytest

from tests.support.emulator import RunningEmulator
from tests.support.emulator_kit import Rest, raw_client

pytestmark = pytest.mark.anyio


async def signalr_200(call: Awaitable[None]) -> None:
    """Await an SDK call that expects Web PubSub's 204 where SignalR answers 200."""
    from azure.core.exceptions import HttpResponseError

    with pytest.raises(HttpResponseError) as info:
        await call
    assert info.value.status_code == 200


async def test_group_membership_closes_and_existence(
    emu: RunningEmulator, rest: Rest, hub: str
) -> None:
    """Group membership, removals, existence checks and closes behave as the SDK expects."""
    from azure.messaging.webpubsubservice.aio import WebPubSubServiceClient

    conn_str = f"Endpoint=http://127.0.0.1;Port={emu.port};AccessKey={emu.settings.access_key};"
    async with (
        WebPubSubServiceClient.from_connection_string(conn_str, hub=hub) as sdk,
        raw_client(emu, hub, user_id="wps-user") as a,
        raw_client(emu, hub) as b,
    ):
        assert a.connection_id and b.connection_id
        assert await sdk.connection_exists(a.connection_id)
        assert not await sdk.connection_exists("nobody")
        assert await sdk.user_exists("wps-user")
        assert not await sdk.user_exists("nobody")
        assert not await sdk.group_exists("g1")

        await sdk.add_connection_to_group("g1", b.connection_id)
        assert await sdk.group_exists("g1")
        await signalr_200(sdk.remove_connection_from_group("g1", b.connection_id))
        assert not await sdk.group_exists("g1")

        await sdk.add_connection_to_group("g1", b.connection_id)
        await sdk.add_connection_to_group("g2", b.connection_id)
        await signalr_200(sdk.remove_connection_from_all_groups(b.connection_id))
        assert not await sdk.group_exists("g1") and not await sdk.group_exists("g2")

        await sdk.add_user_to_group("g3", "wps-user")
        assert await sdk.group_exists("g3")
        await rest.send(f"/api/hubs/{hub}/groups/g3/:send", "x", "to-g3")
        assert (await a.receive())["arguments"] == ["to-g3"]
        await sdk.remove_user_from_group("g3", "wps-user")
        assert not await sdk.group_exists("g3")
        await sdk.add_user_to_group("g4", "wps-user")
        await sdk.remove_user_from_all_groups("wps-user")
        assert not await sdk.group_exists("g4")

        await sdk.close_all_connections(excluded=[a.connection_id], reason="all")
        assert (await b.receive()) == {"type": 7, "error": "all", "allowReconnect": True}
        await sdk.close_user_connections("wps-user", reason="user")
        assert (await a.receive())["error"] == "user"
        await signalr_200(sdk.close_connection("nobody", reason="none"))  # unknown: no error
