"""The gateway endpoints: key checks, body validation, receivers and per-item results."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.exceptions import GatewayAuthError
from app.main import create_app
from app.services.gateway import check_gateway_key
from tests.support.outbound_kit import (
    RecordingServer,
    Reply,
    recording_server,
    settings_for,
)

pytestmark = pytest.mark.anyio

KEYS = ["first-key", "second-key"]


@pytest.fixture
async def server() -> AsyncIterator[RecordingServer]:
    async with recording_server() as server:
        yield server


async def _client(server: RecordingServer, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for(server.base_url, **overrides))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


@pytest.fixture
async def client(server: RecordingServer) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(server, gateway_api_keys=KEYS, retry_max_attempts=1):
        yield client


HEADERS = {"x-functions-key": "second-key"}


async def test_no_keys_configured_refuses_and_says_how_to_configure(
    server: RecordingServer,
) -> None:
    """With GATEWAY_API_KEYS unset every call is 401, and the message names the setting."""
    async for client in _client(server):
        response = await client.post(
            "/api/hubs/chat/messages", json={"target": "t"}, headers=HEADERS
        )
    assert response.status_code == 401
    assert "GATEWAY_API_KEYS" in response.json()["error"]
    assert server.requests == []


@pytest.mark.parametrize(
    ("headers", "query"),
    [({}, ""), ({"x-functions-key": "wrong"}, ""), ({}, "?code=wrong"), ({}, "?code=")],
    ids=["missing", "wrong header", "wrong query", "empty query"],
)
async def test_missing_or_wrong_keys_are_refused(
    server: RecordingServer, client: httpx.AsyncClient, headers: dict[str, str], query: str
) -> None:
    """No key, or a key that is not configured, is a 401 and nothing is sent."""
    response = await client.post(
        f"/api/hubs/chat/messages{query}", json={"target": "t"}, headers=headers
    )
    assert response.status_code == 401
    assert response.json()["type"] == "GatewayAuthError"
    assert "wrong" not in response.text
    assert server.requests == []


@pytest.mark.parametrize(
    ("headers", "query"),
    [({"x-functions-key": "first-key"}, ""), ({}, "?code=second-key")],
    ids=["header", "query"],
)
async def test_a_configured_key_in_header_or_query_is_accepted(
    server: RecordingServer, client: httpx.AsyncClient, headers: dict[str, str], query: str
) -> None:
    """Either configured key works, as x-functions-key or as ?code=."""
    response = await client.post(
        f"/api/hubs/chat/messages{query}", json={"target": "t", "arguments": [1]}, headers=headers
    )
    assert response.status_code == 202
    assert response.json() == {
        "succeeded": 1,
        "failed": 0,
        "results": [
            {
                "index": 0,
                "status": 202,
                "error": None,
                "type": None,
                "serviceStatus": None,
                "serviceErrorCode": None,
            }
        ],
    }
    assert [r.raw_path for r in server.requests] == ["/api/hubs/chat/:send"]


def test_key_check_compares_every_key() -> None:
    """The key check accepts any configured key and refuses prefixes and empty keys."""
    check_gateway_key(["a-key", "b-key"], "b-key")
    for supplied in ("b-ke", "b-key ", "", None):
        with pytest.raises(GatewayAuthError):
            check_gateway_key(["a-key", "b-key"], supplied)
    with pytest.raises(GatewayAuthError, match="GATEWAY_API_KEYS"):
        check_gateway_key(["", ""], "x")


@pytest.mark.parametrize(
    ("message", "path", "query"),
    [
        ({"target": "t"}, "/api/hubs/chat/:send", "api-version=2022-06-01"),
        (
            {"target": "t", "excluded": ["c1"]},
            "/api/hubs/chat/:send",
            "api-version=2022-06-01&excluded=c1",
        ),
        (
            {"target": "t", "groupName": "g 1", "excluded": ["c1"]},
            "/api/hubs/chat/groups/g%201/:send",
            "api-version=2022-06-01&excluded=c1",
        ),
        ({"target": "t", "userId": "u/1"}, "/api/hubs/chat/users/u%2F1/:send", None),
        (
            {"target": "t", "connectionId": "c1", "userId": "u", "groupName": "g"},
            "/api/hubs/chat/connections/c1/:send",
            None,
        ),
        (
            {"target": "t", "userId": "u", "groupName": "g"},
            "/api/hubs/chat/users/u/:send",
            None,
        ),
        ({"Target": "t", "UserID": "u"}, "/api/hubs/chat/users/u/:send", None),
    ],
    ids=[
        "all",
        "all except",
        "group",
        "user",
        "connection first",
        "user before group",
        "case-insensitive keys",
    ],
)
async def test_message_receivers_follow_the_output_binding_rules(
    server: RecordingServer,
    client: httpx.AsyncClient,
    message: dict[str, Any],
    path: str,
    query: str | None,
) -> None:
    """The first of connectionId, userId, groupName picks the receivers; none means all."""
    response = await client.post("/api/hubs/Chat/messages", json=message, headers=HEADERS)
    assert response.status_code == 202, response.text
    request = server.requests[0]
    assert request.raw_path == path
    assert request.query == (query or "api-version=2022-06-01")
    assert json.loads(request.body) == {"target": "t", "arguments": []}


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"arguments": []}, ["body", "target"]),
        ({"target": ""}, ["body", "target"]),
        ({"target": "t", "group": "g"}, ["body", "group"]),
        ({"target": "t", "arguments": "x"}, ["body", "arguments"]),
        ({"target": "t", "userId": "u", "excluded": ["c"]}, ["body"]),
        ({"target": "t", "groupName": "x" * 1025}, ["body", "groupName"]),
        ([{"target": "t"}, {"target": 5}], ["body", 1, "target"]),
        ([{"target": "t"}, "nope"], ["body", 1]),
        ([], ["body"]),
        ("text", ["body"]),
    ],
    ids=[
        "no target",
        "empty target",
        "misspelt receiver",
        "arguments not a list",
        "excluded with user",
        "group too long",
        "bad batch item",
        "batch item not an object",
        "empty batch",
        "not an object",
    ],
)
async def test_invalid_message_bodies_are_422_and_nothing_is_sent(
    server: RecordingServer, client: httpx.AsyncClient, body: Any, location: list[Any]
) -> None:
    """Schema errors answer 422 with their location; a batch with one bad item sends none."""
    response = await client.post("/api/hubs/chat/messages", json=body, headers=HEADERS)
    assert response.status_code == 422, response.text
    assert location in [error["loc"] for error in response.json()["errors"]]
    assert server.requests == []


@pytest.mark.parametrize(
    ("content", "status"),
    [(b"{not json", 400), (b"", 400), (b"\xff\xfe", 400), (b"[" + b" " * 2_000_000 + b"]", 413)],
    ids=["not json", "empty", "not utf-8", "too large"],
)
async def test_unreadable_bodies_are_refused(
    server: RecordingServer, client: httpx.AsyncClient, content: bytes, status: int
) -> None:
    """A body that is not JSON is a 400; one over the size limit is a 413."""
    response = await client.post(
        "/api/hubs/chat/messages",
        content=content,
        headers={**HEADERS, "content-type": "application/json"},
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]
    assert server.requests == []


async def test_invalid_hub_name_is_400(server: RecordingServer, client: httpx.AsyncClient) -> None:
    """A hub name the service would refuse is a 400 before anything is sent."""
    response = await client.post("/api/hubs/9chat/messages", json={"target": "t"}, headers=HEADERS)
    assert response.status_code == 400
    assert "hub name" in response.json()["error"]
    assert server.requests == []


async def test_a_batch_is_applied_in_order(
    server: RecordingServer, client: httpx.AsyncClient
) -> None:
    """Array items are sent one after the other, in request order."""
    batch = [{"target": "t", "arguments": [n], "userId": f"u{n}"} for n in range(5)]
    response = await client.post("/api/hubs/chat/messages", json=batch, headers=HEADERS)
    assert response.status_code == 202
    assert [r["index"] for r in response.json()["results"]] == [0, 1, 2, 3, 4]
    assert [r.raw_path for r in server.requests] == [
        f"/api/hubs/chat/users/u{n}/:send" for n in range(5)
    ]


async def test_a_partly_failed_batch_is_207_with_per_item_errors(
    server: RecordingServer, client: httpx.AsyncClient
) -> None:
    """One failing item doesn't stop the others; the answer is 207 and names the failure."""
    server.responder = lambda request: (
        Reply(400, headers={"x-ms-error-code": "Error.Bad"})
        if "/users/bad/" in request.raw_path
        else None
    )
    batch = [
        {"target": "t", "userId": "good"},
        {"target": "t", "userId": "bad"},
        {"target": "t", "groupName": "g"},
    ]
    response = await client.post("/api/hubs/chat/messages", json=batch, headers=HEADERS)
    assert response.status_code == 207
    body = response.json()
    assert (body["succeeded"], body["failed"]) == (2, 1)
    failed = body["results"][1]
    assert failed["status"] == 502
    assert failed["serviceStatus"] == 400
    assert failed["serviceErrorCode"] == "Error.Bad"
    assert failed["type"] == "ServiceBadRequestError"
    assert [r["status"] for r in body["results"]] == [202, 502, 202]
    assert len(server.requests) == 3


