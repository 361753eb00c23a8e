"""The data-plane REST API (docs/protocol.md §5): every 2022-06-01 operation, the ``/api/v1``
aliases, ``:generateToken``, ``auth/accessKey`` and group connection listing.

Every call needs a bearer JWT signed with an access key, unexpired, whose ``aud`` is the
request URL (tolerantly compared, see :mod:`emulator.auth`). Errors answer an
``ErrorDetail`` JSON body; not-found answers carry the ``x-ms-error-code`` header the
.NET SDK expects (``Warning.Connection.NotExisted`` ...). ``:execute`` and the
stream operations are recognised but answer 501 (not implemented by the emulator);
``:invoke`` (2024-12-01) sends the connection an Invocation with an id and answers with
the client's result (400 with the client's error text when it fails).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from signalr_protocol.errors import InvalidNameError
from signalr_protocol.messages import InvocationMessage
from signalr_protocol.names import (
    validate_connection_id,
    validate_group_name,
    validate_hub_name,
    validate_user_id,
)
from signalr_protocol.payload import dumps as dumps_json
from signalr_protocol.tokens import build_client_claims, key_id, mint_token

from .auth import authenticate, request_token
from .connection import ClientConnection
from .errors import (
    AuthenticationError,
    BadRequestError,
    MethodNotAllowedError,
    NotFoundError,
    NotSupportedError,
    RequestError,
    RequestTimeoutError,
)
from .fanout import deliver
from .http import Receive, Request, Scope, Send, json_response, read_body, send_response
from .identity import is_entra_token
from .lifecycle import ConnectionState
from .metrics import CloseReason
from .registry import Hub, hub_key
from .rest_payload import parse_send_body
from .rest_routes import Route, RouteMatch, match_route, route
from .state import EmulatorState

__all__ = ["ROUTES", "Call", "Handler", "handle_rest_request"]

logger = logging.getLogger("emulator.rest")

_VALIDATORS: dict[str, Callable[[str], str]] = {
    "hub": validate_hub_name,
    "group": validate_group_name,
    "user": validate_user_id,
    "connection": validate_connection_id,
    "stream": validate_connection_id,
}


class Call:
    """One REST call: the request, its matched route (decoded path parameters, API flavour),
    and the state."""

    __slots__ = ("body", "hub_name", "match", "request", "state")

    def __init__(self, state: EmulatorState, request: Request, match: RouteMatch[Handler]) -> None:
        self.state = state
        self.request = request
        self.match = match
        self.body = b""
        self.hub_name = hub_key(match.params.get("hub", ""), request.param("application"))
        """The service's name of the addressed hub (``""`` on routes without one)."""

    def param(self, name: str) -> str:
        return self.match.params[name]

    def hub(self) -> Hub | None:
        """The hub if it exists (reads never create one)."""
        return self.state.registry.find_hub(self.hub_name)

    def excluded(self) -> frozenset[str]:
        values = self.request.params("excluded")
        return frozenset(v for item in values for v in item.split(",") if v)

    def int_param(self, name: str, *, minimum: int, maximum: int = 2**31 - 1) -> int | None:
        raw = self.request.param(name)
        if raw is None or raw == "":
            return None
        try:
            value = int(raw)
        except ValueError as exc:
            raise BadRequestError(f"The '{name}' parameter must be an integer.") from exc
        if not minimum <= value <= maximum:
            raise BadRequestError(
                f"The '{name}' parameter must be between {minimum} and {maximum}."
            )
        return value


Result = tuple[int, Any, tuple[tuple[str, str], ...]]
_INVOKE_TIMEOUT = 60.0  # seconds a REST :invoke waits for the client's Completion


def _ok(status: int, payload: Any = None) -> Result:
    return status, payload, ()


def _exists(found: bool, code: str, what: str) -> Result:
    if found:
        return _ok(200)
    raise NotFoundError(f"{what} does not exist.", error_code=code)


