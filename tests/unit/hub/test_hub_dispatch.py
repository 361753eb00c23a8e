"""The webhook pipeline: checks, status codes, completions, signatures (docs/protocol.md §4.4)."""

from __future__ import annotations

import json
import logging
from typing import Any

import msgpack
import pytest

from app.exceptions import HubError
from app.hub import InvocationContext, ServerlessHub, has_role, require_role
from app.services.registry import HubRegistry
from app.services.webhook import GENERIC_ERROR, Webhook, WebhookResult
from signalr_protocol.codec import JSON_CODEC, MSGPACK_CODEC
from signalr_protocol.messages import CompletionMessage
from signalr_protocol.signature import compute_signature
from tests.support.hubkit import (
    KEY,
    SECOND_KEY,
    RecordingService,
    invocation_body,
    make_webhook,
    signed_headers,
    webhook_request,
)

pytestmark = pytest.mark.anyio


class Chat(ServerlessHub):
    """A small hub recording what reached it."""

    hub_name = "chat"
    events: list[tuple[str, str, str | None]] = []

    async def on_connected(self) -> None:
        self.events.append(("connected", self.context.connection_id, None))
        if self.context.query.get("refuse"):
            raise RuntimeError("refused by handler")

    async def on_disconnected(self) -> None:
        self.events.append(("disconnected", self.context.connection_id, self.context.error))
        if self.context.error == "boom":
            raise RuntimeError("disconnect handler failed")

    async def echo(self, value: Any) -> Any:
        return value

    async def send_to_user(self, user_id: str, text: str) -> None:
        await self.clients.user(user_id).send("newMessage", text)

    async def crash(self) -> None:
        raise RuntimeError("password=hunter2")

    async def refuse(self) -> None:
        raise HubError("Not today.")

    async def unserialisable(self) -> Any:
        return float("nan")

    @require_role("admin")
    async def admin_only(self) -> str:
        return "ok"

    async def whoami(self, ctx: InvocationContext) -> dict[str, Any]:
        return {
            "user": ctx.user_id,
            "claims": [list(c) for c in ctx.claims],
            "query": dict(ctx.query),
            "protocol": ctx.protocol,
            "invocationId": ctx.invocation_id,
        }


@pytest.fixture
def webhook(service: RecordingService) -> Webhook:
    Chat.events = []
    return make_webhook(service, Chat, access_keys=[KEY, SECOND_KEY])


async def dispatch(
    webhook: Webhook, body: bytes = b"", code: str | None = None, **header_args: Any
) -> WebhookResult:
    return await webhook.dispatch(webhook_request(signed_headers(**header_args), body, code))


def completion(result: WebhookResult, *, msgpack_body: bool = False) -> CompletionMessage:
    assert result.status_code == 200
    codec = MSGPACK_CODEC if msgpack_body else JSON_CODEC
    assert result.media_type == codec.content_type
    messages = codec.new_parser().feed(result.body)  # framed: exactly one message
    assert len(messages) == 1 and isinstance(messages[0], CompletionMessage)
    return messages[0]


# ------------------------------------------------------------------------ invocations


async def test_invocation_with_id_gets_a_framed_json_completion(webhook: Webhook) -> None:
    """An invoke is answered 200 with the JSON Completion, terminated by 0x1E."""
    result = await dispatch(webhook, invocation_body("echo", {"a": [1, "x"]}, invocation_id="7"))
    assert result.body.endswith(b"\x1e")
    assert json.loads(result.body[:-1]) == {
        "type": 3,
        "invocationId": "7",
        "result": {"a": [1, "x"]},
    }
    assert completion(result) == CompletionMessage("7", result={"a": [1, "x"]}, has_result=True)


async def test_invocation_with_id_gets_a_framed_msgpack_completion(webhook: Webhook) -> None:
    """A MessagePack invoke is answered with a VarInt-prefixed MessagePack Completion."""
    body = invocation_body("echo", b"\x00bin", invocation_id="9", msgpack=True)
    result = await dispatch(webhook, body, content_type="application/x-msgpack")
    assert result.body[0] == len(result.body) - 1  # one-byte VarInt length prefix
    assert msgpack.unpackb(result.body[1:]) == [3, {}, "9", 3, b"\x00bin"]
    assert completion(result, msgpack_body=True).result == b"\x00bin"


