"""Every call of the REST client is an operation of Microsoft's OpenAPI description.

The client runs each of its data-plane operations against a recording server; each request
it made must match a path template and HTTP method of the OpenAPI file of the
``api-version`` it sent (``tests/data/signalr-rest``: Microsoft's files for 2022-06-01,
2023-07-01 and 2024-12-01), with every name kept to one percent-encoded path segment.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from app.services.signalr import SignalRService
from tests.support.outbound_kit import Recorded, Reply, recording_server, settings_for

pytestmark = pytest.mark.anyio

SPECS = Path(__file__).resolve().parents[2] / "data" / "signalr-rest"
SPEC_FILES = {
    "2022-06-01": "V20220601.json",
    "2023-07-01": "V20230701.json",
    "2024-12-01": "v20241201.json",
}
# Names with characters that must be percent-encoded, so a template segment must match
# exactly one encoded segment.
HUB, GROUP, USER, CONNECTION = "chat", "a/b c", "u/1?x", "c#1"

Call = Callable[[SignalRService], Awaitable[Any]]
CALLS: dict[str, Call] = {
    "send_to_all": lambda s: s.send_to_all(HUB, "t", [1], excluded=["x"]),
    "send_to_user": lambda s: s.send_to_user(HUB, USER, "t", [1]),
    "send_to_users": lambda s: s.send_to_users(HUB, [USER, "v"], "t", [1]),
    "send_to_group": lambda s: s.send_to_group(HUB, GROUP, "t", [1], excluded=["x"]),
    "send_to_groups": lambda s: s.send_to_groups(HUB, [GROUP, "g2"], "t", [1]),
    "send_to_connection": lambda s: s.send_to_connection(HUB, CONNECTION, "t", [1]),
    "send_to_connections": lambda s: s.send_to_connections(HUB, [CONNECTION, "c2"], "t", [1]),
    "add_connection_to_group": lambda s: s.add_connection_to_group(HUB, GROUP, CONNECTION),
    "remove_connection_from_group": lambda s: s.remove_connection_from_group(
        HUB, GROUP, CONNECTION
    ),
    "remove_connection_from_all_groups": lambda s: s.remove_connection_from_all_groups(
        HUB, CONNECTION
    ),
    "add_user_to_group": lambda s: s.add_user_to_group(HUB, GROUP, USER, ttl=60),
    "remove_user_from_group": lambda s: s.remove_user_from_group(HUB, GROUP, USER),
    "remove_user_from_all_groups": lambda s: s.remove_user_from_all_groups(HUB, USER),
    "close_connection": lambda s: s.close_connection(HUB, CONNECTION, reason="bye"),
    "close_all_connections": lambda s: s.close_all_connections(HUB, excluded=["x"]),
    "close_group_connections": lambda s: s.close_group_connections(HUB, GROUP, reason="r"),
    "close_user_connections": lambda s: s.close_user_connections(HUB, USER, excluded=["x"]),
    "connection_exists": lambda s: s.connection_exists(HUB, CONNECTION),
    "user_exists": lambda s: s.user_exists(HUB, USER),
    "group_exists": lambda s: s.group_exists(HUB, GROUP),
    "user_in_group": lambda s: s.user_in_group(HUB, GROUP, USER),
    "list_group_connections": lambda s: s.list_group_connections(HUB, GROUP, top=5),
}
# Public coroutine methods that make no data-plane call of their own.
NOT_DATA_PLANE = {"aclose", "generate_client_token", "is_healthy", "open", "signing_key"}


def _paged(request: Recorded) -> Reply | None:
    """List answers: a first page whose ``nextLink`` asks for a second, then the last page,
    so the request that follows a ``nextLink`` is checked against the spec too."""
    if request.method != "GET" or not request.raw_path.endswith("/connections"):
        return None
    first = "continuationToken" not in request.query
    page: dict[str, Any] = {"value": [{"connectionId": "c1" if first else "c2"}]}
    if first:
        page["nextLink"] = (
            f"http://example.invalid{request.raw_path}?{request.query}&continuationToken=Mg"
        )
    return Reply(200, {"content-type": "application/json"}, json.dumps(page).encode())


def _operations(version: str) -> list[tuple[re.Pattern[str], set[str]]]:
    spec = json.loads((SPECS / SPEC_FILES[version]).read_text(encoding="utf-8"))
    operations = []
    for template, item in spec["paths"].items():
        pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        methods = {method.upper() for method in item if method != "parameters"}
        operations.append((re.compile(pattern + "$"), methods))
    return operations


def _described(request: Recorded) -> bool:
    versions = parse_qs(request.query).get("api-version", [])
    assert len(versions) == 1, f"{request.method} {request.raw_path}?{request.query}"
    return any(
        pattern.match(request.raw_path) and request.method in methods
        for pattern, methods in _operations(versions[0])
    )


def test_every_data_plane_method_is_walked() -> None:
    """The walk below covers every public data-plane method of the client."""
    public = {
        name
        for name, member in inspect.getmembers(SignalRService, inspect.iscoroutinefunction)
        if not name.startswith("_")
    }
    assert public - NOT_DATA_PLANE == set(CALLS)


@pytest.mark.parametrize("operation", sorted(CALLS))
async def test_rest_call_is_an_operation_of_the_openapi_file(operation: str) -> None:
    """Each request of one client operation is a path and method the OpenAPI file lists."""
    async with recording_server() as server:
        server.responder = _paged
        async with SignalRService.open(settings_for(server.base_url)) as service:
            await CALLS[operation](service)
    data_plane = [r for r in server.requests if r.raw_path.startswith("/api/hubs/")]
    assert data_plane, f"{operation} made no data-plane request"
    for request in data_plane:
        assert _described(request), f"{request.method} {request.raw_path} is not in the spec"


def test_an_undescribed_path_is_caught() -> None:
    """The matcher refuses a path that is not in the spec and a segment holding a raw '/'."""
    made_up = Recorded("POST", "/api/hubs/chat/everyone/:send", "api-version=2022-06-01", {}, b"")
    two_segments = Recorded(
        "PUT", "/api/hubs/chat/groups/a/b/connections/c", "api-version=2022-06-01", {}, b""
    )
    good = Recorded(
        "PUT", "/api/hubs/chat/groups/a%2Fb/connections/c", "api-version=2022-06-01", {}, b""
    )
    assert not _described(made_up)
    assert not _described(two_segments)
    assert _described(good)
