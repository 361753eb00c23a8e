"""Helpers of the outbound (REST client and gateway) tests: real recording servers.

:class:`RecordingServer` is a small Starlette app served by uvicorn on a free port. It
records every request exactly as it arrived (method, raw path, raw query, headers, body)
and answers what the test scripts: a queue of :class:`Reply` objects, then a default
that depends on the route (202 for sends, 204 for close, 200 otherwise). A reply can also
hold the request until the test releases it, to produce a timeout for real.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from app.settings import Settings
from signalr_protocol.connection_string import EMULATOR_ACCESS_KEY
from signalr_protocol.tokens import verify_token
from tests.support.servers import serve_asgi

KEY = EMULATOR_ACCESS_KEY


@dataclass(frozen=True)
class Reply:
    """One scripted answer."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    hold: bool = False
    """Wait for :meth:`RecordingServer.release` before answering (a hung service)."""


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it."""

    method: str
    raw_path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def path(self) -> str:
        """The percent-decoded path."""
        return unquote(self.raw_path)

    @property
    def token(self) -> str:
        """The bearer token."""
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        assert scheme == "Bearer", self.headers
        return token

    def claims(self, key: str = KEY) -> dict[str, Any]:
        """The verified claims of the bearer token (signature and expiry checked)."""
        return verify_token(self.token, [key], audience=None)


def default_status(method: str, raw_path: str) -> int:
    """What the real service answers on success for this route."""
    if raw_path.endswith("/:send"):
        return 202
    if raw_path.endswith("/:closeConnections"):
        return 204
    return 200


class RecordingServer:
    """An ASGI app recording requests and answering scripted replies."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.replies: list[Reply] = []
        self.responder: Callable[[Recorded], Reply | None] | None = None
        self._released = asyncio.Event()
        self.base_url = ""

    def release(self) -> None:
        """Let held requests answer."""
        self._released.set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        request = Request(scope, receive)
        body = await request.body()
        recorded = Recorded(
            method=request.method,
            raw_path=scope["raw_path"].decode("latin-1"),
            query=scope["query_string"].decode("latin-1"),
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
            body=body,
        )
        self.requests.append(recorded)
        reply = self.responder(recorded) if self.responder is not None else None
        if reply is None and self.replies:
            reply = self.replies.pop(0)
        if reply is None:
            reply = Reply(default_status(recorded.method, recorded.raw_path))
        if reply.hold:
            await self._released.wait()
        response = Response(reply.body, status_code=reply.status, headers=reply.headers)
        await response(scope, receive, send)


def connection_string(base_url: str, key: str = KEY) -> str:
    """The connection string of a test server at ``base_url`` (``http://127.0.0.1:port``)."""
    host, _, port = base_url.removeprefix("http://").partition(":")
    return f"Endpoint=http://{host};Port={port};AccessKey={key};Version=1.0;"


def settings_for(base_url: str, **overrides: Any) -> Settings:
    """Settings aimed at one test server, with retries that don't sleep."""
    values: dict[str, Any] = {
        "connection_string": connection_string(base_url),
        "retry_delay": 0.0,
        "retry_max_delay": 1.0,
        "retry_max_total": 5.0,
        "retry_max_attempts": 3,
        "http_timeout": 5.0,
    }
    values.update(overrides)
    return Settings(**values)


@contextlib.asynccontextmanager
async def recording_server() -> AsyncIterator[RecordingServer]:
    """Serve a fresh :class:`RecordingServer`; held requests are released on exit."""
    server = RecordingServer()
    async with serve_asgi(server) as base_url:
        server.base_url = base_url
        try:
            yield server
        finally:
            server.release()