async def test_a_void_method_completes_with_result_null(webhook: Webhook) -> None:
    """A void method's invoke completes with ``result: null`` (MessagePack: kind 3 and nil).

    Reproduces Azure/azure-sdk-for-net
    sdk/signalr/Microsoft.Azure.WebJobs.Extensions.SignalRService/src/TriggerBindings/Executor/SignalRInvocationMethodExecutor.cs
    (``CompletionMessage.WithResult(message.InvocationId, result)`` with the void function's
    ``null``); the MessagePack shape is dotnet/aspnetcore
    src/SignalR/common/SignalR.Common/test/Internal/Protocol/MessagePackHubProtocolTestBase.cs
    ("CompletionWithNoHeadersAndNullResult": ``[3, {}, "xyz", 3, nil]``).
    """
    body = invocation_body("sendToUser", "bob", "hi", invocation_id="8")
    result = await dispatch(webhook, body, event="sendToUser")
    assert result.body == b'{"type":3,"invocationId":"8","result":null}\x1e'
    body = invocation_body("sendToUser", "bob", "hi", invocation_id="8", msgpack=True)
    result = await dispatch(webhook, body, event="sendToUser", content_type="application/x-msgpack")
    assert result.body[1:] == msgpack.packb([3, {}, "8", 3, None])
    assert result.body[1:] == bytes([0x95, 0x03, 0x80, 0xA1, 0x38, 0x03, 0xC0])


async def test_send_without_id_answers_200_without_body(
    webhook: Webhook, service: RecordingService
) -> None:
    """A send (no invocation id) runs the handler and answers an empty 200."""
    body = invocation_body("send_to_user", "bob", "hi", invocation_id=None)
    result = await dispatch(webhook, body, event="SEND_TO_USER")
    assert result == WebhookResult(200)
    assert service.calls == [("send_to_user", ("chat", "bob", "newMessage", ["hi"]), {})]


async def test_context_carries_user_claims_query_and_protocol(webhook: Webhook) -> None:
    """The handler sees the user id, multi-valued claims, parsed query and protocol."""
    result = await dispatch(
        webhook,
        invocation_body("whoami", invocation_id="3", msgpack=True),
        event="whoami",
        content_type="application/x-msgpack",
        X_ASRS_User_Id="ann",
        X_ASRS_User_Claims="role: a, role: b",
        X_ASRS_Client_Query="?hub=chat&access_token=tok&x=1",
    )
    assert completion(result, msgpack_body=True).result == {
        "user": "ann",
        "claims": [["role", "a"], ["role", "b"]],
        "query": {"hub": "chat", "x": "1"},
        "protocol": "messagepack",
        "invocationId": "3",
    }


@pytest.mark.parametrize("msgpack_body", [False, True])
async def test_binding_errors_become_error_completions(
    webhook: Webhook, msgpack_body: bool
) -> None:
    """A wrong argument count or type gives an error completion naming the parameter."""
    content_type = "application/x-msgpack" if msgpack_body else "application/json"
    body = invocation_body("sendToUser", "bob", msgpack=msgpack_body)
    result = await dispatch(webhook, body, event="sendToUser", content_type=content_type)
    assert completion(result, msgpack_body=msgpack_body).error == (
        "'sendToUser' expects 2 arguments (user_id, text) but got 1."
    )
    body = invocation_body("sendToUser", "bob", ["x"], msgpack=msgpack_body)
    result = await dispatch(webhook, body, event="sendToUser", content_type=content_type)
    error = completion(result, msgpack_body=msgpack_body).error
    assert error is not None and error.startswith("Argument 2 ('text') of 'sendToUser' is invalid")


async def test_filter_rejection_is_an_error_completion_and_counted(webhook: Webhook) -> None:
    """A rejected invoke gets an error completion; with an admin role it succeeds."""
    result = await dispatch(webhook, invocation_body("adminOnly"), event="adminOnly")
    assert completion(result).error == "Unauthorized: the role 'admin' is required."
    assert webhook.stats.rejected == 1
    result = await dispatch(
        webhook, invocation_body("adminOnly"), event="adminOnly", X_ASRS_User_Claims="role: admin"
    )
    assert completion(result).result == "ok"


async def test_hub_errors_carry_their_message(webhook: Webhook) -> None:
    """A HubError raised by a handler reaches the caller with its message."""
    result = await dispatch(webhook, invocation_body("refuse"), event="refuse")
    assert completion(result).error == "Not today."


