"""The emulator's ASGI application: client endpoint, REST API, CORS, lifespan.

Design: one raw-ASGI app served by uvicorn (``websockets-sansio`` WebSockets, httptools
HTTP, uvloop when installed). A framework router would add per-request cost and decode
the path before routing (names with ``%2F`` must stay one segment), so routing is done
here on ``raw_path``. Fan-out never awaits per receiver: it queues the same encoded bytes
on every connection (:mod:`emulator.fanout`); a WebSocket writes it at once, and whatever
is pending on a connection goes out as one frame.

Use :func:`create_app` and run it with any ASGI server that implements the lifespan
protocol, or call :meth:`EmulatorApp.startup` / :meth:`EmulatorApp.shutdown` yourself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp

from .client_endpoint import handle_client_request
from .cors import is_preflight, preflight, with_cors
from .errors import NotFoundError, RequestError
from .http import Receive, Scope, Send, send_response
from .rest import handle_rest_request
from .settings import EmulatorSettings
from .state import EmulatorState
from .upstream import (
    DEFAULT_TEMPLATES,
    UpstreamDispatcher,
    UpstreamSettingsFile,
    UpstreamTemplate,
    new_upstream_session,
)

__all__ = ["EmulatorApp", "create_app"]

logger = logging.getLogger("emulator.server")

SHUTDOWN_MESSAGE = "The server is shutting down."


class EmulatorApp:
    """The emulator as an ASGI application.

    Args:
        settings: the emulator settings.

    Raises:
        EmulatorConfigError: ``settings.config`` names an unreadable or invalid file.

    Attributes:
        settings: the settings.
        state: registry, upstream dispatcher and background tasks.
    """

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.state = EmulatorState(settings)
        self.templates: Callable[[], Sequence[UpstreamTemplate]]
        if settings.upstream_url is not None:
            fixed = [UpstreamTemplate(settings.upstream_url)] if settings.upstream_url else []
            self.templates = lambda: fixed
        elif settings.config is not None:
            self.templates = UpstreamSettingsFile(settings.config)
        else:
            self.templates = lambda: DEFAULT_TEMPLATES
        self._client: aiohttp.ClientSession | None = None

    async def startup(self) -> None:
        """Open the upstream HTTP client and start housekeeping."""
        if self._client is not None:
            return
        self._client = new_upstream_session()
        self.state.upstream = UpstreamDispatcher(
            self.templates, self.settings.keys, self._client, self.settings.upstream_timeout
        )
        self.state.spawn(self.state.housekeeping())

    def close_connections(self) -> None:
        """Send every client a Close message (reconnect allowed) and end its connection."""
        for conn in self.state.registry.connections():
            conn.close(SHUTDOWN_MESSAGE, allow_reconnect=True)

    async def shutdown(self) -> None:
        """Close every connection, stop background tasks, close the HTTP client."""
        self.close_connections()
        await self.state.cancel_tasks()
        self.state.upstream = None
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The handlers parse the headers themselves (emulator.http.Request); only a
        # preflight needs them all here, every other request just its Origin.
        if scope["method"] == "OPTIONS":
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
            }
            if is_preflight("OPTIONS", headers):
                await preflight(send, headers)
                return
        origin = None
        for name, value in scope["headers"]:
            if name.lower() == b"origin":
                origin = value.decode("latin-1")
        if origin:
            send = with_cors(send, origin)
        path: str = scope["path"]
        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            if path.startswith("/api/"):
                await handle_rest_request(self.state, scope, receive, tracking_send)
            elif path == "/client" or path.startswith("/client/"):
                await handle_client_request(self.state, scope, receive, tracking_send)
            elif path == "/" and scope["method"] in ("GET", "HEAD"):
                await send_response(send, 200, b"Azure SignalR Service emulator (serverless)\n")
            else:
                await send_response(
                    send,
                    404,
                    b"Not found.\n",
                    headers=[("x-ms-error-code", NotFoundError.default_code)],
                )
        except RequestError as exc:
            if started:
                raise
            await send_response(
                send,
                exc.status_code,
                exc.message.encode("utf-8"),
                headers=[("x-ms-error-code", exc.error_code)],
            )
        except Exception:
            logger.exception("Unhandled error on %s %s", scope["method"], path)
            if not started:
                await send_response(send, 500, b"Internal error; see the emulator log.\n")

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        # ``send`` is passed on unwrapped: the WebSocket fast path needs the server's own
        # callable (see emulator.fastpath); the transport marks the scope once accepted.
        path: str = scope["path"]
        try:
            if path == "/client" or path.startswith("/client/"):
                await handle_client_request(self.state, scope, receive, send)
            else:
                await self._reject(scope, send, 404, "Not found.", NotFoundError.default_code)
        except RequestError as exc:
            if scope.get("emulator.accepted"):
                raise
            logger.info("WebSocket refused (%d): %s", exc.status_code, exc.message)
            await self._reject(scope, send, exc.status_code, exc.message, exc.error_code)
        except Exception:
            logger.exception("Unhandled error on WebSocket %s", path)
            if not scope.get("emulator.accepted"):
                await self._reject(scope, send, 500, "Internal error; see the emulator log.")

    @staticmethod
    async def _reject(
        scope: Scope, send: Send, status: int, text: str, error_code: str | None = None
    ) -> None:
        if "websocket.http.response" in scope.get("extensions", {}):
            body = text.encode("utf-8")
            headers = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ]
            if error_code:
                headers.append((b"x-ms-error-code", error_code.encode("ascii")))
            await send(
                {"type": "websocket.http.response.start", "status": status, "headers": headers}
            )
            await send({"type": "websocket.http.response.body", "body": body})
        else:
            await send({"type": "websocket.close", "code": 1008})


def create_app(settings: EmulatorSettings | None = None) -> EmulatorApp:
    """Build the emulator ASGI app.

    Args:
        settings: the settings; by default read from the environment (``EMULATOR_*``).

    Raises:
        EmulatorConfigError: ``settings.config`` is unreadable or invalid.
    """
    return EmulatorApp(settings if settings is not None else EmulatorSettings())