async def test_failed_items_get_the_status_the_error_handler_would_answer(
    server: RecordingServer, client: httpx.AsyncClient
) -> None:
    """Per-item statuses: throttled 429, unavailable (5xx, 408) 503, other refusals 502."""
    statuses = {"a": 429, "b": 500, "c": 408, "d": 404, "e": 401}
    server.responder = lambda request: Reply(
        statuses[request.raw_path.split("/")[5]], headers={"x-ms-error-code": "E.Code"}
    )
    batch = [
        {"action": "add", "groupName": "g", "userId": user} for user in ("a", "b", "c", "d", "e")
    ]
    response = await client.post("/api/hubs/chat/groupActions", json=batch, headers=HEADERS)
    assert response.status_code == 207
    results = response.json()["results"]
    assert [r["status"] for r in results] == [429, 503, 503, 502, 502]
    assert [r["serviceStatus"] for r in results] == [429, 500, 408, 404, 401]
    assert {r["serviceErrorCode"] for r in results} == {"E.Code"}
    assert len(server.requests) == 5


async def test_a_single_failed_message_answers_the_error(
    server: RecordingServer, client: httpx.AsyncClient
) -> None:
    """A single object whose send fails gets the error's status (503 when unavailable)."""
    server.responder = lambda request: Reply(503)
    response = await client.post("/api/hubs/chat/messages", json={"target": "t"}, headers=HEADERS)
    assert response.status_code == 503
    assert response.json()["serviceStatus"] == 503