async def test_unexpected_errors_are_generic_and_logged(
    webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected exception gives a generic error; details go to the log with the conn id."""
    with caplog.at_level(logging.ERROR, logger="app.services.webhook"):
        result = await dispatch(
            webhook, invocation_body("crash"), event="crash", connection_id="c-9"
        )
    assert completion(result).error == GENERIC_ERROR
    assert b"hunter2" not in result.body
    assert any("c-9" in r.getMessage() and r.exc_info for r in caplog.records)
    assert webhook.stats.handler_failures == 1
    result = await dispatch(webhook, invocation_body("unserialisable"), event="unserialisable")
    assert completion(result).error == "The method's result cannot be sent as json."


async def test_failing_send_is_logged_and_counted(
    webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    """A fire-and-forget invocation that fails answers 200 but is logged and counted."""
    with caplog.at_level(logging.ERROR, logger="app.services.webhook"):
        body = invocation_body("crash", invocation_id=None)
        result = await dispatch(webhook, body, event="crash", connection_id="c-5")
    assert result == WebhookResult(200)
    assert webhook.stats.fire_and_forget_failures == 1
    assert any("c-5" in r.getMessage() for r in caplog.records)


async def test_client_streams_are_refused(webhook: Webhook) -> None:
    """An invocation carrying stream ids gets an error completion (not supported serverless)."""
    body = json.dumps(
        {"type": 1, "invocationId": "1", "target": "echo", "arguments": [], "streamIds": ["s"]}
    ).encode()
    result = await dispatch(webhook, body)
    assert "streaming is not supported" in (completion(result).error or "")


# ------------------------------------------------------------------------ connections


async def test_connected_and_disconnected_reach_the_hooks(webhook: Webhook) -> None:
    """Connects and disconnects (error parsed from Type/Error in any case) reach the hooks."""
    result = await dispatch(
        webhook, b'{"type":10}', category="connections", event="connected", connection_id="a"
    )
    assert result == WebhookResult(200)
    result = await dispatch(
        webhook,
        b'{"Type":11,"Error":"transport closed"}',
        category="connections",
        event="Disconnected",
        connection_id="a",
    )
    assert result == WebhookResult(200)
    await dispatch(webhook, b'{"type":11}', category="connections", event="disconnected")
    assert Chat.events == [
        ("connected", "a", None),
        ("disconnected", "a", "transport closed"),
        ("disconnected", "conn-1", None),
    ]
    assert (webhook.stats.connected, webhook.stats.disconnected) == (1, 2)


async def test_refused_connect_is_403(webhook: Webhook) -> None:
    """A connect whose handler or filter refuses it is answered 403."""
    result = await dispatch(
        webhook,
        b'{"type":10}',
        category="connections",
        event="connected",
        X_ASRS_Client_Query="?refuse=1",
    )
    assert result.status_code == 403


async def test_failing_disconnect_is_200_logged_and_counted(
    webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    """A disconnected handler that fails still answers 200, logged with the connection id."""
    with caplog.at_level(logging.ERROR, logger="app.services.webhook"):
        result = await dispatch(
            webhook,
            b'{"type":11,"error":"boom"}',
            category="connections",
            event="disconnected",
            connection_id="gone-1",
        )
    assert result == WebhookResult(200)
    assert webhook.stats.fire_and_forget_failures == 1
    assert any("gone-1" in r.getMessage() for r in caplog.records)


async def test_hub_without_connect_hook_accepts_connects(service: RecordingService) -> None:
    """A hub class that doesn't override on_connected still answers 200 to connects."""

    class Quiet(ServerlessHub):
        async def echo(self, v: Any) -> Any:
            return v

    webhook = make_webhook(service, Quiet)
    result = await dispatch(
        webhook, b'{"type":10}', hub="quiet", category="connections", event="connected"
    )
    assert result == WebhookResult(200)


# ------------------------------------------------------------------------ status codes


@pytest.mark.parametrize(
    ("header_args", "body", "status", "text"),
    [
        ({"content_type": "text/plain"}, b"{}", 415, "Content-Type"),
        ({"content_type": ""}, b"{}", 415, "Content-Type"),
        ({"hub": ""}, b"{}", 400, "X-ASRS-Hub"),
        ({"category": " "}, b"{}", 400, "X-ASRS-Category"),
        ({"event": ""}, b"{}", 400, "X-ASRS-Event"),
        ({"category": "other"}, b"{}", 400, "Unknown X-ASRS-Category"),
        ({"hub": "nope"}, b"{}", 404, "No handler"),
        ({"event": "missing"}, b"{}", 404, "No handler"),
        ({"category": "connections", "event": "echo"}, b"{}", 404, "No handler"),
        ({}, b"{not json", 400, "Bad invocation body"),
        ({}, b'{"type":6}', 400, "Expected an Invocation"),
        ({}, invocation_body("crash"), 400, "does not match the invocation target"),
        ({"category": "connections", "event": "connected"}, b"[1]", 400, "expected an object"),
        ({"category": "connections", "event": "connected"}, b"{", 400, "not valid JSON"),
    ],
)
async def test_bad_requests_get_their_status(
    webhook: Webhook, header_args: dict[str, str], body: bytes, status: int, text: str
) -> None:
    """Each malformed request is answered with its docs/protocol.md §4.4 status and a reason."""
    result = await dispatch(webhook, body, **header_args)
    assert result.status_code == status
    assert text in result.body.decode()


async def test_missing_connection_id_is_400(webhook: Webhook) -> None:
    """A request without X-ASRS-Connection-Id is a 400."""
    headers = signed_headers()
    del headers["X-ASRS-Connection-Id"]
    result = await webhook.dispatch(webhook_request(headers, invocation_body("echo", 1)))
    assert result.status_code == 400


async def test_media_type_parameters_and_case_are_ignored(webhook: Webhook) -> None:
    """``Application/JSON; charset=utf-8`` is JSON."""
    result = await dispatch(
        webhook, invocation_body("echo", 1), content_type="Application/JSON; charset=utf-8"
    )
    assert completion(result).result == 1


async def test_body_over_the_cap_is_413(service: RecordingService) -> None:
    """A body over the configured cap is refused with 413, declared or streamed."""
    webhook = make_webhook(service, Chat, max_body_bytes=1024)
    big = invocation_body("echo", "x" * 2000)
    assert (await dispatch(webhook, big)).status_code == 413

    async def chunks() -> Any:
        for _ in range(10):
            yield b"x" * 200

    headers = webhook_request(signed_headers(), b"").headers
    assert (await webhook.dispatch_stream(headers, chunks())).status_code == 413
    declared = webhook_request(signed_headers(**{"Content-Length": "5000"}), b"").headers
    assert (await webhook.dispatch_stream(declared, chunks())).status_code == 413

    async def small() -> Any:
        yield invocation_body("echo", 5)[:10]
        yield invocation_body("echo", 5)[10:]

    assert completion(await webhook.dispatch_stream(headers, small())).result == 5


# ------------------------------------------------------------------------ signatures


def with_signature(value: str | None, connection_id: str = "conn-1") -> dict[str, str]:
    headers = signed_headers(connection_id=connection_id)
    if value is None:
        del headers["X-ASRS-Signature"]
    else:
        headers["X-ASRS-Signature"] = value
    return headers


GOOD = compute_signature("conn-1", KEY)
GOOD2 = compute_signature("conn-1", SECOND_KEY)


@pytest.mark.parametrize(
    "signature",
    [
        GOOD,
        GOOD.lower(),
        "SHA256=" + GOOD[7:].lower(),
        GOOD2,
        f"{GOOD}, {GOOD2}",
        f"{GOOD},{GOOD2}",
        f"  {GOOD2}  ,   {GOOD}  ",
        f"sha256=nothex, garbage, , {GOOD2}",
        f"sha256={'0' * 64}, {GOOD}",
        f"md5=abc,{GOOD.lower()}",
    ],
)
async def test_valid_signatures_are_accepted(webhook: Webhook, signature: str) -> None:
    """Upper/lower hex, either key, trimmed comma lists and lists with bad entries pass."""
    result = await webhook.dispatch(
        webhook_request(with_signature(signature), invocation_body("echo", 1))
    )
    assert completion(result).result == 1


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "",
        "sha256=",
        GOOD[7:],  # no prefix
        compute_signature("conn-2", KEY),  # another connection's signature
        compute_signature("conn-1", "other-key"),
        f"{GOOD}00",
        "sha256=zz, garbage",
    ],
)
async def test_invalid_signatures_are_401(webhook: Webhook, signature: str | None) -> None:
    """A missing, malformed or foreign signature is 401, before any lookup or parsing."""
    headers = with_signature(signature)
    headers["X-ASRS-Event"] = "no-such-target"  # would be 404 if looked up first
    result = await webhook.dispatch(webhook_request(headers, b"not even json"))
    assert result.status_code == 401
    assert webhook.stats.unauthorized == 1


