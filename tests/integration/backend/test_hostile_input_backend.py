"""Hostile input to the backend over real HTTP: every one a clean 4xx or error completion.

The backend is served by uvicorn on a free port and aims its REST calls at a recording
server, so the tests also see that nothing was sent for a refused request.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgpack
import pytest

from app.main import create_app
from signalr_protocol.codec import JSON_CODEC, MSGPACK_CODEC
from signalr_protocol.messages import CompletionMessage, InvocationMessage
from tests.support.hubkit import signed_headers
from tests.support.outbound_kit import RecordingServer, recording_server, settings_for
from tests.support.servers import serve_asgi

pytestmark = pytest.mark.anyio

KEYS = ["gateway-key"]
GATEWAY = {"x-functions-key": "gateway-key"}
WEBHOOK = "/runtime/webhooks/signalr"
DEEP = b"[" * 10_000 + b"]" * 10_000


class Backend:
    """The served backend: its URL, an HTTP client, and the recording service behind it."""

    def __init__(self, url: str, http: httpx.AsyncClient, service: RecordingServer) -> None:
        self.url = url
        self.http = http
        self.service = service


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    async with recording_server() as service:
        config = settings_for(
            service.base_url,
            gateway_api_keys=KEYS,
            retry_max_attempts=1,
            body_read_timeout=0.5,
            website_auth_enabled=True,
        )
        async with serve_asgi(create_app(config)) as url:
            async with httpx.AsyncClient(base_url=url, timeout=10) as http:
                yield Backend(url, http, service)


# ------------------------------------------------------------------------------------------
# Gateway


HOSTILE_BODIES = {
    "NaN": (b'{"target":"t","arguments":[NaN]}', "NaN is not valid JSON"),
    "deep": (b'{"target":"t","arguments":' + DEEP + b"}", "nested too deeply (10001 levels)"),
    "lone surrogate": (b'{"target":"t","arguments":["\\ud800"]}', "lone UTF-16 surrogate"),
    "5,000 digits": (b'{"target":"t","arguments":[' + b"7" * 5000 + b"]}", "4,300 digits"),
    "1e999": (b'{"target":"t","arguments":[1e999]}', "1e999 is too large"),
}


@pytest.mark.parametrize("route", ["messages", "groupActions"])
@pytest.mark.parametrize("case", list(HOSTILE_BODIES))
async def test_gateway_refuses_bodies_outside_the_json_limits(
    backend: Backend, route: str, case: str
) -> None:
    """NaN, 10,000-deep nesting, a lone surrogate, a 5,000-digit integer, 1e999: 400 saying so."""
    body, reason = HOSTILE_BODIES[case]
    response = await backend.http.post(
        f"/api/hubs/chat/{route}",
        content=body,
        headers={**GATEWAY, "content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    answer = response.json()
    assert set(answer) == {"error", "type"}
    assert reason in answer["error"]
    assert backend.service.requests == []


async def test_gateway_validation_errors_use_the_one_error_shape(backend: Backend) -> None:
    """A schema error is a 422 with error/type (and the list), not FastAPI's detail."""
    response = await backend.http.post(
        "/api/hubs/chat/messages", json=[{"target": ""}, {"arguments": 1}], headers=GATEWAY
    )
    assert response.status_code == 422
    answer = response.json()
    assert answer["type"] == "RequestValidationError"
    assert "detail" not in answer
    assert answer["error"].startswith("The request does not match the schema: body.0.target")
    assert ["body", 1, "target"] in [error["loc"] for error in answer["errors"]]
    assert all(set(error) == {"loc", "msg", "type"} for error in answer["errors"])


async def test_gateway_form_arguments_go_through_the_limits(backend: Backend) -> None:
    """A form's JSON arguments field holding NaN is a 422 naming the field, nothing sent."""
    response = await backend.http.post(
        "/api/hubs/chat/messages",
        data={"target": "t", "arguments": "[NaN]"},
        headers=GATEWAY,
    )
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert errors[0]["loc"] == ["body", "arguments"]
    assert "NaN is not valid JSON" in errors[0]["msg"]
    assert backend.service.requests == []


async def test_gateway_unknown_path_and_method_use_the_one_error_shape(backend: Backend) -> None:
    """404 and 405 answer {"error", "type"} too; the 405 keeps its Allow header."""
    missing = await backend.http.post("/api/hubs/chat/nothing", json={}, headers=GATEWAY)
    assert missing.status_code == 404
    assert missing.json() == {"error": "Not Found", "type": "NotFound"}
    wrong = await backend.http.get("/api/hubs/chat/messages", headers=GATEWAY)
    assert wrong.status_code == 405
    assert wrong.json() == {"error": "Method Not Allowed", "type": "MethodNotAllowed"}
    assert wrong.headers["allow"] == "POST"