def _send(
    call: Call, receivers: Iterable[ClientConnection], excluded: frozenset[str] = frozenset()
) -> Result:
    message = parse_send_body(call.request.headers.get("content-type"), call.body)
    state = call.state
    count = deliver(receivers, message, excluded, state.metrics)
    logger.debug("REST send to %d connection(s) of hub %s", count, call.hub_name)
    trace = state.trace
    if trace.active:
        params = call.match.params
        trace.publish(
            "message.out",
            hub=call.hub_name,
            target=getattr(message.message, "target", None),
            size=message.size,
            receivers=count,
            scope=_SCOPES.get(getattr(call.match.handler, "__name__", ""), "all"),
            user=params.get("user"),
            group=params.get("group"),
            connectionId=params.get("connection"),
        )
    return _ok(202)


_SCOPES = {
    "send_all": "all",
    "send_user": "user",
    "send_group": "group",
    "send_connection": "connection",
}


def send_all(call: Call) -> Result:
    hub = call.hub()
    return _send(call, hub.connections.values() if hub else [], call.excluded())


def send_user(call: Call) -> Result:
    hub = call.hub()
    return _send(call, hub.user_connections(call.param("user")) if hub else [])


def send_connection(call: Call) -> Result:
    hub = call.hub()
    conn = hub.connection(call.param("connection")) if hub else None
    return _send(call, [conn] if conn else [])


def send_group(call: Call) -> Result:
    hub = call.hub()
    return _send(call, hub.group_connections(call.param("group")) if hub else [], call.excluded())


def _close(
    call: Call, connections: Iterable[ClientConnection], excluded: frozenset[str] = frozenset()
) -> None:
    reason = call.request.param("reason") or None
    for conn in connections:
        if conn.connection_id not in excluded:
            logger.info("REST close: connection %s hub %s", conn.connection_id, conn.hub)
            conn.close(reason, allow_reconnect=True, category=CloseReason.CLOSED_BY_APP_SERVER)


async def invoke_connection(call: Call) -> Result:
    """Send an Invocation with an id to one connection and answer with its result."""
    hub = call.hub()
    conn = hub.connection(call.param("connection")) if hub else None
    if conn is None or conn.state is not ConnectionState.CONNECTED:
        raise NotFoundError(
            "The connection does not exist.", error_code="Warning.Connection.NotExisted"
        )
    codec = conn.codec
    assert codec is not None  # set once CONNECTED
    payload = parse_send_body(call.request.headers.get("content-type"), call.body).message
    assert isinstance(payload, InvocationMessage)
    invocation_id = secrets.token_hex(8)
    future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    if conn.pending_results is None:
        conn.pending_results = {}
    conn.pending_results[invocation_id] = future
    message = dataclasses.replace(payload, invocation_id=invocation_id)
    try:
        data = codec.encode(message)
        if conn.enqueue(data):
            call.state.metrics.messages_out(1, len(data))
        async with asyncio.timeout(_INVOKE_TIMEOUT):
            completion = await future
    except TimeoutError as exc:
        raise RequestTimeoutError("The client did not answer the invocation in time.") from exc
    except ConnectionError as exc:
        raise NotFoundError(
            "The connection closed before it answered.",
            error_code="Warning.Connection.NotExisted",
        ) from exc
    finally:
        if conn.pending_results is not None:
            conn.pending_results.pop(invocation_id, None)
    if completion.error is not None:
        raise BadRequestError(completion.error, error_code="Error.ClientInvocation")
    try:
        dumps_json(completion.result)  # MessagePack carries what JSON cannot
    except ValueError as exc:
        raise BadRequestError(
            "The client's result holds NaN or an infinity, which JSON cannot carry.",
            error_code="Error.ClientInvocation",
        ) from exc
    except TypeError as exc:
        raise BadRequestError(
            f"The client's result cannot be written as JSON: {exc}.",
            error_code="Error.ClientInvocation",
        ) from exc
    return _ok(200, {"result": completion.result})


