"""SignalRService on the wire: paths, queries, tokens and bodies at a real recording server."""

from __future__ import annotations

import json
import platform
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

import httpx
import pytest

from app import __version__
from app.services.signalr import (
    ASRS_USER_AGENT,
    TOKEN_CACHE_SIZE,
    AiohttpTransport,
    SignalRService,
)
from signalr_protocol.errors import InvalidNameError
from signalr_protocol.tokens import verify_token
from tests.support.outbound_kit import (
    KEY,
    RecordingServer,
    recording_server,
    settings_for,
)

pytestmark = pytest.mark.anyio

HOSTILE_NAMES = [
    "a/../b",
    "g 1",
    "%",
    "?#",
    "%2F",
    "emoji \U0001f600 \u00e9",
    "a+b&c=d;e",
    "x" * 1024,
]


@pytest.fixture
async def server() -> AsyncIterator[RecordingServer]:
    async with recording_server() as server:
        yield server


@pytest.fixture
async def service(server: RecordingServer) -> AsyncIterator[SignalRService]:
    async with SignalRService.open(settings_for(server.base_url)) as service:
        yield service


def only(server: RecordingServer) -> Any:
    assert len(server.requests) == 1, server.requests
    return server.requests[0]


async def test_send_to_all_request_shape(server: RecordingServer, service: SignalRService) -> None:
    """A broadcast is POST /api/hubs/{hub}/:send?api-version=2022-06-01 with a JSON body."""
    await service.send_to_all("chat", "newMessage", [{"text": "hi"}, 2])
    request = only(server)
    assert request.method == "POST"
    assert request.raw_path == "/api/hubs/chat/:send"
    assert request.query == "api-version=2022-06-01"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert json.loads(request.body) == {"target": "newMessage", "arguments": [{"text": "hi"}, 2]}


async def test_every_call_carries_an_sdk_shaped_asrs_user_agent(
    server: RecordingServer, service: SignalRService
) -> None:
    """Sends, group calls, existence checks and health checks carry Asrs-User-Agent as
    product/version (runtime; os; arch), the shape of the SDK's ProductInfo.GetProductInfo
    (Azure/azure-signalr src/Microsoft.Azure.SignalR.Common/Utilities/ProductInfo.cs; sent by
    src/Microsoft.Azure.SignalR.Management/DependencyInjectionExtensions.cs)."""
    await service.send_to_all("chat", "t", [])
    await service.add_user_to_group("chat", "g", "u")
    await service.group_exists("chat", "g")
    await service.is_healthy()
    values = {r.headers.get("asrs-user-agent") for r in server.requests}
    assert values == {ASRS_USER_AGENT}
    match = re.fullmatch(
        r"serverless-signalr/([^ ]+) \(([^;]+); ([^;]+); ([^;]+)\)", ASRS_USER_AGENT
    )
    assert match is not None, ASRS_USER_AGENT
    assert match[1] == __version__
    assert match[2] == f"{platform.python_implementation()} {platform.python_version()}"
    assert match[3].startswith(platform.system())
    assert match[4] == platform.machine()
    assert {r.headers.get("user-agent") for r in server.requests} == {
        f"serverless-signalr/{__version__}"
    }


async def test_token_audience_is_the_sdk_one(
    server: RecordingServer, service: SignalRService
) -> None:
    """The REST token's aud is the port-less base, the path and ?api-version, as the .NET SDK."""
    await service.send_to_all("Chat", "t", [])
    request = only(server)
    claims = verify_token(request.token, [KEY], audience=None)
    assert claims["aud"] == "http://127.0.0.1/api/hubs/chat/:send?api-version=2022-06-01"
    assert claims["exp"] - claims["iat"] == 3600
    assert ":" not in claims["aud"].removeprefix("http://").split("/")[0]


