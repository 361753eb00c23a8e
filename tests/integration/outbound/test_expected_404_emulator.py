"""The REST client's expected-404 rules against the real emulator's answers."""

from __future__ import annotations

import pytest

from app.services.signalr import SignalRService
from tests.support.emulator import RunningEmulator

pytestmark = pytest.mark.anyio


async def test_operations_on_absent_targets_end_as_the_sdk_ends_them(
    emulator: RunningEmulator, service: SignalRService
) -> None:
    """Against the emulator's 404s (which carry the service's x-ms-error-code), adding or
    closing a connection that has gone and leaving groups return normally and the existence
    checks answer False, as Azure/azure-signalr
    src/Microsoft.Azure.SignalR.Management/RestHubLifetimeManager.cs decides them."""
    await service.add_connection_to_group("chat", "room", "gone-connection")
    await service.remove_connection_from_group("chat", "room", "gone-connection")
    await service.remove_connection_from_all_groups("chat", "gone-connection")
    await service.close_connection("chat", "gone-connection", reason="bye")
    await service.add_user_to_group("chat", "room", "nobody")
    await service.remove_user_from_group("chat", "room", "nobody")
    await service.remove_user_from_group("chat", "room", "nobody")
    await service.remove_user_from_all_groups("chat", "nobody")
    assert await service.connection_exists("chat", "gone-connection") is False
    assert await service.user_exists("chat", "nobody") is False
    assert await service.group_exists("chat", "room") is False
    assert await service.user_in_group("chat", "other-room", "nobody") is False
    assert emulator.app.state.registry.hub("chat").connections == {}