async def test_access_keys_are_trimmed_and_blank_ones_dropped(service: RecordingService) -> None:
    """Configured keys are trimmed; blank entries are ignored."""
    webhook = make_webhook(service, Chat, access_keys=["  ", f" {SECOND_KEY} "])
    assert webhook.access_keys == (SECOND_KEY,)
    result = await webhook.dispatch(
        webhook_request(with_signature(GOOD2), invocation_body("echo", 2))
    )
    assert completion(result).result == 2


async def test_no_keys_refuses_everything(service: RecordingService) -> None:
    """Without access keys (and no code) every request is refused: nothing can verify it."""
    webhook = make_webhook(service, Chat, access_keys=[])
    result = await webhook.dispatch(webhook_request(signed_headers(), invocation_body("echo", 1)))
    assert result.status_code == 401


async def test_code_key_is_required_when_configured(service: RecordingService) -> None:
    """With an upstream code set, ``code`` (query) or x-functions-key must carry it too."""
    webhook = make_webhook(service, Chat, upstream_code="s3cret")
    body = invocation_body("echo", 1)
    assert (await webhook.dispatch(webhook_request(signed_headers(), body))).status_code == 401
    bad = webhook_request(signed_headers(), body, code="wrong")
    assert (await webhook.dispatch(bad)).status_code == 401
    ok = webhook_request(signed_headers(), body, code="s3cret")
    assert completion(await webhook.dispatch(ok)).result == 1
    header = webhook_request(signed_headers(**{"x-functions-key": "s3cret"}), body)
    assert completion(await webhook.dispatch(header)).result == 1
    unsigned = with_signature(None)
    assert (
        await webhook.dispatch(webhook_request(unsigned, body, code="s3cret"))
    ).status_code == 401


