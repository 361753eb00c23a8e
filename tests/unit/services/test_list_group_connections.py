"""SignalRService.list_group_connections at a recording server: paging, bounds and errors.

The operation is ``GET /api/hubs/{hub}/groups/{group}/connections`` of api-version
2024-12-01 (``tests/data/signalr-rest/v20241201.json``,
``HubProxyV20241201_ListConnectionsInGroup``): ``maxpagesize`` 1..200, ``top``,
``continuationToken``, and a ``GroupMemberPagedValues`` answer ``{"value": [{"connectionId",
"userId"?}], "nextLink"?}`` whose ``nextLink`` is an absolute URL.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, quote

import pytest

from app.exceptions import (
    ServiceBadRequestError,
    ServiceError,
    ServiceNotFoundError,
    ServiceThrottledError,
    ServiceUnauthorizedError,
    ServiceUnavailableError,
)
from app.hub import GroupMember
from app.services.signalr import SignalRService
from app.settings import Settings
from signalr_protocol.errors import InvalidNameError
from tests.support.outbound_kit import (
    Recorded,
    RecordingServer,
    Reply,
    connection_string,
    recording_server,
    settings_for,
)

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}


@pytest.fixture
async def server() -> AsyncIterator[RecordingServer]:
    async with recording_server() as server:
        yield server


def page(members: list[dict[str, Any]], next_link: str | None = None) -> Reply:
    body: dict[str, Any] = {"value": members}
    if next_link is not None:
        body["nextLink"] = next_link
    return Reply(200, JSON, json.dumps(body).encode())


def query(request: Recorded) -> dict[str, list[str]]:
    return parse_qs(request.query, keep_blank_values=True)


def pager(members: list[dict[str, Any]], *, link_host: str) -> Any:
    """A responder serving ``members`` as the service does: ``maxpagesize`` per page, at most
    ``top`` in all, the next page's offset in ``continuationToken`` of an absolute nextLink."""

    def respond(request: Recorded) -> Reply | None:
        if request.method != "GET":
            return None
        q = query(request)
        size = int(q.get("maxpagesize", ["200"])[0])
        top = int(q["top"][0]) if "top" in q else len(members)
        start = int(q.get("continuationToken", ["0"])[0])
        end = min(len(members), top)
        stop = min(end, start + size)
        link = None
        if stop < end:
            rest = [f"{k}={quote(v[0])}" for k, v in q.items() if k != "continuationToken"]
            link = f"{link_host}{request.raw_path}?{'&'.join(rest)}&continuationToken={stop}"
        return page(members[start:stop], link)

    return respond


MEMBERS = [{"connectionId": f"c{i}", "userId": f"u{i}"} for i in range(7)] + [
    {"connectionId": "anon"}
]


async def test_pages_are_followed_to_the_end(server: RecordingServer) -> None:
    """Every nextLink is followed: 8 members at 3 a page arrive in 3 requests, in order."""
    server.responder = pager(MEMBERS, link_host="https://other.invalid")
    async with SignalRService.open(settings_for(server.base_url)) as service:
        members = await service.list_group_connections("Chat", "a/b c", page_size=3)
    assert members == [GroupMember(f"c{i}", f"u{i}") for i in range(7)] + [GroupMember("anon")]
    assert len(server.requests) == 3
    for request in server.requests:
        # The hub is lower-cased, the group one percent-encoded segment, and the nextLink's
        # host (another one here) is not where the token goes: every page came here.
        assert request.raw_path == "/api/hubs/chat/groups/a%2Fb%20c/connections"
        assert query(request)["api-version"] == ["2024-12-01"]
        assert query(request)["maxpagesize"] == ["3"]
        assert request.claims()["aud"].endswith(
            "/api/hubs/chat/groups/a%2Fb%20c/connections?api-version=2024-12-01"
        )
    assert "continuationToken" not in query(server.requests[0])
    assert [query(r)["continuationToken"] for r in server.requests[1:]] == [["3"], ["6"]]


async def test_top_bounds_the_result_and_the_pages(server: RecordingServer) -> None:
    """``top`` is sent as ``top`` (and caps ``maxpagesize``); no more members come back."""
    server.responder = pager(MEMBERS, link_host=server.base_url)
    async with SignalRService.open(settings_for(server.base_url)) as service:
        members = await service.list_group_connections("chat", "g", top=5, page_size=2)
        assert [m.connection_id for m in members] == ["c0", "c1", "c2", "c3", "c4"]
        assert [query(r)["top"] for r in server.requests] == [["5"]] * 3
        server.requests.clear()
        assert len(await service.list_group_connections("chat", "g", top=1)) == 1
        assert query(server.requests[0])["maxpagesize"] == ["1"]


async def test_a_service_that_sends_more_than_top_is_cut(server: RecordingServer) -> None:
    """Members beyond ``top`` are dropped even if the answer carries them."""
    server.replies = [page(MEMBERS)]
    async with SignalRService.open(settings_for(server.base_url)) as service:
        assert len(await service.list_group_connections("chat", "g", top=2)) == 2


async def test_an_empty_group_is_an_empty_list(server: RecordingServer) -> None:
    """``{"value": []}`` (the service's answer for a group nobody is in) is ``[]``."""
    server.replies = [page([])]
    async with SignalRService.open(settings_for(server.base_url)) as service:
        assert await service.list_group_connections("chat", "nobody") == []
    assert query(server.requests[0])["maxpagesize"] == ["200"]
    assert "top" not in query(server.requests[0])


