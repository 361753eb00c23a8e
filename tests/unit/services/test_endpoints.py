"""Several service endpoints: fan-out of sends and group calls, and the negotiate choice."""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.exceptions import ConfigurationError, ServiceNotFoundError, ServiceUnavailableError
from app.services.endpoints import EndpointSet
from app.services.signalr import SignalRService
from app.settings import Settings
from signalr_protocol.connection_string import parse_connection_string
from tests.support.outbound_kit import (
    RecordingServer,
    Reply,
    connection_string,
    recording_server,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
async def pair() -> AsyncIterator[tuple[RecordingServer, RecordingServer]]:
    async with recording_server() as first, recording_server() as second:
        yield first, second


def two_endpoint_settings(
    first: RecordingServer, second: RecordingServer, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "endpoint_strings": {
            "east:primary": connection_string(first.base_url),
            "west:secondary": connection_string(second.base_url),
        },
        "retry_delay": 0.0,
        "retry_max_attempts": 2,
        "health_check_interval": 60.0,
    }
    values.update(overrides)
    return Settings(**values)


async def test_functions_style_environment_names_are_read(
    monkeypatch: pytest.MonkeyPatch, pair: tuple[RecordingServer, RecordingServer]
) -> None:
    """Azure__SignalR__Endpoints__<name>[__secondary] variables configure the endpoints."""
    first, second = pair
    monkeypatch.setenv("Azure__SignalR__Endpoints__east", connection_string(first.base_url))
    monkeypatch.setenv(
        "Azure__SignalR__Endpoints__west__secondary", connection_string(second.base_url)
    )
    async with SignalRService.open(Settings()) as service:
        kinds = {(e.name, e.primary) for e in service.endpoints.endpoints}
        assert kinds == {("east", True), ("west", False)}
        await service.send_to_all("chat", "t", [])
    assert len(first.requests) == len(second.requests) == 1


async def test_sends_and_group_calls_go_to_every_endpoint(
    pair: tuple[RecordingServer, RecordingServer],
) -> None:
    """A send, a group change and a close reach both endpoints, each with its own token."""
    first, second = pair
    async with SignalRService.open(two_endpoint_settings(first, second)) as service:
        await service.send_to_group("chat", "g", "t", [1])
        await service.add_user_to_group("chat", "g", "u")
        await service.close_all_connections("chat")
    for server in pair:
        assert [r.raw_path for r in server.requests] == [
            "/api/hubs/chat/groups/g/:send",
            "/api/hubs/chat/users/u/groups/g",
            "/api/hubs/chat/:closeConnections",
        ]
    assert first.requests[0].claims()["aud"] == second.requests[0].claims()["aud"]


async def test_a_connection_lives_on_one_endpoint(
    pair: tuple[RecordingServer, RecordingServer],
) -> None:
    """Adding a connection to a group succeeds when the other endpoint answers 404
    Error.Connection.NotExisted (and when both do: the connection has gone, not an error, as
    Azure/azure-signalr src/Microsoft.Azure.SignalR.Management/RestHubLifetimeManager.cs
    AddToGroupAsync); exists is any-of, 'no' only on the expected error code."""
    first, second = pair
    gone = Reply(404, headers={"x-ms-error-code": "Error.Connection.NotExisted"})
    absent = Reply(404, headers={"x-ms-error-code": "Warning.Connection.NotExisted"})
    first.responder = lambda request: gone if request.method == "PUT" else absent
    async with SignalRService.open(two_endpoint_settings(first, second)) as service:
        await service.add_connection_to_group("chat", "g", "c1")
        assert await service.connection_exists("chat", "c1") is True
        second.responder = first.responder
        await service.add_connection_to_group("chat", "g", "c1")
        assert await service.connection_exists("chat", "c1") is False
        second.responder = lambda request: Reply(404)
        with pytest.raises(ServiceNotFoundError):
            await service.connection_exists("chat", "c1")


def skip_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "skipped endpoint" in r.getMessage()]


async def test_a_send_skips_an_endpoint_the_health_check_marked_offline_with_a_warning(
    pair: tuple[RecordingServer, RecordingServer], caplog: pytest.LogCaptureFixture
) -> None:
    """After a failed health check the endpoint gets no sends, group, user, close or
    existence calls, with one warning per endpoint per interval, as the SDK's default
    router keeps only online endpoints (Azure/azure-signalr
    src/Microsoft.Azure.SignalR.Common/EndpointRouters/DefaultMessageRouter.cs); a healthy
    check brings it back."""
    first, second = pair
    caplog.set_level(logging.WARNING, logger="app.services.signalr")
    second.responder = lambda request: Reply(503)
    async with SignalRService.open(two_endpoint_settings(first, second)) as service:
        assert await service.is_healthy() is True
        assert service.endpoints.is_online(1) is False
        second.requests.clear()
        await service.send_to_all("chat", "t", [])
        await service.send_to_group("chat", "g", "t", [])
        await service.add_connection_to_group("chat", "g", "c")
        await service.add_user_to_group("chat", "g", "u")
        assert await service.user_exists("chat", "u") is True
        await service.close_connection("chat", "c")
        assert second.requests == []
        assert len(first.requests) == 1 + 6  # its health check, then the six calls
        warnings = skip_warnings(caplog)
        assert len(warnings) == 1
        assert "POST /api/hubs/chat/:send skipped endpoint west" in warnings[0]
        second.responder = None
        assert await service.is_healthy() is True
        await service.send_to_all("chat", "t", [])
    assert [r.raw_path for r in second.requests] == ["/api/health", "/api/hubs/chat/:send"]


