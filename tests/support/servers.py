"""Run ASGI apps for real, with uvicorn, on a free 127.0.0.1 port, inside the test's loop.

Use::

    async with serve_asgi(app) as base_url:
        ...  # base_url is e.g. "http://127.0.0.1:54321"

The socket is bound before uvicorn starts (port 0, read back), so there is no race for a
port, and the server is shut down (connections closed, lifespan ended) on exit.
``port=`` rebinds a known port, e.g. to restart a server where clients expect it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any, Literal

import uvicorn

__all__ = ["bind_socket", "free_port", "run_server", "serve_asgi"]


def bind_socket(port: int = 0, host: str = "127.0.0.1") -> socket.socket:
    """Bind a listening TCP socket (port 0 = any free port)."""
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets it knows are TCP,
    # and without it every keep-alive response waits ~40 ms for Nagle.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def free_port() -> int:
    """A port that was free a moment ago (prefer ``serve_asgi``, which cannot race)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def run_server(server: uvicorn.Server, sock: socket.socket) -> AsyncIterator[str]:
    """Run a configured uvicorn ``server`` on a bound ``sock``; yield its base URL.

    On exit the server is told to stop (its own shutdown runs) and the socket is closed.
    """
    port = sock.getsockname()[1]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.005)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, timeout=10)
        finally:
            sock.close()


@contextlib.asynccontextmanager
async def serve_asgi(
    app: Any,
    *,
    port: int = 0,
    lifespan: Literal["auto", "on", "off"] = "on",
    ws: Literal["auto", "none", "websockets", "websockets-sansio", "wsproto"] = "websockets-sansio",
    **config: Any,
) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn in the running event loop; yield its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            lifespan=lifespan,
            log_level="warning",
            ws=ws,
            timeout_graceful_shutdown=2,
            **config,
        )
    )
    async with run_server(server, bind_socket(port)) as base_url:
        yield base_url


async def wait_listening(port: int, process: asyncio.subprocess.Process) -> None:
    """Wait until a child server accepts connections on 127.0.0.1:``port`` (fail if it
    exited first, or after 30 s)."""
    async with asyncio.timeout(30):
        while True:
            assert process.returncode is None, "the server exited before it listened"
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return
