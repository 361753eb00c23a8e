"""Route matching of the data-plane REST API, on the raw (percent-encoded) path.

A path is split on ``/`` *before* percent-decoding, so a group called ``a/b`` (sent as
``a%2Fb``) is one segment. Placeholders are ``{hub}``, ``{user}``, ``{group}``,
``{connection}`` and ``{stream}``; ``:send``-style action segments are literals. Both the
``/api`` (2022-06-01 and later) and the ``/api/v1`` prefix accept every route, as
Microsoft's emulator does; a few operations answer a different status under ``/api/v1``.

The table itself, from path template and method straight to the handler function, is
:data:`emulator.rest.ROUTES`; this module only matches a request against such a table.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import unquote

from .errors import BadRequestError

__all__ = ["Route", "RouteMatch", "match_route", "route"]

H = TypeVar("H")


@dataclass(frozen=True, slots=True)
class Route(Generic[H]):
    """One path template (split on ``/``) and its handler per HTTP method."""

    template: tuple[str, ...]
    methods: Mapping[str, H]


@dataclass(frozen=True, slots=True)
class RouteMatch(Generic[H]):
    """A matched route: the handler (``None`` when the path exists but not for the method),
    the decoded placeholders, the API flavour, and the methods the path takes."""

    handler: H | None
    params: dict[str, str]
    v1: bool
    allowed: tuple[str, ...]


def route(path: str, methods: Mapping[str, H] | None = None, **by_method: H) -> Route[H]:
    """A :class:`Route` for ``path`` (e.g. ``"hubs/{hub}/:send"``) with handlers per method,
    given as a mapping, as keywords (``POST=send_all``), or both."""
    return Route(tuple(path.split("/")), {**(methods or {}), **by_method})


def _decode(segment: str) -> str:
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError as exc:
        raise BadRequestError(f"A path segment is not valid percent-encoded UTF-8: {exc}.") from exc


def match_route(routes: Sequence[Route[H]], raw_path: str, method: str) -> RouteMatch[H] | None:
    """Match a raw REST path (``/api/...``) and method against ``routes``, in order.

    Returns:
        ``None`` when no route has this shape; a match whose ``handler`` is ``None``
        when the shape exists but not for ``method`` (answer 405 with ``allowed``).

    Raises:
        BadRequestError: a path segment does not decode to UTF-8.
    """
    parts = raw_path.split("/")
    if len(parts) < 3 or parts[0] != "" or parts[1] != "api":
        return None
    v1 = parts[2] == "v1"
    segments = parts[3:] if v1 else parts[2:]
    for candidate in routes:
        template = candidate.template
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
            handler = candidate.methods.get(method)
            return RouteMatch(handler, decoded, v1, tuple(candidate.methods))
    return None