async def test_stats_snapshot_counts_outcomes(webhook: Webhook) -> None:
    """The counters expose what happened, including 404s and completions."""
    await dispatch(webhook, invocation_body("echo", 1))
    await dispatch(webhook, b"{}", event="nope")
    await dispatch(webhook, invocation_body("refuse"), event="refuse")
    snapshot = webhook.stats.snapshot()
    assert snapshot["requests"] == 3
    assert snapshot["completions"] == 1
    assert snapshot["error_completions"] == 1
    assert snapshot["not_found"] == 1
    assert snapshot["invocations"] == 2


async def test_credentials_are_hidden_from_handlers(service: RecordingService) -> None:
    """Handlers see the request headers except the code key and any bearer token."""
    seen: list[dict[str, str]] = []

    class Headers(ServerlessHub):
        async def look(self) -> None:
            seen.append(dict(self.context.headers))

    webhook = make_webhook(service, Headers, upstream_code="k")
    headers = signed_headers(
        hub="headers",
        event="look",
        **{"x-functions-key": "k", "Authorization": "Bearer t", "X-Custom": "v"},
    )
    result = await webhook.dispatch(webhook_request(headers, invocation_body("look")))
    assert completion(result).error is None
    assert seen[0]["x-custom"] == "v" and seen[0]["x-asrs-hub"] == "headers"
    assert "x-functions-key" not in seen[0] and "authorization" not in seen[0]


# ------------------------------------------------------------------------ filters on connects


class Guarded(ServerlessHub):
    """A hub whose filters and connect hook refuse in the ways a hub author can."""

    hub_name = "guarded"
    filters = (has_role("member"),)

    async def on_connected(self) -> None:
        if self.context.query.get("deny"):
            raise HubError("Banned.")


@pytest.fixture
def guarded(service: RecordingService) -> Webhook:
    return make_webhook(service, Guarded)


async def test_connect_rejected_by_a_filter_is_403_with_its_reason(guarded: Webhook) -> None:
    """A filter refusing a connect answers 403 carrying the filter's message; members pass."""
    headers = {"hub": "guarded", "category": "connections", "event": "connected"}
    result = await dispatch(guarded, b'{"type":10}', **headers)
    assert result.status_code == 403
    assert result.body.decode() == "Unauthorized: the role 'member' is required."
    assert guarded.stats.rejected == 1
    ok = await dispatch(guarded, b'{"type":10}', X_ASRS_User_Claims="role: member", **headers)
    assert ok == WebhookResult(200)