async def test_a_send_fails_only_when_no_endpoint_accepted_it(
    pair: tuple[RecordingServer, RecordingServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A send one endpoint accepted returns normally, logging the partial delivery and
    marking the failed endpoint offline (no 503 inviting a duplicating retry); when every
    endpoint fails, the send raises."""
    first, second = pair
    caplog.set_level(logging.WARNING, logger="app.services.signalr")
    second.responder = lambda request: Reply(503)
    async with SignalRService.open(two_endpoint_settings(first, second)) as service:
        await service.send_to_all("chat", "t", [])
        assert [r.getMessage() for r in caplog.records if "partial delivery" in r.getMessage()]
        assert service.endpoints.is_online(1) is False
        assert service.endpoints.is_online(0) is True
        assert len(first.requests) == 1
        first.responder = lambda request: Reply(503)
        with pytest.raises(ServiceUnavailableError):
            await service.send_to_all("chat", "t", [])
        # Neither endpoint is online now: both are tried again, and the send fails.
        with pytest.raises(ServiceUnavailableError, match="2 of 2 endpoints failed"):
            await service.send_to_all("chat", "t", [])


async def test_a_group_call_fails_when_an_online_endpoint_fails(
    pair: tuple[RecordingServer, RecordingServer],
) -> None:
    """Group, user and close calls fail when any endpoint they went to failed, as the SDK's
    multi-endpoint writer does (Azure/azure-signalr
    src/Microsoft.Azure.SignalR.Common/ServiceConnections/MultiEndpointMessageWriter.cs)."""
    first, second = pair
    second.responder = lambda request: Reply(503)
    async with SignalRService.open(two_endpoint_settings(first, second)) as service:
        with pytest.raises(ServiceUnavailableError, match="1 of 2 endpoints failed"):
            await service.add_user_to_group("chat", "g", "u")
    assert len(first.requests) == 1


async def test_negotiate_falls_back_to_a_healthy_secondary(
    pair: tuple[RecordingServer, RecordingServer],
) -> None:
    """negotiate_endpoint picks the primary; when its health check fails, the secondary."""
    first, second = pair
    async with SignalRService.open(two_endpoint_settings(first, second)) as service:
        assert await service.is_healthy() is True
        assert service.negotiate_endpoint().name == "east"
        first.responder = lambda request: Reply(503)
        assert await service.is_healthy() is True  # the secondary still answers
        assert service.negotiate_endpoint().name == "west"
        first.responder = None
        await service.is_healthy()
        assert service.negotiate_endpoint().name == "east"


async def test_health_is_checked_in_the_background(
    pair: tuple[RecordingServer, RecordingServer],
) -> None:
    """With several endpoints, each is health-checked every health_check_interval seconds."""
    import asyncio

    first, second = pair
    settings = two_endpoint_settings(first, second, health_check_interval=0.05)
    async with SignalRService.open(settings), asyncio.timeout(20):
        while True:
            if len(first.requests) >= 2 and len(second.requests) >= 2:
                break
            await asyncio.sleep(0.02)
    assert {r.raw_path for r in first.requests + second.requests} == {"/api/health"}
    assert len(first.requests) >= 2


def test_negotiate_choice_without_io() -> None:
    """Random online primary; else online secondary; else a primary anyway."""
    base = "Endpoint=http://{};AccessKey=k;Version=1.0;"
    import dataclasses

    endpoints = [
        dataclasses.replace(parse_connection_string(base.format("p1")), name="p1"),
        dataclasses.replace(parse_connection_string(base.format("p2")), name="p2"),
        dataclasses.replace(parse_connection_string(base.format("s1")), name="s1", primary=False),
    ]
    endpoint_set = EndpointSet(endpoints, rng=random.Random(1))
    assert {endpoint_set.negotiate_endpoint().name for _ in range(50)} == {"p1", "p2"}
    endpoint_set.record(0, online=False)
    assert {endpoint_set.negotiate_endpoint().name for _ in range(20)} == {"p2"}
    endpoint_set.record(1, online=False)
    assert endpoint_set.negotiate_endpoint().name == "s1"
    endpoint_set.record(2, online=False)
    assert endpoint_set.negotiate_endpoint().name in {"p1", "p2"}
    with pytest.raises(ConfigurationError):
        EndpointSet([])
