"""Route table of the data-plane REST API, matched on the raw (percent-encoded) path.

A path is split on ``/`` *before* percent-decoding, so a group called ``a/b`` (sent as
``a%2Fb``) is one segment. Placeholders are ``{hub}``, ``{user}``, ``{group}``,
``{connection}`` and ``{stream}``; ``:send``-style action segments are literals. Both the
``/api`` (2022-06-01 and later) and the ``/api/v1`` prefix accept every route, as
Microsoft's emulator does; a few operations answer a different status under ``/api/v1``.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from .errors import BadRequestError

__all__ = ["ROUTES", "Route", "RouteMatch", "match_route"]


@dataclass(frozen=True, slots=True)
class Route:
    """One path template and the operation names per HTTP method."""

    template: tuple[str, ...]
    methods: dict[str, str]


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """A matched route: operation name, decoded placeholders, and the API flavour."""

    operation: str | None
    params: dict[str, str]
    v1: bool
    allowed: tuple[str, ...]


def _r(path: str, **methods: str) -> Route:
    return Route(tuple(path.split("/")), methods)


# A user's group membership has two paths (user first or group first), same operations.
_USER_IN_GROUP = {
    "PUT": "add_user_group",
    "DELETE": "remove_user_group",
    "HEAD": "user_in_group",
    "GET": "user_in_group",
}

ROUTES: tuple[Route, ...] = (
    _r("health", HEAD="health", GET="health"),
    _r("auth/accessKey", GET="access_key"),
    _r("hubs/{hub}", POST="send_all"),
    _r("hubs/{hub}/:send", POST="send_all"),
    _r("hubs/{hub}/:closeConnections", POST="close_all"),
    _r("hubs/{hub}/:generateToken", POST="generate_token"),
    _r("hubs/{hub}/:execute", POST="unsupported"),
    _r("hubs/{hub}/users/{user}", POST="send_user", HEAD="user_exists", GET="user_exists"),
    _r("hubs/{hub}/users/{user}/:send", POST="send_user"),
    _r("hubs/{hub}/users/{user}/:closeConnections", POST="close_user"),
    _r("hubs/{hub}/users/{user}/groups", DELETE="remove_user_all_groups"),
    _r("hubs/{hub}/users/{user}/groups/{group}", **_USER_IN_GROUP),
    _r(
        "hubs/{hub}/connections/{connection}",
        POST="send_connection",
        DELETE="close_connection",
        HEAD="connection_exists",
        GET="connection_exists",
    ),
    _r("hubs/{hub}/connections/{connection}/:send", POST="send_connection"),
    _r("hubs/{hub}/connections/{connection}/:invoke", POST="invoke_connection"),
    _r("hubs/{hub}/connections/{connection}/groups", DELETE="remove_connection_all_groups"),
    _r("hubs/{hub}/connections/{connection}/streams/{stream}/:send", POST="unsupported"),
    _r("hubs/{hub}/connections/{connection}/streams/{stream}/:complete", POST="unsupported"),
    _r("hubs/{hub}/groups/{group}", POST="send_group", HEAD="group_exists", GET="group_exists"),
    _r("hubs/{hub}/groups/{group}/:send", POST="send_group"),
    _r("hubs/{hub}/groups/{group}/:closeConnections", POST="close_group"),
    _r("hubs/{hub}/groups/{group}/connections", GET="list_group"),
    _r(
        "hubs/{hub}/groups/{group}/connections/{connection}",
        PUT="add_connection_group",
        DELETE="remove_connection_group",
    ),
    _r("hubs/{hub}/groups/{group}/users/{user}", **_USER_IN_GROUP),
)


def _decode(segment: str) -> str:
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError as exc:
        raise BadRequestError(f"A path segment is not valid percent-encoded UTF-8: {exc}.") from exc


def match_route(raw_path: str, method: str) -> RouteMatch | None:
    """Match a raw REST path (``/api/...``) and method.

    Returns:
        ``None`` when no route has this shape; a match whose ``operation`` is ``None``
        when the shape exists but not for ``method`` (answer 405 with ``allowed``).

    Raises:
        BadRequestError: a path segment does not decode to UTF-8.
    """
    parts = raw_path.split("/")
    if len(parts) < 3 or parts[0] != "" or parts[1] != "api":
        return None
    v1 = parts[2] == "v1"
    segments = parts[3:] if v1 else parts[2:]
    for route in ROUTES:
        template = route.template
        if len(template) != len(segments):
            continue
        params: dict[str, str] = {}
        for want, got in zip(template, segments, strict=True):
            if want.startswith("{"):
                params[want[1:-1]] = got
            elif want != got:
                break
        else:
            decoded = {name: _decode(value) for name, value in params.items()}
            operation = route.methods.get(method)
            return RouteMatch(operation, decoded, v1, tuple(route.methods))
    return None