def close_all(call: Call) -> Result:
    hub = call.hub()
    _close(call, list(hub.connections.values()) if hub else [], call.excluded())
    return _ok(204)


def close_user(call: Call) -> Result:
    hub = call.hub()
    _close(call, hub.user_connections(call.param("user")) if hub else [], call.excluded())
    return _ok(204)


def close_group(call: Call) -> Result:
    hub = call.hub()
    _close(call, hub.group_connections(call.param("group")) if hub else [], call.excluded())
    return _ok(204)


def close_connection(call: Call) -> Result:
    hub = call.hub()
    conn = hub.connection(call.param("connection")) if hub else None
    _close(call, [conn] if conn else [])
    return _ok(202 if call.match.v1 else 200)


def connection_exists(call: Call) -> Result:
    hub = call.hub()
    found = hub is not None and hub.connection(call.param("connection")) is not None
    return _exists(found, "Warning.Connection.NotExisted", "The connection")


def user_exists(call: Call) -> Result:
    hub = call.hub()
    found = hub is not None and bool(hub.users.get(call.param("user")))
    return _exists(found, "Warning.User.NotExisted", "The user")


def group_exists(call: Call) -> Result:
    hub = call.hub()
    found = hub is not None and hub.group_exists(call.param("group"))
    return _exists(found, "Warning.Group.NotExisted", "The group")


def user_in_group(call: Call) -> Result:
    hub = call.hub()
    found = hub is not None and hub.user_in_group(call.param("group"), call.param("user"))
    return _exists(found, "Info.User.NotInGroup", "The user in the group")


def add_connection_group(call: Call) -> Result:
    hub = call.state.registry.hub(call.hub_name)
    if not hub.add_to_group(call.param("group"), call.param("connection")):
        raise NotFoundError(
            "The connection does not exist.", error_code="Error.Connection.NotExisted"
        )
    return _ok(200)


def remove_connection_group(call: Call) -> Result:
    hub = call.hub()
    connection = call.param("connection")
    if hub is None or hub.connection(connection) is None:
        raise NotFoundError(
            "The connection does not exist.", error_code="Warning.Connection.NotExisted"
        )
    if not hub.remove_from_group(call.param("group"), connection):
        raise NotFoundError(
            "The connection is not in the group.", error_code="Info.Connection.NotInGroup"
        )
    return _ok(200)


def remove_connection_all_groups(call: Call) -> Result:
    hub = call.hub()
    if hub is not None:
        hub.remove_from_all_groups(call.param("connection"))
    return _ok(200)


def add_user_group(call: Call) -> Result:
    ttl = call.int_param("ttl", minimum=0)
    call.state.registry.hub(call.hub_name).add_user_to_group(
        call.param("group"), call.param("user"), None if ttl is None else float(ttl)
    )
    return _ok(202 if call.match.v1 else 200)


def remove_user_group(call: Call) -> Result:
    hub = call.hub()
    if hub is not None:
        hub.remove_user_from_group(call.param("group"), call.param("user"))
    return _ok(202 if call.match.v1 else 204)


def remove_user_all_groups(call: Call) -> Result:
    hub = call.hub()
    if hub is not None:
        hub.remove_user_from_all_groups(call.param("user"))
    return _ok(200 if call.match.v1 else 204)


def list_group(call: Call) -> Result:
    page_size = call.int_param("maxpagesize", minimum=1, maximum=200) or 200
    top = call.int_param("top", minimum=1)
    token = call.request.param("continuationToken")
    start = 0
    if token:
        try:
            start = int(base64.urlsafe_b64decode(token.encode("ascii")).decode("ascii"))
        except (ValueError, UnicodeError) as exc:
            raise BadRequestError("Invalid continuationToken.") from exc
        if start < 0:
            raise BadRequestError("Invalid continuationToken.")
    hub = call.hub()
    members = hub.group_connections(call.param("group")) if hub else []
    members.sort(key=lambda conn: conn.connection_id)
    end = len(members) if top is None else min(len(members), top)
    stop = min(end, start + page_size)
    page = [
        {"connectionId": c.connection_id, **({"userId": c.user_id} if c.user_id else {})}
        for c in members[start:stop]
    ]
    payload: dict[str, Any] = {"value": page}
    if stop < end:
        request = call.request
        next_token = base64.urlsafe_b64encode(str(stop).encode()).decode()
        query = [(k, v) for k, v in request.query if k.lower() != "continuationtoken"]
        query.append(("continuationToken", next_token))
        payload["nextLink"] = (
            f"{request.scheme}://{request.headers.get('host', 'localhost')}"
            f"{request.raw_path}?{urlencode(query)}"
        )
    return _ok(200, payload)