async def test_excluded_are_in_the_query_but_not_in_aud(
    server: RecordingServer, service: SignalRService
) -> None:
    """excluded connection ids are repeated query parameters added after the token is made."""
    await service.send_to_group("chat", "room", "t", [], excluded=["c1", "c 2/x"])
    request = only(server)
    assert request.raw_path == "/api/hubs/chat/groups/room/:send"
    assert parse_qsl(request.query) == [
        ("api-version", "2022-06-01"),
        ("excluded", "c1"),
        ("excluded", "c 2/x"),
    ]
    assert request.claims()["aud"] == (
        "http://127.0.0.1/api/hubs/chat/groups/room/:send?api-version=2022-06-01"
    )


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n[:12]))
async def test_hostile_group_names_stay_in_their_segment(
    server: RecordingServer, service: SignalRService, name: str
) -> None:
    """Every character of a group name is percent-encoded, so it can't change the path."""
    await service.send_to_group("chat", name, "t", [])
    request = only(server)
    assert request.raw_path == f"/api/hubs/chat/groups/{quote(name, safe='')}/:send"
    segments = request.raw_path.split("/")
    assert segments[:5] == ["", "api", "hubs", "chat", "groups"]
    assert segments[6:] == [":send"]
    assert unquote(segments[5]) == name
    assert request.query == "api-version=2022-06-01"
    assert request.claims()["aud"] == (f"http://127.0.0.1{request.raw_path}?api-version=2022-06-01")


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n[:12]))
async def test_hostile_user_ids_stay_in_their_segment(
    server: RecordingServer, service: SignalRService, name: str
) -> None:
    """User ids are encoded the same way, in user sends and user-group membership."""
    await service.add_user_to_group("chat", name, name)
    request = only(server)
    encoded = quote(name, safe="")
    assert request.method == "PUT"
    assert request.raw_path == f"/api/hubs/chat/users/{encoded}/groups/{encoded}"


@pytest.mark.parametrize("name", [".", ".."])
async def test_dot_segments_are_refused(
    server: RecordingServer, service: SignalRService, name: str
) -> None:
    """'.' and '..' would be collapsed by URL normalisation, so they are refused unsent."""
    with pytest.raises(InvalidNameError, match="normalisation"):
        await service.send_to_group("chat", name, "t", [])
    with pytest.raises(InvalidNameError):
        await service.send_to_user("chat", name, "t", [])
    assert server.requests == []


@pytest.mark.parametrize("hub", ["", "1chat", "chat/x", "a" * 129, "chat room"])
async def test_invalid_hub_names_are_refused_before_sending(
    server: RecordingServer, service: SignalRService, hub: str
) -> None:
    """Hub names are validated with the service's rule before any request."""
    with pytest.raises(InvalidNameError, match="hub name"):
        await service.send_to_all(hub, "t", [])
    assert server.requests == []


async def test_invalid_names_in_a_fan_out_send_nothing(
    server: RecordingServer, service: SignalRService
) -> None:
    """One invalid user id in send_to_users means no user gets the message."""
    with pytest.raises(InvalidNameError):
        await service.send_to_users("chat", ["ok", ""], "t", [])
    assert server.requests == []


async def test_api_version_is_a_setting(server: RecordingServer) -> None:
    """SIGNALR_API_VERSION changes the query parameter and the audience alike."""
    settings = settings_for(server.base_url, api_version="2024-12-01")
    async with SignalRService.open(settings) as service:
        await service.send_to_all("chat", "t", [])
    request = only(server)
    assert request.query == "api-version=2024-12-01"
    assert request.claims()["aud"].endswith("/api/hubs/chat/:send?api-version=2024-12-01")