async def _stalled_request(url: str, path: str, headers: dict[str, str]) -> bytes:
    """Send a request that declares a 100-byte body and sends 10; return the raw answer."""
    host, _, port = url.removeprefix("http://").partition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    lines = [f"POST {path} HTTP/1.1", f"host: {host}", "content-length: 100"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + b'{"target":')
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(4096), timeout=5)
    finally:
        writer.close()


@pytest.mark.parametrize("path", ["/api/hubs/chat/messages", WEBHOOK])
async def test_a_body_that_never_arrives_gets_408(backend: Backend, path: str) -> None:
    """A request that declares a body and stops sending it is answered 408 after the bound."""
    headers = GATEWAY if path != WEBHOOK else signed_headers(event="echo")
    started = asyncio.get_running_loop().time()
    answer = await _stalled_request(backend.url, path, headers)
    elapsed = asyncio.get_running_loop().time() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"SIGNALR_BODY_READ_TIMEOUT" in answer
    assert 0.4 < elapsed < 4


# ------------------------------------------------------------------------------------------
# Webhook


async def _webhook(
    backend: Backend, body: bytes, *, msgpack_body: bool = False, **header_args: Any
) -> httpx.Response:
    content_type = "application/x-msgpack" if msgpack_body else "application/json"
    headers = signed_headers(content_type=content_type, **header_args)
    return await backend.http.post(WEBHOOK, content=body, headers=headers)


def _completion(response: httpx.Response, *, msgpack_body: bool = False) -> CompletionMessage:
    assert response.status_code == 200, response.text
    codec = MSGPACK_CODEC if msgpack_body else JSON_CODEC
    messages = codec.new_parser().feed(response.content)
    assert len(messages) == 1
    message = messages[0]
    assert isinstance(message, CompletionMessage)
    return message


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info]
    assert tracebacks == []