def generate_token(call: Call) -> Result:
    minutes = call.int_param("minutesToExpire", minimum=1) or 60
    user_id = call.request.param("userId") or None
    if user_id is not None:
        try:
            validate_user_id(user_id)
        except InvalidNameError as exc:
            raise BadRequestError(str(exc)) from exc
    request = call.request
    audience = f"{request.scheme}://{request.host}/client/?hub={call.hub_name}"
    state = call.state
    # Local auth disabled: sign with the current temporary key (header kid = its KeyId),
    # the only kind of client token the client endpoint then accepts.
    signing, kid = state.settings.access_key, None
    if state.settings.keyless:
        temporary = state.temp_keys.current()
        signing, kid = temporary.access_key, temporary.key_id
    token = mint_token(
        signing,
        audience,
        lifetime=timedelta(minutes=minutes),
        claims=build_client_claims(user_id),
        kid=kid,
    )
    return _ok(200, {"token": token})


def access_key(call: Call) -> Result:
    """``GET auth/accessKey``: an Entra caller gets a temporary key (rotating); an
    access-key caller (local auth on) gets the access key itself."""
    state = call.state
    token = request_token(call.request, allow_query=False)
    if state.made_entra is not None and token is not None and is_entra_token(token):
        return _ok(200, state.temp_keys.current().as_json())  # verified by authenticate
    if state.settings.keyless:
        raise AuthenticationError(
            "Local auth is disabled: ask for a key with a Microsoft Entra token."
        )
    key = state.settings.access_key
    return _ok(200, {"AccessKey": key, "KeyId": key_id(key)})


def health(call: Call) -> Result:
    return _ok(200)


def unsupported(call: Call) -> Result:
    raise NotSupportedError("This operation is not implemented by the emulator.")


Handler = Callable[[Call], Result | Awaitable[Result]]
"""An operation: takes the call, returns (or awaits) ``(status, payload, headers)``."""

# A user's group membership has two paths (user first or group first), same handlers.
_USER_IN_GROUP: dict[str, Handler] = {
    "PUT": add_user_group,
    "DELETE": remove_user_group,
    "HEAD": user_in_group,
    "GET": user_in_group,
}

