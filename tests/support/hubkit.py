"""Helpers of the hub tests: a recording outbound service and signed webhook requests."""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from app.services.registry import HubRegistry
from app.services.webhook import Webhook, WebhookRequest
from signalr_protocol.codec import JSON_CODEC, MSGPACK_CODEC
from signalr_protocol.messages import InvocationMessage
from signalr_protocol.signature import compute_signature
from signalr_protocol.upstream import CaseInsensitiveMapping

README = Path(__file__).resolve().parents[2] / "README.md"
KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"
SECOND_KEY = "second-key-0123456789"


class RecordingService:
    """An OutboundService that records every call as ``(method, args, kwargs)``.

    ``answers`` sets the return value of query methods (``connection_exists`` ...);
    ``fail`` makes every call raise the given exception.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.answers: dict[str, Any] = {}
        self.fail: Exception | None = None

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, args, kwargs))
            if self.fail is not None:
                raise self.fail
            return self.answers.get(name)

        return call


def signed_headers(
    *,
    hub: str = "chat",
    category: str = "messages",
    event: str = "echo",
    connection_id: str = "conn-1",
    keys: Sequence[str] = (KEY,),
    content_type: str = "application/json",
    **extra: str,
) -> dict[str, str]:
    """The headers the service sends, signed with ``keys``."""
    headers = {
        "Content-Type": content_type,
        "X-ASRS-Hub": hub,
        "X-ASRS-Category": category,
        "X-ASRS-Event": event,
        "X-ASRS-Connection-Id": connection_id,
        "X-ASRS-Signature": ", ".join(compute_signature(connection_id, k) for k in keys),
    }
    headers.update({k.replace("_", "-"): v for k, v in extra.items()})
    return headers


def invocation_body(
    target: str, *arguments: Any, invocation_id: str | None = "1", msgpack: bool = False
) -> bytes:
    """An upstream invocation body, unframed, in JSON or MessagePack."""
    codec = MSGPACK_CODEC if msgpack else JSON_CODEC
    return codec.encode_payload(InvocationMessage(target, arguments, invocation_id=invocation_id))


def webhook_request(
    headers: dict[str, str], body: bytes, code: str | None = None
) -> WebhookRequest:
    """A WebhookRequest as the router builds it."""
    return WebhookRequest(CaseInsensitiveMapping(headers.items()), body, code)


def make_registry(service: Any, *hubs: Any) -> HubRegistry:
    """A registry with the given hub classes / trigger functions."""
    registry = HubRegistry(service=service)
    for hub in hubs:
        if isinstance(hub, type):
            registry.add_hub(hub)
        else:
            registry.add_function(hub)
    return registry


def make_webhook(service: Any, *hubs: Any, **options: Any) -> Webhook:
    """The webhook of :func:`make_registry`'s registry, checking signatures with KEY."""
    options.setdefault("access_keys", [KEY])
    return Webhook(make_registry(service, *hubs), **options)


def readme_example_module(name: str) -> types.ModuleType:
    """The first Python block under README.md's "One example" heading, run as module ``name``.

    The caller puts it in ``sys.modules`` (``monkeypatch.setitem``) so that an import string
    such as ``f"{name}:Chat"`` loads it, as ``SIGNALR_HUBS=myapp.hubs:Chat`` would.
    """
    text = README.read_text(encoding="utf-8")
    match = re.search(r"```python\n(.*?)```", text.partition("## One example")[2], re.DOTALL)
    assert match is not None, "README.md has no Python block under '## One example'"
    module = types.ModuleType(name)
    exec(compile(match.group(1), f"README.md ({name})", "exec"), module.__dict__)
    return module