async def test_connect_refused_by_a_hub_error_is_403_and_logged(
    guarded: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    """on_connected raising HubError refuses the connect (403), logged with the connection id."""
    with caplog.at_level(logging.WARNING, logger="app.services.webhook"):
        result = await dispatch(
            guarded,
            b'{"type":10}',
            hub="guarded",
            category="connections",
            event="connected",
            connection_id="c-77",
            X_ASRS_User_Claims="role: member",
            X_ASRS_Client_Query="?deny=1",
        )
    assert result.status_code == 403
    assert any("c-77" in r.getMessage() and "Banned." in r.getMessage() for r in caplog.records)


async def test_disconnect_rejected_by_a_filter_is_200_and_counted(guarded: Webhook) -> None:
    """A filter can't refuse a disconnect: 200, counted as a fire-and-forget failure."""
    result = await dispatch(
        guarded, b'{"type":11}', hub="guarded", category="connections", event="disconnected"
    )
    assert result == WebhookResult(200)
    assert (guarded.stats.rejected, guarded.stats.fire_and_forget_failures) == (1, 1)


async def test_refused_send_is_logged_as_a_warning(
    webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    """A send (no invocation id) with bad arguments is a warning with the connection id."""
    with caplog.at_level(logging.WARNING, logger="app.services.webhook"):
        body = invocation_body("sendToUser", "bob", invocation_id=None)
        result = await dispatch(webhook, body, event="sendToUser", connection_id="c-31")
    assert result == WebhookResult(200)
    assert webhook.stats.fire_and_forget_failures == 1
    (record,) = [r for r in caplog.records if "c-31" in r.getMessage()]
    assert record.levelno == logging.WARNING and "expects 2 arguments" in record.getMessage()


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (msgpack.packb({"Type": 11, "ERROR": "gone"}), "gone"),
        (msgpack.packb([11, "lost"]), "lost"),
        (msgpack.packb({"type": 11}), None),
    ],
)
async def test_msgpack_disconnect_bodies_are_read(
    webhook: Webhook, body: bytes, error: str | None
) -> None:
    """A connections body sent as MessagePack (map any case, or array) yields its error."""
    result = await dispatch(
        webhook,
        body,
        category="connections",
        event="disconnected",
        content_type="application/x-msgpack",
    )
    assert result == WebhookResult(200)
    assert Chat.events == [("disconnected", "conn-1", error)]


# ------------------------------------------------------------------------ trigger functions


@pytest.mark.parametrize(
    "specs",
    [
        [
            "tests.support.hubs.trigger_functions:shout",
            "tests.support.hubs.trigger_functions:announce",
        ],
        ["tests.support.hubs.trigger_functions"],  # the module: both functions and the class
    ],
)
async def test_trigger_functions_load_from_import_strings_and_dispatch(
    service: RecordingService, specs: list[str]
) -> None:
    """Functions listed in SIGNALR_HUBS handle webhook requests like hub methods, filters too."""
    registry = HubRegistry(service=service)
    registry.load_all(specs)
    webhook = Webhook(registry, access_keys=[KEY])
    result = await webhook.dispatch(
        webhook_request(
            signed_headers(hub="Lobby", event="SHOUT", connection_id="c-3"),
            invocation_body("SHOUT", "hey"),
        )
    )
    assert completion(result).result == "HEY"
    assert service.calls == [
        ("send_to_all", ("lobby", "shouted", ["c-3", "HEY"]), {"excluded": []})
    ]
    result = await webhook.dispatch(
        webhook_request(signed_headers(hub="lobby", event="shout"), invocation_body("shout"))
    )
    assert completion(result).error == "'shout' expects 1 argument (text) but got 0."
    connect = signed_headers(hub="lobby", category="connections", event="connected")
    result = await webhook.dispatch(webhook_request(connect, b'{"type":10}'))
    assert result.status_code == 403
    connect["X-ASRS-User-Claims"] = "role: member"
    assert await webhook.dispatch(webhook_request(connect, b'{"type":10}')) == WebhookResult(200)
    has_class = webhook.registry.handler("lobby", "messages", "ping") is not None
    assert has_class == (len(specs) == 1)


async def test_signature_rejection_is_logged_without_the_signature(
    webhook: Webhook, caplog: pytest.LogCaptureFixture
) -> None:
    """A 401 for a bad signature is logged with the connection id, never the signature."""
    headers = with_signature(compute_signature("c-41", "wrong-key"), connection_id="c-41")
    with caplog.at_level(logging.INFO, logger="app.services.webhook"):
        result = await webhook.dispatch(webhook_request(headers, invocation_body("echo", 1)))
    assert result.status_code == 401
    (record,) = [r for r in caplog.records if "c-41" in r.getMessage()]
    assert headers["X-ASRS-Signature"][7:] not in record.getMessage().upper()