@pytest.mark.parametrize(
    ("action", "method", "path"),
    [
        (
            {"action": "add", "groupName": "g", "userId": "u"},
            "PUT",
            "/api/hubs/chat/users/u/groups/g",
        ),
        (
            {"action": "remove", "groupName": "g", "userId": "u"},
            "DELETE",
            "/api/hubs/chat/users/u/groups/g",
        ),
        (
            {"action": "add", "groupName": "g", "connectionId": "c", "userId": "u"},
            "PUT",
            "/api/hubs/chat/groups/g/connections/c",
        ),
        (
            {"action": "remove", "groupName": "g", "connectionId": "c"},
            "DELETE",
            "/api/hubs/chat/groups/g/connections/c",
        ),
        ({"action": "removeAll", "userId": "u"}, "DELETE", "/api/hubs/chat/users/u/groups"),
        (
            {"action": "removeAll", "connectionId": "c"},
            "DELETE",
            "/api/hubs/chat/connections/c/groups",
        ),
        ({"Action": "RemoveAll", "UserId": "u"}, "DELETE", "/api/hubs/chat/users/u/groups"),
    ],
    ids=[
        "add user",
        "remove user",
        "add connection",
        "remove connection",
        "user leaves all",
        "connection leaves all",
        "case-insensitive",
    ],
)
async def test_group_actions_use_the_right_rest_call(
    server: RecordingServer,
    client: httpx.AsyncClient,
    action: dict[str, Any],
    method: str,
    path: str,
) -> None:
    """Each group action becomes the SignalRGroupAction's REST call; the answer is 200."""
    response = await client.post("/api/hubs/chat/groupActions", json=action, headers=HEADERS)
    assert response.status_code == 200, response.text
    assert [(r.method, r.raw_path) for r in server.requests] == [(method, path)]


@pytest.mark.parametrize(
    "action",
    [
        {"action": "add", "userId": "u"},
        {"action": "remove", "groupName": "g"},
        {"action": "removeAll", "groupName": "g"},
        {"action": "join", "groupName": "g", "userId": "u"},
        {"groupName": "g", "userId": "u"},
    ],
    ids=[
        "add without group",
        "remove without member",
        "removeAll without member",
        "unknown",
        "no action",
    ],
)
async def test_incomplete_group_actions_are_422(
    server: RecordingServer, client: httpx.AsyncClient, action: dict[str, Any]
) -> None:
    """A group action missing what its kind needs is a 422 and nothing is applied."""
    response = await client.post(
        "/api/hubs/chat/groupActions",
        json=[{"action": "removeAll", "userId": "x"}, action],
        headers=HEADERS,
    )
    assert response.status_code == 422, response.text
    assert server.requests == []


