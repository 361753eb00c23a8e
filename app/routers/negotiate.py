"""``/api/negotiate`` and ``/api/{hub}/negotiate``: the SignalRConnectionInfo binding.

The official clients are pointed at ``{app}/api`` (default hub) or ``{app}/api/{hub}``
and append ``/negotiate`` themselves, with POST; GET is served too, as an HTTP-triggered
Function whose ``methods`` are left unset answers every method.

Negotiate is the hottest route (every client connect and reconnect), so requests are
served by :class:`NegotiateFastPath`, a plain ASGI middleware that skips FastAPI's
routing and dependency solving (measured at about two thirds of the request's cost).
The :data:`router` below declares the same routes, so they appear in the OpenAPI
document and are still served by FastAPI if the middleware is not installed; both paths
call :func:`negotiate_response`.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from starlette.datastructures import Headers, QueryParams
from starlette.types import ASGIApp, Receive, Scope, Send

from app.exceptions import edge_status, error_body
from app.services.gateway import body_read_timeout
from signalr_protocol.errors import SignalRError

__all__ = ["ConnectionInfoPublic", "NegotiateFastPath", "negotiate_response", "router"]

router = APIRouter(prefix="/api", tags=["negotiate"])


class ConnectionInfoPublic(BaseModel):
    """Where to connect, and the bearer token to connect with."""

    url: str = Field(examples=["http://localhost:8888/client/?hub=chat"])
    accessToken: str


_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": ConnectionInfoPublic, "description": "The connection info."},
    400: {"description": "Invalid hub name, user id or App Service principal."},
    404: {"description": "No hub of that name is registered."},
    408: {"description": "A declared body did not arrive within SIGNALR_BODY_READ_TIMEOUT."},
    503: {
        "description": "A hub's negotiate hook could not reach the SignalR Service, or a "
        "keyless endpoint has no usable signing key (the reason is in the body)."
    },
}


async def negotiate_response(
    state: Any, hub: str | None, headers: Headers, query: QueryParams
) -> tuple[int, bytes]:
    """Negotiate and return ``(status, JSON body)``; errors become their JSON answers.

    Args:
        state: the application's ``app.state`` (settings and negotiator live there).
        hub: the hub from the path, or ``None`` for the default hub.
        headers: the request headers.
        query: the request query.
    """
    telemetry = state.telemetry
    metrics = telemetry.metrics
    name = hub if hub is not None else state.settings.default_hub
    with telemetry.negotiate(name, headers=headers) as span:
        try:
            info = await state.negotiator.negotiate(name, headers, query)
        except SignalRError as exc:
            if metrics is not None:
                metrics.negotiate_failed()
            telemetry.failed(span, getattr(exc, "error_code", None) or type(exc).__name__)
            # edge_status: a hub's negotiate hook may call the service, whose errors carry
            # the service's status (0 when it did not answer), not ours.
            status = edge_status(exc)
            if span.is_recording():
                span.set_attribute("http.response.status_code", status)
            return status, json.dumps(error_body(exc)).encode()
        if metrics is not None:
            metrics.negotiated()
        if span.is_recording():
            span.set_attribute("http.response.status_code", 200)
            if info.user_id is not None:
                span.set_attribute("enduser.id", info.user_id)
    body = json.dumps({"url": info.url, "accessToken": info.access_token}).encode()
    return 200, body


_PATH = re.compile(r"^/api(?:/(?P<hub>[^/]+))?/negotiate/?$")
_JSON = [(b"content-type", b"application/json")]


class NegotiateFastPath:
    """Serve negotiate requests before FastAPI's router; pass everything else on
    (``app.main.BackendApp`` calls it before ``FastAPI.__call__``, behind CORS)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    @staticmethod
    def serves(scope: Scope) -> bool:
        """Whether this fast path answers the request (its span is the request's)."""
        return (
            scope["type"] == "http"
            and scope["method"] in ("POST", "GET")
            and _PATH.match(scope["path"]) is not None
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "GET"):
            await self.app(scope, receive, send)
            return
        match = _PATH.match(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        # Drain the (normally empty) request body so keep-alive connections stay usable,
        # within SIGNALR_BODY_READ_TIMEOUT: a body declared and never sent is a 408 (and
        # the connection is closed, its unread body still on it).
        seconds = state.settings.body_read_timeout
        try:
            async with asyncio.timeout(seconds):
                more = True
                while more:
                    message = await receive()
                    more = message.get("more_body", False)
        except TimeoutError:
            error = body_read_timeout(seconds)
            body = json.dumps(error_body(error)).encode()
            await _answer(send, error.status_code, body, close=True)
            return
        status, body = await negotiate_response(
            state,
            match.group("hub"),
            Headers(scope=scope),
            QueryParams(scope["query_string"]),
        )
        await _answer(send, status, body)


async def _answer(send: Send, status: int, body: bytes, *, close: bool = False) -> None:
    headers = [*_JSON, (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _negotiate(request: Request, hub: str | None) -> Response:
    status, body = await negotiate_response(
        request.app.state, hub, request.headers, request.query_params
    )
    return Response(body, status_code=status, media_type="application/json")


@router.post(
    "/negotiate",
    responses=_RESPONSES,
    response_class=Response,
    summary="Negotiate a connection to the default hub",
    operation_id="negotiate_default_hub",
)
@router.get(
    "/negotiate",
    responses=_RESPONSES,
    response_class=Response,
    summary="Negotiate a connection to the default hub (GET)",
    operation_id="negotiate_default_hub_get",
)
async def negotiate_default_hub(request: Request) -> Response:
    """Return the service URL and an access token for the default hub."""
    return await _negotiate(request, None)


@router.post(
    "/{hub}/negotiate",
    responses=_RESPONSES,
    response_class=Response,
    summary="Negotiate a connection to a hub",
    operation_id="negotiate_hub",
)
@router.get(
    "/{hub}/negotiate",
    responses=_RESPONSES,
    response_class=Response,
    summary="Negotiate a connection to a hub (GET)",
    operation_id="negotiate_hub_get",
)
async def negotiate_hub(request: Request, hub: str) -> Response:
    """Return the service URL and an access token for ``hub`` (case-insensitive)."""
    return await _negotiate(request, hub)