Call = Callable[[SignalRService], Awaitable[Any]]
OPERATIONS: list[tuple[str, Call, str, str, list[tuple[str, str]]]] = [
    (
        "user send",
        lambda s: s.send_to_user("chat", "u1", "t", []),
        "POST",
        "/api/hubs/chat/users/u1/:send",
        [],
    ),
    (
        "connection send",
        lambda s: s.send_to_connection("chat", "c1", "t", []),
        "POST",
        "/api/hubs/chat/connections/c1/:send",
        [],
    ),
    (
        "add connection",
        lambda s: s.add_connection_to_group("chat", "g", "c1"),
        "PUT",
        "/api/hubs/chat/groups/g/connections/c1",
        [],
    ),
    (
        "remove connection",
        lambda s: s.remove_connection_from_group("chat", "g", "c1"),
        "DELETE",
        "/api/hubs/chat/groups/g/connections/c1",
        [],
    ),
    (
        "connection leaves all",
        lambda s: s.remove_connection_from_all_groups("chat", "c1"),
        "DELETE",
        "/api/hubs/chat/connections/c1/groups",
        [],
    ),
    (
        "add user ttl",
        lambda s: s.add_user_to_group("chat", "g", "u1", ttl=2.5),
        "PUT",
        "/api/hubs/chat/users/u1/groups/g",
        [("ttl", "3")],
    ),
    (
        "remove user",
        lambda s: s.remove_user_from_group("chat", "g", "u1"),
        "DELETE",
        "/api/hubs/chat/users/u1/groups/g",
        [],
    ),
    (
        "user leaves all",
        lambda s: s.remove_user_from_all_groups("chat", "u1"),
        "DELETE",
        "/api/hubs/chat/users/u1/groups",
        [],
    ),
    (
        "close one",
        lambda s: s.close_connection("chat", "c1", reason="bye now"),
        "DELETE",
        "/api/hubs/chat/connections/c1",
        [("reason", "bye now")],
    ),
    (
        "close all",
        lambda s: s.close_all_connections("chat", excluded=["c9"], reason="r"),
        "POST",
        "/api/hubs/chat/:closeConnections",
        [("excluded", "c9"), ("reason", "r")],
    ),
    (
        "close group",
        lambda s: s.close_group_connections("chat", "g", reason="r"),
        "POST",
        "/api/hubs/chat/groups/g/:closeConnections",
        [("reason", "r")],
    ),
    (
        "close user",
        lambda s: s.close_user_connections("chat", "u1", excluded=["c2"]),
        "POST",
        "/api/hubs/chat/users/u1/:closeConnections",
        [("excluded", "c2")],
    ),
    (
        "connection exists",
        lambda s: s.connection_exists("chat", "c1"),
        "HEAD",
        "/api/hubs/chat/connections/c1",
        [],
    ),
    ("user exists", lambda s: s.user_exists("chat", "u1"), "HEAD", "/api/hubs/chat/users/u1", []),
    ("group exists", lambda s: s.group_exists("chat", "g"), "HEAD", "/api/hubs/chat/groups/g", []),
    (
        "user in group",
        lambda s: s.user_in_group("chat", "g", "u1"),
        "HEAD",
        "/api/hubs/chat/users/u1/groups/g",
        [],
    ),
    ("health", lambda s: s.is_healthy(), "HEAD", "/api/health", []),
]


@pytest.mark.parametrize(
    ("call", "method", "path", "extra"),
    [op[1:] for op in OPERATIONS],
    ids=[op[0] for op in OPERATIONS],
)
async def test_every_operation_uses_the_documented_route(
    server: RecordingServer,
    service: SignalRService,
    call: Call,
    method: str,
    path: str,
    extra: list[tuple[str, str]],
) -> None:
    """Each data-plane operation uses docs/protocol.md §5.2's method, path and query."""
    await call(service)
    request = only(server)
    assert (request.method, request.raw_path) == (method, path)
    assert parse_qsl(request.query) == [("api-version", "2022-06-01"), *extra]
    assert request.claims()["aud"] == f"http://127.0.0.1{path}?api-version=2022-06-01"
    if not path.endswith("/:send"):
        assert request.body == b""
        assert "content-type" not in request.headers


async def test_fan_out_sends_once_per_distinct_target(
    server: RecordingServer, service: SignalRService
) -> None:
    """send_to_users / groups / connections make one call per distinct name, same body."""
    await service.send_to_users("chat", ["a", "b", "a"], "t", [1])
    await service.send_to_groups("chat", ["g1", "g2"], "t", [1], excluded=["x"])
    await service.send_to_connections("chat", ["c1"], "t", [1])
    await service.send_to_users("chat", [], "t", [1])
    seen = sorted((r.raw_path, r.query) for r in server.requests)
    assert seen == [
        ("/api/hubs/chat/connections/c1/:send", "api-version=2022-06-01"),
        ("/api/hubs/chat/groups/g1/:send", "api-version=2022-06-01&excluded=x"),
        ("/api/hubs/chat/groups/g2/:send", "api-version=2022-06-01&excluded=x"),
        ("/api/hubs/chat/users/a/:send", "api-version=2022-06-01"),
        ("/api/hubs/chat/users/b/:send", "api-version=2022-06-01"),
    ]
    assert {r.body for r in server.requests} == {b'{"target":"t","arguments":[1]}'}


