"""The README's hub example, taken verbatim from README.md, works as its comments say."""

from __future__ import annotations

import json
import sys

import pytest

from app.services.registry import HubRegistry
from app.services.webhook import Webhook, WebhookResult
from signalr_protocol.codec import JSON_CODEC
from signalr_protocol.messages import CompletionMessage
from tests.support.hubkit import (
    KEY,
    RecordingService,
    invocation_body,
    readme_example_module,
    signed_headers,
    webhook_request,
)

pytestmark = pytest.mark.anyio

MODULE = "readme_example_hubs"


@pytest.fixture
def webhook(service: RecordingService, monkeypatch: pytest.MonkeyPatch) -> Webhook:
    """The webhook of a registry that loaded the README's class the way SIGNALR_HUBS would."""
    monkeypatch.setitem(sys.modules, MODULE, readme_example_module(MODULE))
    registry = HubRegistry(service=service)
    registry.load(f"{MODULE}:Chat")  # SIGNALR_HUBS=myapp.hubs:Chat
    return Webhook(registry, access_keys=[KEY])


def completion(result: WebhookResult) -> CompletionMessage:
    assert result.status_code == 200
    (message,) = JSON_CODEC.new_parser().feed(result.body)
    assert isinstance(message, CompletionMessage)
    return message


async def test_readme_example_hub_dispatches(webhook: Webhook, service: RecordingService) -> None:
    """The README's Chat hub: connect announces, broadcast sends, sync echo returns, admin gate."""
    # The JS client negotiates hub "chat" (lower-case); the class is named "Chat".
    assert webhook.registry.hub_names == ["Chat"]

    result = await webhook.dispatch(
        webhook_request(
            signed_headers(category="connections", event="connected", connection_id="c-1"),
            b'{"type":10}',
        )
    )
    assert result == WebhookResult(200)
    assert service.calls == [
        ("send_to_all", ("Chat", "newConnection", [{"connectionId": "c-1"}]), {"excluded": []})
    ]

    service.calls.clear()
    body = invocation_body("broadcast", "hi", invocation_id=None)  # connection.send(...)
    headers = signed_headers(event="broadcast", connection_id="c-1", X_ASRS_User_Id="ann")
    assert await webhook.dispatch(webhook_request(headers, body)) == WebhookResult(200)
    assert service.calls == [
        (
            "send_to_all",
            ("Chat", "newMessage", [{"sender": "ann", "text": "hi"}]),
            {"excluded": []},
        )
    ]

    # await connection.invoke("echo", 42) -> 42 (the sync method runs in a worker thread).
    result = await webhook.dispatch(webhook_request(signed_headers(), invocation_body("echo", 42)))
    assert json.loads(result.body[:-1]) == {"type": 3, "invocationId": "1", "result": 42}

    service.calls.clear()
    headers = signed_headers(event="adminBroadcast")
    result = await webhook.dispatch(
        webhook_request(headers, invocation_body("adminBroadcast", "x"))
    )
    assert completion(result).error == "Unauthorized: the role 'admin' is required."
    assert service.calls == []  # "others get an error completion" and nobody receives anything

    headers = signed_headers(event="adminBroadcast", X_ASRS_User_Claims="role: admin")
    result = await webhook.dispatch(
        webhook_request(headers, invocation_body("adminBroadcast", "x"))
    )
    assert completion(result) == CompletionMessage("1", result=None, has_result=True)
    assert service.calls == [
        ("send_to_all", ("Chat", "newMessage", [{"text": "x"}]), {"excluded": []})
    ]
