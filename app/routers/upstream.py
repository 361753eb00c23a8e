"""``POST /runtime/webhooks/signalr``: the upstream webhook the SignalR Service calls.

Thin: the checks, the status codes (docs/protocol.md §4.4) and the handler call live in
:meth:`app.services.webhook.Webhook.dispatch_stream`.

Two entrances share that one call: the documented FastAPI route (OpenAPI, and the fallback)
and :class:`UpstreamFastPath`, a plain ASGI app that answers the webhook before FastAPI's
routing and request machinery, which cost several times the dispatch itself on this hot
path. ``app.main.BackendApp`` calls it before ``FastAPI.__call__``; it also works as a
middleware (``app.add_middleware``). Behaviour is identical either way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send

from app.services.webhook import Webhook, WebhookResult
from signalr_protocol.upstream import CaseInsensitiveMapping

__all__ = ["WEBHOOK_PATH", "UpstreamFastPath", "router"]

WEBHOOK_PATH = "/runtime/webhooks/signalr"
"""The Functions host's SignalR extension webhook path."""

router = APIRouter(tags=["upstream"])


@router.post(
    WEBHOOK_PATH,
    response_class=Response,
    responses={
        200: {"description": "Handled; invocations with an id get a framed Completion."},
        400: {"description": "Missing X-ASRS-* header or a bad body."},
        401: {"description": "Bad X-ASRS-Signature or `code`."},
        403: {"description": "A filter or on_connected refused the connection."},
        404: {"description": "No handler for (hub, category, event)."},
        413: {"description": "Body over the configured cap."},
        415: {"description": "Not application/json or application/x-msgpack."},
    },
)
async def post_upstream(request: Request) -> Response:
    """Run the hub handler for one signed upstream request from the SignalR Service."""
    # Read from app.state rather than through a dependency: FastAPI's dependency solving
    # costs more than the whole dispatch on this hot path.
    webhook: Webhook = request.app.state.webhook
    try:
        result = await webhook.dispatch_stream(
            CaseInsensitiveMapping(request.headers.items()),
            request.stream(),
            request.query_params.get("code"),
        )
    except ClientDisconnect:
        return Response(status_code=400)  # the caller is gone; nobody reads this
    return Response(result.body, status_code=result.status_code, media_type=result.media_type)


class _Disconnected(Exception):
    """The client closed the connection before the body was read."""


async def _body(receive: Receive) -> AsyncIterator[bytes]:
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        more = message.get("more_body", False)
        yield message.get("body", b"")


class UpstreamFastPath:
    """Serve ``POST /runtime/webhooks/signalr`` before FastAPI's router; pass the rest on.

    ``app.main.BackendApp`` calls it first; as a middleware, install it with
    ``app.add_middleware(UpstreamFastPath)``. The pipeline is read from
    ``app.state.webhook``.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @staticmethod
    def serves(scope: Scope) -> bool:
        """Whether this fast path answers the request (its span is the request's)."""
        return bool(
            scope["type"] == "http" and scope["path"] == WEBHOOK_PATH and scope["method"] == "POST"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != WEBHOOK_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        webhook: Webhook = scope["app"].state.webhook
        headers = CaseInsensitiveMapping(
            (key.decode("latin-1"), value.decode("latin-1")) for key, value in scope["headers"]
        )
        code: str | None = None
        if scope["query_string"]:
            for key, value in parse_qsl(scope["query_string"].decode("latin-1")):
                if key == "code":
                    code = value  # the last one wins, as in Starlette's query_params
        try:
            result = await webhook.dispatch_stream(headers, _body(receive), code)
        except _Disconnected:
            return
        await _send(send, result)


async def _send(send: Send, result: WebhookResult) -> None:
    headers = [(b"content-length", str(len(result.body)).encode())]
    if result.media_type is not None:
        headers.append((b"content-type", result.media_type.encode()))
    await send({"type": "http.response.start", "status": result.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": result.body})
