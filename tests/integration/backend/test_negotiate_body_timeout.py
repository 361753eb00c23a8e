"""Negotiate's fast path bounds the wait for a declared request body, over a raw socket.

The backend is served by uvicorn on a free port with ``SIGNALR_BODY_READ_TIMEOUT=0.5``; a
client declares a ``Content-Length`` and sends nothing (or part of it), as a slow-loris would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from app.main import create_app
from app.settings import Settings
from tests.support.servers import serve_asgi

pytestmark = pytest.mark.anyio

BOUND = 0.5
KEY = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789ABCDEFGH"
CS = f"Endpoint=https://x.service.signalr.net;AccessKey={KEY};Version=1.0;"


@pytest.fixture
async def backend() -> AsyncIterator[str]:
    settings = Settings(connection_string=CS, body_read_timeout=BOUND)
    async with serve_asgi(create_app(settings)) as url:
        yield url


async def exchange(url: str, request: bytes, *, wait: float = 5) -> tuple[bytes, float]:
    """Send ``request`` raw and read until the server closes; the answer and its delay."""
    host, _, port = url.removeprefix("http://").partition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    started = asyncio.get_running_loop().time()
    writer.write(request)
    await writer.drain()
    try:
        answer = await asyncio.wait_for(reader.read(), timeout=wait)
    finally:
        writer.close()
    return answer, asyncio.get_running_loop().time() - started


@pytest.mark.parametrize("method", ["POST", "GET"])
@pytest.mark.parametrize("path", ["/api/negotiate", "/api/chat/negotiate"])
@pytest.mark.parametrize("sent", [b"", b'{"a":'])
async def test_a_declared_body_that_never_arrives_gets_408(
    backend: str, method: str, path: str, sent: bytes
) -> None:
    """Content-Length 100 and nothing (or 5 bytes) sent: a JSON 408 naming the setting within
    the bound, and the connection closed (its unread body can't be the next request)."""
    head = f"{method} {path} HTTP/1.1\r\nhost: t\r\ncontent-length: 100\r\n\r\n".encode()
    answer, elapsed = await exchange(backend, head + sent)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 408 Request Timeout", answer[:200]
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"connection: close" in headers.lower()
    error = json.loads(body)
    assert error["type"] == "BodyReadTimeoutError"
    assert "SIGNALR_BODY_READ_TIMEOUT" in error["error"]
    assert BOUND - 0.1 < elapsed < BOUND + 3


async def test_a_body_that_arrives_is_drained_and_the_connection_reused(backend: str) -> None:
    """A negotiate whose small body arrives is answered 200, and the same connection then
    serves a second request."""
    one = b"POST /api/negotiate HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\n{}"
    two = b"GET /api/negotiate HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"
    answer, _ = await exchange(backend, one + two)
    assert answer.count(b"HTTP/1.1 200 OK") == 2, answer[:400]
    assert answer.count(b'"accessToken"') == 2