async def test_group_actions_need_the_key_too(
    server: RecordingServer, client: httpx.AsyncClient
) -> None:
    """groupActions is guarded by the same key check."""
    response = await client.post(
        "/api/hubs/chat/groupActions", json={"action": "removeAll", "userId": "u"}
    )
    assert response.status_code == 401
    assert server.requests == []


# --- Form bodies: one item per request, from an HTML form or curl -F -------------------

CURL_BOUNDARY = "------------------------f4e032331a9d1126"


def _curl_form(*fields: tuple[str, str]) -> tuple[bytes, dict[str, str]]:
    """A multipart body byte for byte as curl 7.88 writes it for ``-F name=value ...``."""
    parts = b"".join(
        f'--{CURL_BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value.encode()
        + b"\r\n"
        for name, value in fields
    )
    body = parts + f"--{CURL_BOUNDARY}--\r\n".encode()
    return body, {**HEADERS, "content-type": f"multipart/form-data; boundary={CURL_BOUNDARY}"}


def _urlencoded(body: bytes) -> dict[str, Any]:
    return {
        "content": body,
        "headers": {**HEADERS, "content-type": "application/x-www-form-urlencoded"},
    }


async def test_a_curl_multipart_form_sends_one_message(
    server: RecordingServer, client: httpx.AsyncClient
) -> None:
    """`curl -F target=newMessage -F 'arguments=["a",1]'` sends that message to everyone."""
    body, headers = _curl_form(("target", "newMessage"), ("arguments", '["a", 1]'))
    response = await client.post("/api/hubs/chat/messages", content=body, headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["succeeded"] == 1
    [request] = server.requests
    assert request.raw_path == "/api/hubs/chat/:send"
    assert json.loads(request.body) == {"target": "newMessage", "arguments": ["a", 1]}


async def test_an_html_form_picks_receivers_and_repeats_excluded(
    server: RecordingServer, client: httpx.AsyncClient
) -> None:
    """URL-encoded fields pick the group; each repeated excluded field leaves one id out."""
    response = await client.post(
        "/api/hubs/chat/messages",
        data={
            "Target": "t",
            "arguments": '[{"text": "hi"}]',
            "groupName": "g 1",
            "excluded": ["c1", "c2"],
        },
        headers=HEADERS,
    )
    assert response.status_code == 202, response.text
    [request] = server.requests
    assert request.raw_path == "/api/hubs/chat/groups/g%201/:send"
    assert request.query == "api-version=2022-06-01&excluded=c1&excluded=c2"
    assert json.loads(request.body) == {"target": "t", "arguments": [{"text": "hi"}]}


@pytest.mark.parametrize(
    ("fields", "path", "arguments"),
    [
        ([("target", "t"), ("userId", "u/1")], "/api/hubs/chat/users/u%2F1/:send", []),
        (
            [("target", "t"), ("connectionId", "c1"), ("userId", "u")],
            "/api/hubs/chat/connections/c1/:send",
            [],
        ),
        ([("target", "t"), ("excluded", '["c1", "c2"]')], "/api/hubs/chat/:send", []),
        (
            [("target", "t"), ("arguments", '["\u00e9t\u00e9"]')],
            "/api/hubs/chat/:send",
            ["\u00e9t\u00e9"],
        ),
    ],
    ids=["user", "connection first", "excluded as a JSON array", "non-ASCII text"],
)
async def test_multipart_fields_follow_the_json_rules(
    server: RecordingServer,
    client: httpx.AsyncClient,
    fields: list[tuple[str, str]],
    path: str,
    arguments: list[Any],
) -> None:
    """Form fields choose receivers exactly as the JSON keys do."""
    body, headers = _curl_form(*fields)
    response = await client.post("/api/hubs/chat/messages", content=body, headers=headers)
    assert response.status_code == 202, response.text
    [request] = server.requests
    assert request.raw_path == path
    assert json.loads(request.body) == {"target": "t", "arguments": arguments}
    if "JSON array" in str(fields):
        assert request.query == "api-version=2022-06-01&excluded=c1&excluded=c2"


@pytest.mark.parametrize(
    "body",
    [
        b"target=t&arguments=%5B%22%C3%A9%22%5D",
        'target=t&arguments=["\u00e9"]'.encode(),
    ],
    ids=["percent-encoded", "raw UTF-8 (curl -d)"],
)
async def test_urlencoded_text_is_utf_8(
    server: RecordingServer, client: httpx.AsyncClient, body: bytes
) -> None:
    """Non-ASCII text arrives the same whether percent-encoded or sent as raw UTF-8 bytes."""
    response = await client.post("/api/hubs/chat/messages", **_urlencoded(body))
    assert response.status_code == 202, response.text
    assert json.loads(server.requests[0].body) == {"target": "t", "arguments": ["\u00e9"]}


async def test_a_file_part_carries_the_arguments(
    server: RecordingServer, client: httpx.AsyncClient
) -> None:
    """`curl -F arguments=@args.json` (a file part) is read as the field's JSON text."""
    response = await client.post(
        "/api/hubs/chat/messages",
        files={
            "target": (None, "t"),
            "arguments": ("args.json", b'[{"n": 1}]', "application/json"),
        },
        headers=HEADERS,
    )
    assert response.status_code == 202, response.text
    assert json.loads(server.requests[0].body) == {"target": "t", "arguments": [{"n": 1}]}


@pytest.mark.parametrize("encoding", ["multipart", "urlencoded"])
async def test_a_form_applies_one_group_action(
    server: RecordingServer, client: httpx.AsyncClient, encoding: str
) -> None:
    """groupActions takes action, groupName, userId/connectionId as form fields (200)."""
    fields = {"action": "add", "groupName": "g", "connectionId": "c"}
    if encoding == "multipart":
        body, headers = _curl_form(*fields.items())
        response = await client.post("/api/hubs/chat/groupActions", content=body, headers=headers)
    else:
        response = await client.post("/api/hubs/chat/groupActions", data=fields, headers=HEADERS)
    assert response.status_code == 200, response.text
    assert [(r.method, r.raw_path) for r in server.requests] == [
        ("PUT", "/api/hubs/chat/groups/g/connections/c")
    ]


@pytest.mark.parametrize(
    ("route", "fields", "location"),
    [
        ("messages", [("arguments", "[]")], ["body", "target"]),
        ("messages", [("target", "t"), ("arguments", "hello")], ["body", "arguments"]),
        ("messages", [("target", "t"), ("arguments", '{"a": 1}')], ["body", "arguments"]),
        ("messages", [("target", "t"), ("group", "g")], ["body", "group"]),
        ("messages", [("target", "t"), ("Target", "u")], ["body", "Target"]),
        ("messages", [("target", "t"), ("userId", "u"), ("excluded", "c")], ["body"]),
        ("messages", [("target", "t"), ("excluded", "[c1")], ["body", "excluded"]),
        ("messages", [("target", "t"), ("groupName", "x" * 1025)], ["body", "groupName"]),
        ("groupActions", [("action", "add"), ("userId", "u")], ["body"]),
        (
            "groupActions",
            [("action", "join"), ("groupName", "g"), ("userId", "u")],
            ["body", "action"],
        ),
        (
            "groupActions",
            [("action", "add"), ("groupName", "g"), ("userId", "u"), ("arguments", "[]")],
            ["body", "arguments"],
        ),
    ],
    ids=[
        "no target",
        "arguments not JSON",
        "arguments not an array",
        "misspelt receiver",
        "target twice",
        "excluded with user",
        "excluded bad JSON array",
        "group too long",
        "add without group",
        "unknown action",
        "message field on a group action",
    ],
)
async def test_invalid_form_fields_are_422_and_nothing_is_sent(
    server: RecordingServer,
    client: httpx.AsyncClient,
    route: str,
    fields: list[tuple[str, str]],
    location: list[Any],
) -> None:
    """Form fields break the same rules as JSON keys: 422 with the field's location."""
    body, headers = _curl_form(*fields)
    response = await client.post(f"/api/hubs/chat/{route}", content=body, headers=headers)
    assert response.status_code == 422, response.text
    assert location in [error["loc"] for error in response.json()["errors"]]
    assert server.requests == []


@pytest.mark.parametrize(
    ("content", "content_type", "message"),
    [
        (b"", "application/x-www-form-urlencoded", "empty"),
        (b"target=t\xff", "application/x-www-form-urlencoded", "not UTF-8"),
        (b"--x\r\n", "multipart/form-data", "boundary"),
        (b"no multipart here", "multipart/form-data; boundary=x", "multipart"),
        (
            b"--x\r\nContent-Disposition: form-data\r\n\r\nt\r\n--x--\r\n",
            "multipart/form-data; boundary=x",
            "name",
        ),
        (
            b'--x\r\nContent-Disposition: form-data; name="arguments"; filename="a"\r\n\r\n'
            b"\xff\r\n--x--\r\n",
            "multipart/form-data; boundary=x",
            "not UTF-8",
        ),
    ],
    ids=[
        "empty",
        "urlencoded not UTF-8",
        "no boundary",
        "malformed",
        "part without name",
        "file not UTF-8",
    ],
)
async def test_unreadable_forms_are_400(
    server: RecordingServer,
    client: httpx.AsyncClient,
    content: bytes,
    content_type: str,
    message: str,
) -> None:
    """A form that cannot be read is a 400 in the gateway's error shape, naming the problem."""
    response = await client.post(
        "/api/hubs/chat/messages",
        content=content,
        headers={**HEADERS, "content-type": content_type},
    )
    assert response.status_code == 400, response.text
    assert response.json()["type"] == "GatewayBodyError"
    assert message in response.json()["error"]
    assert server.requests == []


@pytest.mark.parametrize("encoding", ["multipart", "urlencoded"])
async def test_oversize_forms_are_413(
    server: RecordingServer, client: httpx.AsyncClient, encoding: str
) -> None:
    """The body cap counts a form's raw bytes as it does JSON's (413, nothing sent)."""
    big = "[" + '"x",' * 300_000 + '"x"]'
    if encoding == "multipart":
        body, headers = _curl_form(("target", "t"), ("arguments", big))
        response = await client.post("/api/hubs/chat/messages", content=body, headers=headers)
    else:
        response = await client.post(
            "/api/hubs/chat/messages", data={"target": "t", "arguments": big}, headers=HEADERS
        )
    assert response.status_code == 413, response.text
    assert "SIGNALR_GATEWAY_MAX_BODY_BYTES" in response.json()["error"]
    assert server.requests == []


@pytest.mark.parametrize(
    "content_type", ["application/xml", "application/octet-stream", "text/html; charset=utf-8"]
)
async def test_other_content_types_are_415(
    server: RecordingServer, client: httpx.AsyncClient, content_type: str
) -> None:
    """A body that is neither JSON nor a form is a 415 that names the types accepted."""
    response = await client.post(
        "/api/hubs/chat/messages",
        content=b'{"target": "t"}',
        headers={**HEADERS, "content-type": content_type},
    )
    assert response.status_code == 415, response.text
    body = response.json()
    assert body["type"] == "GatewayMediaTypeError"
    assert "application/json" in body["error"]
    assert "multipart/form-data" in body["error"]
    assert server.requests == []


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "application/json; charset=utf-8",
        "application/merge-patch+json",
        "text/plain;charset=UTF-8",
        "application/x-www-form-urlencoded",
    ],
    ids=["none", "json", "+json", "text/plain (fetch)", "urlencoded (curl -d)"],
)
async def test_json_bodies_are_read_whatever_the_json_label(
    server: RecordingServer, client: httpx.AsyncClient, content_type: str | None
) -> None:
    """A JSON body without a type, as text/plain, or as curl -d's default form type is JSON."""
    headers = dict(HEADERS)
    if content_type is not None:
        headers["content-type"] = content_type
    response = await client.post(
        "/api/hubs/chat/messages",
        content=b' [{"target": "t", "arguments": [1]}]',
        headers=headers,
    )
    assert response.status_code == 202, response.text
    assert json.loads(server.requests[0].body) == {"target": "t", "arguments": [1]}


async def test_openapi_lists_the_form_types(client: httpx.AsyncClient) -> None:
    """/openapi.json offers both form types, with arguments as JSON text."""
    spec = (await client.get("/openapi.json")).json()
    content = spec["paths"]["/api/hubs/{hub}/messages"]["post"]["requestBody"]["content"]
    assert set(content) == {
        "application/json",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    }
    form = content["multipart/form-data"]["schema"]["properties"]
    assert form["arguments"]["type"] == "string"
    assert "415" in spec["paths"]["/api/hubs/{hub}/groupActions"]["post"]["responses"]