ROUTES: tuple[Route[Handler], ...] = (
    route("health", HEAD=health, GET=health),
    route("auth/accessKey", GET=access_key),
    route("hubs/{hub}", POST=send_all),
    route("hubs/{hub}/:send", POST=send_all),
    route("hubs/{hub}/:closeConnections", POST=close_all),
    route("hubs/{hub}/:generateToken", POST=generate_token),
    route("hubs/{hub}/:execute", POST=unsupported),
    route("hubs/{hub}/users/{user}", POST=send_user, HEAD=user_exists, GET=user_exists),
    route("hubs/{hub}/users/{user}/:send", POST=send_user),
    route("hubs/{hub}/users/{user}/:closeConnections", POST=close_user),
    route("hubs/{hub}/users/{user}/groups", DELETE=remove_user_all_groups),
    route("hubs/{hub}/users/{user}/groups/{group}", _USER_IN_GROUP),
    route(
        "hubs/{hub}/connections/{connection}",
        POST=send_connection,
        DELETE=close_connection,
        HEAD=connection_exists,
        GET=connection_exists,
    ),
    route("hubs/{hub}/connections/{connection}/:send", POST=send_connection),
    route("hubs/{hub}/connections/{connection}/:invoke", POST=invoke_connection),
    route("hubs/{hub}/connections/{connection}/groups", DELETE=remove_connection_all_groups),
    route("hubs/{hub}/connections/{connection}/streams/{stream}/:send", POST=unsupported),
    route("hubs/{hub}/connections/{connection}/streams/{stream}/:complete", POST=unsupported),
    route("hubs/{hub}/groups/{group}", POST=send_group, HEAD=group_exists, GET=group_exists),
    route("hubs/{hub}/groups/{group}/:send", POST=send_group),
    route("hubs/{hub}/groups/{group}/:closeConnections", POST=close_group),
    route("hubs/{hub}/groups/{group}/connections", GET=list_group),
    route(
        "hubs/{hub}/groups/{group}/connections/{connection}",
        PUT=add_connection_group,
        DELETE=remove_connection_group,
    ),
    route("hubs/{hub}/groups/{group}/users/{user}", _USER_IN_GROUP),
)
"""Every REST operation: path template (under ``/api`` or ``/api/v1``) and method → handler,
matched in order by :func:`emulator.rest_routes.match_route`."""


def _validate(call: Call) -> None:
    try:
        for name, value in call.match.params.items():
            _VALIDATORS[name](value)
        application = call.request.param("application")
        if application:
            validate_hub_name(application)
    except InvalidNameError as exc:
        raise BadRequestError(str(exc), error_code="Error.InvalidArgument") from exc


async def _error(send: Send, exc: RequestError, head: bool) -> None:
    headers = [("x-ms-error-code", exc.error_code)]
    if isinstance(exc, MethodNotAllowedError):
        headers.append(("allow", ", ".join(exc.allowed)))
    elif isinstance(exc, AuthenticationError):
        headers.append(("www-authenticate", exc.challenge))
    if head:
        await send_response(send, exc.status_code, headers=headers)
    else:
        body = {"code": exc.error_code, "message": exc.message}
        await json_response(send, exc.status_code, body, headers=headers)


async def handle_rest_request(
    state: EmulatorState, scope: Scope, receive: Receive, send: Send
) -> None:
    """Serve one REST request under ``/api``."""
    request = Request(scope)
    head = request.method == "HEAD"
    status = 500
    started = time.perf_counter()
    operation: str | None = None
    hub: str | None = None
    try:
        match = match_route(ROUTES, request.raw_path, request.method)
        if match is None:
            raise NotFoundError(f"No REST operation at {request.path}.")
        hub = match.params.get("hub")
        handler = match.handler
        if handler is not None:
            operation = handler.__name__
        if handler is None:
            raise MethodNotAllowedError(
                f"{request.method} is not allowed here; use {', '.join(match.allowed)}.",
                allowed=match.allowed,
            )
        token = request_token(request, allow_query=False)
        authenticate(
            request,
            token,
            state.settings.keys,
            request.raw_path,
            extra_hosts=state.settings.audience_hosts,
            temp_keys=state.temp_keys,
            keyless=state.settings.keyless,
            entra=state.made_entra,
        )
        call = Call(state, request, match)
        _validate(call)
        settings = state.settings
        call.body = await read_body(receive, settings.max_rest_body, settings.body_read_timeout)
        outcome = handler(call)
        if inspect.isawaitable(outcome):
            outcome = await outcome
        status, payload, headers = outcome
        if payload is None or head:
            await send_response(send, status, headers=headers)
        else:
            await json_response(send, status, payload, headers=headers)
    except RequestError as exc:
        status = exc.status_code
        await _error(send, exc, head)
    finally:
        logger.info("REST %s %s -> %d", request.method, request.raw_path, status)
        elapsed = time.perf_counter() - started
        state.metrics.rest_request(operation, status, elapsed)
        state.trace.publish(
            "rest",
            hub=hub,
            operation=operation,
            method=request.method,
            status=status,
            latencyMs=round(elapsed * 1000, 2),
        )
