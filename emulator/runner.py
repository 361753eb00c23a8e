"""Serve the emulator with uvicorn, configured for its WebSocket fast path.

:func:`uvicorn_config` is what every entry point should use: the ``websockets-sansio``
WebSocket protocol (which :mod:`emulator.fastpath` writes through), permessage-deflate
off (as in ASP.NET Core and the service), no protocol-level pings (the hub protocol has
its own), no access log (request lines carry ``access_token`` queries). :func:`bind_socket`
creates the listening socket with ``IPPROTO_TCP`` so that asyncio sets ``TCP_NODELAY`` on
accepted connections (otherwise a response written as headers + body can wait ~40 ms for
a delayed ACK). :func:`serve` runs an emulator inside the current event loop, e.g. next to
the backend in ``python -m app``::

    settings = EmulatorSettings(port=8888)
    task = asyncio.create_task(serve(settings))
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn

from .server import EmulatorApp, create_app
from .settings import EmulatorSettings

__all__ = ["EmulatorServer", "bind_socket", "serve", "uvicorn_config"]


class EmulatorServer(uvicorn.Server):
    """uvicorn's server, closing the emulator's client connections first when it stops.

    Every client gets a Close message allowing reconnect (so a JS client with automatic
    reconnect comes back after a restart) and its Server-Sent Events or long-poll response
    ends, so the graceful stop does not wait ``timeout_graceful_shutdown`` for them.
    """

    def __init__(self, config: uvicorn.Config, app: EmulatorApp) -> None:
        super().__init__(config)
        self.emulator = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Close the client connections, then shut down as uvicorn does."""
        self.emulator.close_connections()
        await super().shutdown(sockets)


def bind_socket(host: str, port: int, *, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket (``port`` 0 picks a free one; read it back with
    ``sock.getsockname()[1]``)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


def uvicorn_config(
    app: EmulatorApp, *, log_level: str = "info", **overrides: Any
) -> uvicorn.Config:
    """The uvicorn configuration the emulator is meant to run with."""
    options: dict[str, Any] = {
        "log_level": log_level.lower(),
        "log_config": None,
        "access_log": False,
        "ws": "websockets-sansio",
        "ws_per_message_deflate": False,
        "ws_ping_interval": None,
        "ws_max_size": 16 * 1024 * 1024,
        "lifespan": "on",
        "timeout_graceful_shutdown": 5,
        **overrides,
    }
    return uvicorn.Config(app, **options)


async def serve(
    settings: EmulatorSettings, *, sock: socket.socket | None = None, log_level: str = "info"
) -> None:
    """Run an emulator in the current event loop until cancelled.

    Args:
        settings: the emulator settings (``host``/``port`` used unless ``sock`` is given).
        sock: an already bound socket (see :func:`bind_socket`).
        log_level: uvicorn's log level.
    """
    own = sock is None
    if sock is None:
        sock = bind_socket(settings.host, settings.port)
    app = create_app(settings)
    server = EmulatorServer(uvicorn_config(app, log_level=log_level), app)
    try:
        await server.serve(sockets=[sock])
    finally:
        if own:
            sock.close()