@pytest.mark.parametrize("event", ["connected", "disconnected"])
async def test_connection_event_with_deep_body_is_400(
    backend: Backend, event: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A signed connected/disconnected body of 10,000 '[' is a 400 naming the depth limit."""
    response = await _webhook(backend, b"[" * 10_000, category="connections", event=event)
    assert response.status_code == 400
    assert "nested too deeply" in response.text
    _no_tracebacks(caplog)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"type":1,"invocationId":"7","target":"echo","arguments":[1e999]}', "1e999"),
        (b'{"type":1,"invocationId":"7","target":"echo","arguments":[NaN]}', "NaN"),
        (b'{"type":1,"invocationId":"7","target":"echo","arguments":["\\ud800"]}', "surrogate"),
        (b'{"type":1,"invocationId":"7","target":"\\ud800","arguments":[]}', "surrogate"),
        (b'{"type":1,"invocationId":"7","target":"echo","arguments":' + DEEP + b"}", "deeply"),
    ],
    ids=["1e999", "NaN", "surrogate argument", "surrogate target", "deep"],
)
async def test_invocation_outside_the_limits_gets_an_error_completion(
    backend: Backend, body: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An invocation whose arguments (or target text) break a limit gets an error completion
    saying which, and one log line without a traceback: the codec's binding failure, as
    ASP.NET Core's JSON hub protocol returns one for arguments it can't bind
    (dotnet/aspnetcore src/SignalR/common/Protocols.Json/src/Protocol/JsonHubProtocol.cs)."""
    caplog.set_level(logging.INFO, logger="app.services.webhook")
    completion = _completion(await _webhook(backend, body))
    assert completion.invocation_id == "7"
    assert completion.error is not None
    assert completion.error.startswith("Invocation '")
    assert " refused: " in completion.error
    assert reason in completion.error
    lines = [r for r in caplog.records if r.name == "app.services.webhook"]
    assert len(lines) == 1
    _no_tracebacks(caplog)


@pytest.mark.parametrize("group", ["", "g" * 1800], ids=["empty", "1,800 characters"])
async def test_hub_method_validation_errors_reach_the_caller(
    backend: Backend, group: str, caplog: pytest.LogCaptureFixture
) -> None:
    """joinGroup("") or an 1,800-character name: the naming rule, not "Method execution failed."."""
    caplog.set_level(logging.INFO, logger="app.services.webhook")
    body = JSON_CODEC.encode_payload(InvocationMessage("joinGroup", [group], invocation_id="9"))
    completion = _completion(await _webhook(backend, body, event="joinGroup"))
    expected = "must not be empty" if not group else "at most 1024 are allowed"
    assert completion.error is not None and expected in completion.error
    assert completion.error.startswith("The group name")
    _no_tracebacks(caplog)
    assert backend.service.requests == []


async def test_echo_of_a_messagepack_timestamp_completes_with_iso_text(backend: Backend) -> None:
    """A MessagePack timestamp argument arrives as a UTC datetime; echo answers its ISO text."""
    stamp = msgpack.Timestamp(seconds=1_900_000_000)
    body = msgpack.packb([1, {}, "3", "echo", [stamp]])
    completion = _completion(await _webhook(backend, body, msgpack_body=True), msgpack_body=True)
    assert completion.error is None
    assert completion.result == "2030-03-17T17:46:40+00:00"


async def test_echo_of_arguments_nested_990_deep_gets_an_error_completion(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """MessagePack arguments nested ~990 deep: an error completion naming the depth limit,
    no traceback (ASP.NET Core's MessagePack hub protocol returns a binding failure:
    dotnet/aspnetcore
    src/SignalR/common/Protocols.MessagePack/src/Protocol/MessagePackHubProtocolWorker.cs)."""
    body = b"\x95\x01\x80\xa13\xa4echo\x91" + b"\x91" * 990 + b"\x01"
    completion = _completion(await _webhook(backend, body, msgpack_body=True), msgpack_body=True)
    assert completion.invocation_id == "3"
    assert completion.error == (
        "Invocation 'echo' refused: the value is nested too deeply: at most 64 nested "
        "arrays and objects are accepted."
    )
    _no_tracebacks(caplog)


async def test_a_send_outside_the_limits_is_logged_once(
    backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """A send (no invocation id) whose arguments break a limit: nobody to answer, so an empty
    200 and one warning naming the limit, no traceback; the handler never runs."""
    caplog.set_level(logging.INFO, logger="app.services.webhook")
    body = b'{"type":1,"target":"echo","arguments":[1e999]}'
    response = await _webhook(backend, body)
    assert response.status_code == 200 and response.content == b""
    lines = [r for r in caplog.records if r.name == "app.services.webhook"]
    assert [r.levelno for r in lines] == [logging.WARNING]
    assert "Invocation 'echo' refused: the number 1e999 is too large" in lines[0].getMessage()
    _no_tracebacks(caplog)


async def test_unknown_target_404_names_target_and_hub(backend: Backend) -> None:
    """An invocation of a target the hub lacks: 404 "No handler for target 'x' in hub 'chat'."."""
    body = b'{"type":1,"invocationId":"1","target":"x","arguments":[]}'
    response = await _webhook(backend, body, event="x")
    assert response.status_code == 404
    assert response.text == "No handler for target 'x' in hub 'chat'."


# ------------------------------------------------------------------------------------------
# Negotiate with a trusted principal


def _principal(data: bytes) -> dict[str, str]:
    return {"x-ms-client-principal": base64.b64encode(data).decode()}


@pytest.mark.parametrize(
    ("principal", "reason"),
    [
        (b'{"claims":' + b"[" * 5000 + b"]" * 5000 + b"}", "nested too deeply"),
        (b'{"userId":' + b"4" * 5000 + b"}", "4,300 digits"),
        (b'{"claims":[{"typ":"x","val":NaN}]}', "NaN"),
    ],
    ids=["deep", "5,000-digit user id", "NaN claim"],
)
async def test_negotiate_with_a_hostile_principal_is_400(
    backend: Backend, principal: bytes, reason: str
) -> None:
    """A trusted principal that decodes to deep nesting or a huge number is a 400 saying so."""
    response = await backend.http.post("/api/negotiate", headers=_principal(principal))
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["type"] == "PrincipalError"
    assert reason in answer["error"]


async def test_negotiate_with_a_claim_too_large_for_a_token_is_400(backend: Backend) -> None:
    """A claim so large that the token exceeds 4,096 characters: a 400 naming the limit."""
    principal = json.dumps({"claims": [{"typ": "note", "val": "n" * 5000}]}).encode()
    response = await backend.http.post("/api/negotiate", headers=_principal(principal))
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["type"] == "TokenTooLargeError"
    assert "4096" in answer["error"].replace(",", "")
