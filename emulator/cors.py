"""CORS as the service does it: any origin is echoed back, with credentials allowed.

The official JS client sends cookies (``withCredentials`` defaults to true), so ``*``
would not do; preflights (``OPTIONS`` with ``Access-Control-Request-Method``) are answered
with the requested method and headers (``x-requested-with``, ``x-signalr-user-agent``,
``authorization``, ...). Answers expose ``x-ms-error-code`` and ``WWW-Authenticate`` (a
401's challenge) to the page's script.
"""

from __future__ import annotations

from .http import Send, send_response

__all__ = ["cors_headers", "is_preflight", "preflight", "with_cors"]

_METHODS = "GET, POST, PUT, DELETE, HEAD, OPTIONS"


def cors_headers(origin: str) -> list[tuple[bytes, bytes]]:
    """The headers added to every answer to a request with an ``Origin``."""
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-credentials", b"true"),
        (b"access-control-expose-headers", b"x-ms-error-code, www-authenticate"),
        (b"vary", b"Origin"),
    ]


def is_preflight(method: str, headers: dict[str, str]) -> bool:
    """Whether a request is a CORS preflight."""
    return method == "OPTIONS" and "access-control-request-method" in headers


async def preflight(send: Send, headers: dict[str, str]) -> None:
    """Answer a preflight: allow the origin, the method and the headers asked for."""
    origin = headers.get("origin", "*")
    method = headers.get("access-control-request-method", "")
    requested = headers.get("access-control-request-headers", "")
    allow = [
        ("access-control-allow-origin", origin),
        ("access-control-allow-credentials", "true"),
        ("access-control-allow-methods", method or _METHODS),
        ("access-control-max-age", "86400"),
        ("vary", "Origin"),
    ]
    if requested:
        allow.append(("access-control-allow-headers", requested))
    await send_response(send, 204, content_type=None, headers=allow)


def with_cors(send: Send, origin: str) -> Send:
    """Wrap an ASGI ``send`` so the response start carries the CORS headers."""
    extra = cors_headers(origin)

    async def send_with_cors(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", ()))  # type: ignore[call-overload]
            headers.extend(extra)
            message = {**message, "headers": headers}
        await send(message)

    return send_with_cors
