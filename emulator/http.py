"""Small ASGI helpers: request parsing and plain responses, without a framework.

The emulator speaks raw ASGI so it can route on the raw path (names with ``%2F``) and
keep per-request overhead low.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from signalr_protocol.payload import dumps

from .errors import PayloadTooLargeError, RequestTimeoutError

__all__ = ["Receive", "Scope", "Send", "Request", "json_response", "read_body", "send_response"]

Scope = dict[str, Any]
Receive = Any  # Callable[[], Awaitable[dict[str, Any]]]
Send = Any  # Callable[[dict[str, Any]], Awaitable[None]]


class Request:
    """The parts of an ASGI HTTP/WebSocket scope the emulator reads.

    Attributes:
        method: upper-case HTTP method (``GET`` for WebSocket upgrades).
        path: the decoded path.
        raw_path: the path as sent (percent-encoded), without the query.
        query: ``(name, value)`` pairs, decoded, blanks kept, order kept.
        headers: lower-case header names to values (last one wins, ``latin-1``).
        scheme: ``http`` or ``https`` (``ws``/``wss`` mapped).
    """

    __slots__ = (
        "headers",
        "method",
        "path",
        "query",
        "query_string",
        "raw_path",
        "scheme",
        "scope",
    )

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.method: str = scope.get("method", "GET")
        self.path: str = scope["path"]
        raw = scope.get("raw_path") or self.path.encode("utf-8")
        self.raw_path: str = raw.decode("latin-1").split("?", 1)[0]
        self.query_string: str = scope.get("query_string", b"").decode("latin-1")
        self.query: list[tuple[str, str]] = parse_qsl(self.query_string, keep_blank_values=True)
        self.headers: dict[str, str] = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())
        }
        self.scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"

    def param(self, name: str) -> str | None:
        """The first query parameter called ``name`` (case-insensitive name), or ``None``."""
        lowered = name.lower()
        for key, value in self.query:
            if key.lower() == lowered:
                return value
        return None

    def params(self, name: str) -> list[str]:
        """Every value of the query parameter ``name`` (case-insensitive name)."""
        lowered = name.lower()
        return [value for key, value in self.query if key.lower() == lowered]

    @property
    def host(self) -> str:
        """The ``Host`` header's host name, lower-cased, without port."""
        host = self.headers.get("host", "")
        if host.startswith("["):
            return host[: host.find("]") + 1].lower()
        return host.rsplit(":", 1)[0].lower() if ":" in host else host.lower()


async def read_body(receive: Receive, limit: int, time_limit: float | None = None) -> bytes:
    """Read a whole request body.

    Args:
        receive: the ASGI receive callable.
        limit: most bytes accepted.
        time_limit: seconds the whole body may take to arrive (``None``: no bound), so a
            request that declares a body and never sends it does not hold a task for ever.

    Raises:
        PayloadTooLargeError: the body is longer than ``limit`` bytes.
        RequestTimeoutError: the body did not arrive within ``time_limit`` seconds.
    """
    if time_limit is None:
        return await _read_body(receive, limit)
    try:
        async with asyncio.timeout(time_limit):
            return await _read_body(receive, limit)
    except TimeoutError:
        raise RequestTimeoutError(
            f"The request body did not arrive within {time_limit:g} s."
        ) from None


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"The request body is over {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def send_response(
    send: Send,
    status: int,
    body: bytes = b"",
    *,
    content_type: str | None = "text/plain; charset=utf-8",
    headers: Iterable[tuple[str, str]] = (),
) -> None:
    """Send a complete response."""
    raw: list[tuple[bytes, bytes]] = [(b"content-length", str(len(body)).encode())]
    if content_type is not None and (body or status not in (204, 304)):
        raw.append((b"content-type", content_type.encode("latin-1")))
    raw.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def json_response(
    send: Send,
    status: int,
    payload: Mapping[str, Any] | list[Any],
    *,
    headers: Iterable[tuple[str, str]] = (),
) -> None:
    """Send a JSON response, values written by the payload policy (binary as base64,
    datetimes as ISO 8601: :mod:`signalr_protocol.payload`).

    Raises:
        TypeError: a value has no JSON form.
        ValueError: a float is ``NaN`` or infinite (JSON has no spelling for it).
    """
    text = dumps(payload)
    try:
        body = text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: \u escapes carry it
        body = dumps(payload, ensure_ascii=True).encode("ascii")
    await send_response(
        send, status, body, content_type="application/json; charset=utf-8", headers=headers
    )