async def test_arguments_must_be_a_json_list(
    server: RecordingServer, service: SignalRService
) -> None:
    """A bare string or an unserialisable argument (NaN too) is refused before anything is sent."""
    with pytest.raises(TypeError, match="list"):
        await service.send_to_all("chat", "t", "hello")
    with pytest.raises(TypeError, match="not JSON serializable"):
        await service.send_to_all("chat", "t", [object()])
    with pytest.raises(TypeError, match="not JSON serializable"):
        await service.send_to_all("chat", "t", [float("nan")])
    with pytest.raises(InvalidNameError, match="target"):
        await service.send_to_all("chat", "", [])
    assert server.requests == []


async def test_common_python_types_are_encoded(
    server: RecordingServer, service: SignalRService
) -> None:
    """datetimes, UUIDs, bytes and sets become ISO text, text, base64 and lists."""
    import datetime
    import uuid

    when = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
    ident = uuid.UUID(int=1)
    await service.send_to_all("chat", "t", [when, ident, b"\x00\x01", {7}])
    assert json.loads(only(server).body)["arguments"] == [
        "2024-01-02T03:04:05+00:00",
        str(ident),
        "AAE=",
        [7],
    ]


async def test_tokens_are_cached_per_audience_until_near_expiry(server: RecordingServer) -> None:
    """The same path reuses its token; another path gets its own; a stale one is replaced."""
    now = [1_700_000_000.0]
    settings = settings_for(server.base_url)
    async with httpx.AsyncClient(transport=AiohttpTransport()) as client:
        service = SignalRService(settings, client, clock=lambda: now[0])
        await service.send_to_all("chat", "t", [])
        await service.send_to_all("chat", "t", [], excluded=["x"])
        await service.send_to_user("chat", "u", "t", [])
        now[0] += 3600 - 301  # still more than the 5-minute margin left
        await service.send_to_all("chat", "t", [])
        now[0] += 2  # inside the margin: a fresh token
        await service.send_to_all("chat", "t", [])
    tokens = [r.token for r in server.requests]
    assert tokens[0] == tokens[1] == tokens[3]
    assert tokens[2] != tokens[0]
    assert tokens[4] != tokens[0]
    fresh = verify_token(tokens[4], [KEY], audience=None, leeway=10**9)
    assert fresh["iat"] == int(now[0])


async def test_token_cache_is_bounded(server: RecordingServer) -> None:
    """More distinct paths than the caches hold keep the token and URL caches at their bound."""
    settings = settings_for(server.base_url)
    async with httpx.AsyncClient(transport=AiohttpTransport()) as client:
        service = SignalRService(settings, client)
        for index in range(TOKEN_CACHE_SIZE + 5):
            path = f"/api/hubs/chat/users/u{index}/:send?api-version=x"
            service._prepare(0, path, server.base_url + path, True)
        assert len(service._tokens) == TOKEN_CACHE_SIZE
        assert len(service._prepared) == TOKEN_CACHE_SIZE


async def test_generate_client_token_is_a_client_token(service: SignalRService) -> None:
    """generate_client_token mints the negotiate kind of token: client aud, user id, lifetime."""
    token = await service.generate_client_token("Chat", user_id="alice", minutes_to_expire=5)
    claims = verify_token(token, [KEY], audience=None)
    assert claims["aud"] == "http://127.0.0.1/client/?hub=chat"
    assert claims["asrs.s.uid"] == "alice"
    assert "nameid" not in claims
    assert claims["exp"] - claims["iat"] == 300
    with pytest.raises(ValueError, match="minutes_to_expire"):
        await service.generate_client_token("chat", minutes_to_expire=0)


async def test_hub_names_with_punctuation_are_encoded_and_lower_cased(
    server: RecordingServer, service: SignalRService
) -> None:
    """Hub names may hold , . [ ] and a backtick: they are lower-cased and percent-encoded."""
    await service.send_to_all("Chat.v2[1],`x`", "t", [])
    request = only(server)
    assert request.raw_path == "/api/hubs/chat.v2%5B1%5D%2C%60x%60/:send"
    assert request.claims()["aud"] == (
        "http://127.0.0.1/api/hubs/chat.v2%5B1%5D%2C%60x%60/:send?api-version=2022-06-01"
    )