async def test_a_newer_api_version_setting_is_kept(server: RecordingServer) -> None:
    """Listing needs 2024-12-01; a newer SIGNALR_API_VERSION is used as it is."""
    server.replies = [page([])]
    settings = settings_for(server.base_url, api_version="2025-06-01")
    async with SignalRService.open(settings) as service:
        await service.list_group_connections("chat", "g")
    assert query(server.requests[0])["api-version"] == ["2025-06-01"]


@pytest.mark.parametrize(
    ("status", "error_type"),
    [
        (400, ServiceBadRequestError),
        (401, ServiceUnauthorizedError),
        (404, ServiceNotFoundError),
        (429, ServiceThrottledError),
        (503, ServiceUnavailableError),
    ],
)
async def test_errors_map_as_every_call(
    server: RecordingServer, status: int, error_type: type[ServiceError]
) -> None:
    """A failing answer raises the typed error of the tree, with status and error code."""
    server.replies = [Reply(status, {"x-ms-error-code": "Error.Test"})]
    async with SignalRService.open(settings_for(server.base_url, retry_max_attempts=1)) as service:
        with pytest.raises(error_type) as caught:
            await service.list_group_connections("chat", "g")
    assert caught.value.status_code == status
    assert caught.value.error_code == "Error.Test"


async def test_a_500_is_retried_like_other_reads(server: RecordingServer) -> None:
    """The listing is idempotent: a 500 is retried, then the page is read."""
    server.replies = [Reply(500), page([{"connectionId": "c1"}])]
    async with SignalRService.open(settings_for(server.base_url)) as service:
        assert await service.list_group_connections("chat", "g") == [GroupMember("c1")]
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[" * 10_000,
        b"[]",
        b'{"value": {}}',
        b'{"value": [{"userId": "u"}]}',
        b'{"value": [{"connectionId": ""}]}',
        b'{"value": [{"connectionId": "c", "userId": 7}]}',
        b'{"value": [], "nextLink": 3}',
        b'{"value": [], "nextLink": "http://[oops/next?continuationToken=1"}',
    ],
)
async def test_a_body_that_is_not_a_page_is_an_error(server: RecordingServer, body: bytes) -> None:
    """A 200 whose body is not a GroupMemberPagedValues raises a ServiceError saying so."""
    server.replies = [Reply(200, JSON, body)]
    async with SignalRService.open(settings_for(server.base_url)) as service:
        with pytest.raises(ServiceError, match="not a page of group members"):
            await service.list_group_connections("chat", "g")


async def test_a_nextlink_that_loops_is_an_error(server: RecordingServer) -> None:
    """A nextLink asking again for a page already read stops the listing with an error."""
    link = f"{server.base_url}/api/hubs/chat/groups/g/connections?api-version=2024-12-01"

    def respond(request: Recorded) -> Reply:
        return page([{"connectionId": "c"}], f"{link}&maxpagesize=200&continuationToken=x")

    server.responder = respond
    async with SignalRService.open(settings_for(server.base_url)) as service:
        with pytest.raises(ServiceError, match="repeats a page"):
            await service.list_group_connections("chat", "g")
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"top": 0}, "top must be"),
        ({"top": True}, "top must be"),
        ({"page_size": 0}, "page_size must be 1 to 200"),
        ({"page_size": 201}, "page_size must be 1 to 200"),
    ],
)
async def test_bad_bounds_are_refused_before_sending(
    server: RecordingServer, kwargs: dict[str, Any], message: str
) -> None:
    """``top`` below 1 and ``page_size`` outside 1..200 raise ValueError; nothing is sent."""
    async with SignalRService.open(settings_for(server.base_url)) as service:
        with pytest.raises(ValueError, match=message):
            await service.list_group_connections("chat", "g", **kwargs)
    assert server.requests == []


@pytest.mark.parametrize("group", ["", "..", "x" * 1025])
async def test_bad_group_names_are_refused_before_sending(
    server: RecordingServer, group: str
) -> None:
    """An empty, dot-segment or over-long group name is an InvalidNameError; nothing is sent."""
    async with SignalRService.open(settings_for(server.base_url)) as service:
        with pytest.raises(InvalidNameError):
            await service.list_group_connections("chat", group)
    assert server.requests == []


async def test_each_endpoint_is_asked_for_what_is_missing() -> None:
    """With two endpoints the members of both are listed, and ``top`` counts across them."""
    async with recording_server() as first, recording_server() as second:
        first.responder = pager(MEMBERS[:3], link_host=first.base_url)
        second.responder = pager(MEMBERS[3:], link_host=second.base_url)
        settings = Settings(
            endpoint_strings={
                "east": connection_string(first.base_url),
                "west": connection_string(second.base_url),
            },
            retry_delay=0.0,
            health_check_interval=60.0,
        )
        async with SignalRService.open(settings) as service:
            everyone = await service.list_group_connections("chat", "g", page_size=2)
            assert sorted(m.connection_id for m in everyone) == sorted(
                m["connectionId"] for m in MEMBERS
            )
            first.requests.clear()
            second.requests.clear()
            some = await service.list_group_connections("chat", "g", top=4)
            assert len(some) == 4
            asked = first.requests + second.requests
            assert sorted(query(r)["top"][0] for r in asked) == ["1", "4"]
