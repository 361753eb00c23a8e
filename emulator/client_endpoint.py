"""The client endpoint: ``POST /client/negotiate?hub=`` and the transports on ``/client/``.

Negotiate answers version 0 (``connectionId`` only) or 1 (plus ``connectionToken``), as
the client asks, with all three transports, and ``useStatefulReconnect: true`` to a client
asking for it (:mod:`emulator.stateful`, which also lets a WebSocket request resume a
connection whose transport dropped). Every request needs a valid access token
(``Authorization: Bearer``, or ``access_token`` in the query for WebSocket and
Server-Sent Events requests). A WebSocket request without ``id`` creates a connection on
the spot — what ``pysignalr`` and ``signalrcore`` do after a negotiate redirect.
"""

from __future__ import annotations

import logging
import secrets
from urllib.parse import urlencode

from signalr_protocol.errors import InvalidNameError
from signalr_protocol.names import validate_hub_name
from signalr_protocol.tokens import user_id_from_claims

from . import stateful
from .auth import authenticate, claim_pairs, request_token
from .connection import ClientConnection
from .errors import BadRequestError, ConflictError, MethodNotAllowedError, NotFoundError
from .http import Receive, Request, Scope, Send, json_response
from .lifecycle import ConnectionState, Transport
from .registry import hub_key
from .state import EmulatorState
from .transports import (
    handle_delete,
    handle_long_poll,
    handle_post,
    handle_server_sent_events,
    handle_websocket,
)

__all__ = ["AVAILABLE_TRANSPORTS", "handle_client_request"]

logger = logging.getLogger("emulator.connections")

AVAILABLE_TRANSPORTS = [
    {"transport": transport.value, "transferFormats": transport.transfer_formats}
    for transport in Transport
]
"""The negotiate answer's ``availableTransports``: every transport, in preference order."""
_MAX_NEGOTIATE_VERSION = 1
_HIDDEN_QUERY = frozenset({"access_token"})


def _hub(request: Request) -> str:
    hub = request.param("hub")
    if not hub:
        raise BadRequestError("The 'hub' query parameter is required.")
    application = request.param("application")
    try:
        validate_hub_name(hub)
        if application:
            validate_hub_name(application)
    except InvalidNameError as exc:
        raise BadRequestError(str(exc)) from exc
    return hub_key(hub, application)


def _client_query(request: Request) -> str:
    """The query the webhook sees in ``X-ASRS-Client-Query``: the request's, minus
    ``access_token``.

    It is taken from the transport request that starts the connection (the WebSocket upgrade,
    the Server-Sent Events GET, the first long-poll GET), not from negotiate, as Microsoft's
    emulator does (Azure/azure-signalr
    ``src/Microsoft.Azure.SignalR.Emulator/HubEmulator/HttpUpstreamPropertiesFeature.cs``: the
    query string of the connection's ``HttpContext``, sent by ``Upstreams/HttpUpstreamTrigger.cs``),
    so ``hub``, ``id`` and whatever the client put on its connect URL reach the webhook.
    """
    return urlencode([(k, v) for k, v in request.query if k.lower() not in _HIDDEN_QUERY])


def _new_connection(
    state: EmulatorState, request: Request, hub: str, claims: dict[str, object], *, v0: bool
) -> ClientConnection:
    connection_id = secrets.token_urlsafe(16)
    query = _client_query(request)
    conn = ClientConnection(
        connection_id=connection_id,
        token=connection_id if v0 else secrets.token_urlsafe(16),
        hub=hub,
        user_id=user_id_from_claims(claims),
        claims=claim_pairs(dict(claims)),
        query=query,
        max_buffered_bytes=state.settings.max_buffered_bytes,
    )
    state.registry.track(conn)
    return conn


async def _negotiate(state: EmulatorState, request: Request, hub: str, send: Send) -> None:
    if request.method != "POST":
        raise MethodNotAllowedError("Negotiate takes POST.")
    raw_version = request.param("negotiateVersion") or "0"
    try:
        version = int(raw_version)
    except ValueError as exc:
        raise BadRequestError(f"Invalid negotiateVersion {raw_version!r}.") from exc
    if version < 0:
        raise BadRequestError(f"Invalid negotiateVersion {raw_version!r}.")
    version = min(version, _MAX_NEGOTIATE_VERSION)
    claims = _authenticate(state, request, hub, allow_query=False)
    conn = _new_connection(state, request, hub, claims, v0=version == 0)
    body: dict[str, object] = {"negotiateVersion": version, "connectionId": conn.connection_id}
    if version >= 1:
        body["connectionToken"] = conn.token
    body["availableTransports"] = AVAILABLE_TRANSPORTS
    if stateful.requested(request, state.settings):
        conn.stateful = True
        body["useStatefulReconnect"] = True
    logger.info("Negotiated: connection %s hub %s user %s", conn.connection_id, hub, conn.user_id)
    await json_response(send, 200, body)


def _authenticate(
    state: EmulatorState, request: Request, hub: str, *, allow_query: bool
) -> dict[str, object]:
    settings = state.settings
    token = request_token(request, allow_query=allow_query)
    return authenticate(
        request,
        token,
        settings.keys,
        f"/client/?hub={hub}",
        extra_hosts=settings.audience_hosts,
        temp_keys=state.temp_keys,
        keyless=settings.keyless,
    )


def _find(state: EmulatorState, request: Request) -> ClientConnection:
    token = request.param("id")
    if not token:
        raise BadRequestError("Connection ID required")
    conn = state.registry.lookup(token)
    if conn is None:
        raise NotFoundError("No Connection with that ID")
    return conn


async def handle_client_request(
    state: EmulatorState, scope: Scope, receive: Receive, send: Send
) -> None:
    """Serve any request under ``/client`` (errors are raised as :class:`RequestError`)."""
    request = Request(scope)
    path = request.path.rstrip("/")
    hub = _hub(request)
    if path == "/client/negotiate":
        await _negotiate(state, request, hub, send)
        return
    if path != "/client":
        raise NotFoundError(f"No such client endpoint path: {request.path}.")
    if scope["type"] == "websocket":
        claims = _authenticate(state, request, hub, allow_query=True)
        if request.param("id"):
            conn = _find(state, request)
            if conn.state is not ConnectionState.NEGOTIATED and not await stateful.take_over(
                conn, state.settings.upstream_timeout
            ):
                raise ConflictError("This connection already has a transport.")
        else:
            conn = _new_connection(state, request, hub, claims, v0=True)
        if conn.hub != hub:
            raise NotFoundError("No Connection with that ID on this hub")
        if conn.state is ConnectionState.NEGOTIATED:
            conn.query = _client_query(request)
        del request, claims  # not needed for the connection's lifetime
        await handle_websocket(state, conn, scope, receive, send)
        return
    method = request.method
    sse = "text/event-stream" in request.headers.get("accept", "")
    _authenticate(state, request, hub, allow_query=sse and method == "GET")
    conn = _find(state, request)
    if conn.hub != hub:
        raise NotFoundError("No Connection with that ID on this hub")
    if method == "GET":
        if conn.state is ConnectionState.NEGOTIATED:  # the transport's first request
            conn.query = _client_query(request)
        if sse:
            await handle_server_sent_events(state, conn, receive, send)
        else:
            await handle_long_poll(state, conn, receive, send)
    elif method == "POST":
        await handle_post(state, conn, receive, send)
    elif method == "DELETE":
        await handle_delete(state, conn, receive, send)
    else:
        raise MethodNotAllowedError(f"{method} is not supported on /client/.")
