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

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

import aiohttp

from .client_endpoint import handle_client_request
from .cors import is_preflight, preflight, with_cors
from .errors import AuthenticationError, NotFoundError, RequestError
from .http import Receive, Scope, Send, send_response
from .identity import handle_identity_request
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE, CloseReason
from .rest import handle_rest_request
from .settings import EmulatorSettings
from .state import EmulatorState
from .trace import handle_trace_request, hub_snapshot, is_trace_path
from .upstream import (
    DEFAULT_TEMPLATES,
    DEFAULT_UPSTREAM_URL,
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
        stopping: set once a stop began (:meth:`close_connections`); a request the server
            cancels after that (the stop's bound passed, see :meth:`cut_off`) ends quietly.
    """

    def __init__(self, settings: EmulatorSettings) -> None:
        self.state = EmulatorState(settings)
        self._settings = settings
        self.templates: Callable[[], Sequence[UpstreamTemplate]]
        resource = settings.upstream_auth_resource or None
        if settings.upstream_url is not None:
            fixed = (
                [UpstreamTemplate(settings.upstream_url, auth_resource=resource)]
                if settings.upstream_url
                else []
            )
            self.templates = lambda: fixed
        elif settings.config is not None:
            self.templates = UpstreamSettingsFile(settings.config)
        else:
            defaults = (
                [UpstreamTemplate(DEFAULT_UPSTREAM_URL, auth_resource=resource)]
                if resource
                else DEFAULT_TEMPLATES
            )
            self.templates = lambda: defaults
        self._client: aiohttp.ClientSession | None = None
        self._housekeeping: asyncio.Task[Any] | None = None
        self.stopping = False

    @property
    def settings(self) -> EmulatorSettings:
        """The settings; set them again once the port is bound (the local Entra ID's
        issuer names it)."""
        return self._settings

    @settings.setter
    def settings(self, value: EmulatorSettings) -> None:
        self._settings = value
        self.state.rebase(value)

    async def startup(self) -> None:
        """Open the upstream HTTP client and start housekeeping."""
        if self._client is not None:
            return
        self._client = new_upstream_session()
        settings = self.settings
        if settings.keyless:
            self.state.entra  # noqa: B018 - make the signing key now, not on the first call
        self.state.upstream = UpstreamDispatcher(
            self.templates,
            () if settings.keyless else settings.keys,  # local auth disabled: no signature
            self._client,
            settings.upstream_timeout,
            bearer=lambda resource: self.state.entra.upstream_bearer(resource),
            metrics=self.state.metrics,
            trace=self.state.trace,
        )
        self._housekeeping = self.state.spawn(self.state.housekeeping())

    def close_connections(self) -> None:
        """Send every client a Close message (reconnect allowed) and end its connection;
        end the live trace's event streams (so the server need not wait for them).

        This begins a stop: :attr:`stopping` is set and housekeeping (keep-alives,
        timeouts) ends, so :attr:`in_flight` counts only work still finishing.
        """
        self.stopping = True
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            self._housekeeping = None
        self.state.trace.close_all()
        for conn in self.state.registry.connections():
            conn.close(SHUTDOWN_MESSAGE, allow_reconnect=True, category=CloseReason.SERVICE_RELOAD)

    @property
    def in_flight(self) -> bool:
        """Background work is running: inbound pumps of Server-Sent Events / long-polling
        connections and their last upstream calls (after :meth:`close_connections`)."""
        return self.state.background > (self._housekeeping is not None)

    def cut_off(self) -> None:
        """The stop's bound passed: make no more upstream calls (the ``disconnected`` events
        of connections still ending are dropped); the server cancels what is left."""
        self.stopping = True
        self.state.upstream = None

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
        if self.stopping and kind != "lifespan":
            # A request on a connection kept alive, arriving after the stop began (a client's
            # immediate reconnect attempt): refuse it, so the client retries after the restart.
            await self._refuse_while_stopping(scope, send)
            return
        try:
            if kind == "http":
                await self._http(scope, receive, send)
            elif kind == "websocket":
                await self._websocket(scope, receive, send)
            elif kind == "lifespan":
                await self._lifespan(receive, send)
        except asyncio.CancelledError:
            if not self.stopping or kind == "lifespan":
                raise
            # Cut short by a stop whose bound passed (emulator.runner): expected, no traceback.
            logger.debug("%s %s cut short by the stop", kind, scope.get("path"))

    async def _refuse_while_stopping(self, scope: Scope, send: Send) -> None:
        if scope["type"] == "websocket":
            await self._reject(scope, send, 503, SHUTDOWN_MESSAGE)
        else:
            await send_response(
                send, 503, SHUTDOWN_MESSAGE.encode(), headers=[("connection", "close")]
            )

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
            elif path.startswith("/identity/"):
                await handle_identity_request(self.state.entra, scope, receive, tracking_send)
            elif path == "/client" or path.startswith("/client/"):
                await handle_client_request(self.state, scope, receive, tracking_send)
            elif self.settings.trace_enabled and is_trace_path(path):
                await self._trace(scope, receive, tracking_send)
            elif path == "/metrics" and self.settings.metrics_enabled:
                await send_response(
                    send,
                    200,
                    self.state.metrics.render(),
                    content_type=METRICS_CONTENT_TYPE,
                )
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
            if exc.status_code in (401, 403) and path.startswith("/client"):
                self.state.metrics.connection_refused(CloseReason.UNAUTHORIZED)
            answer_headers = [("x-ms-error-code", exc.error_code)]
            if isinstance(exc, AuthenticationError):
                answer_headers.append(("www-authenticate", exc.challenge))
            body = exc.message.encode("utf-8")
            await send_response(send, exc.status_code, body, headers=answer_headers)
        except Exception:
            logger.exception("Unhandled error on %s %s", scope["method"], path)
            self.state.metrics.system_errors.inc()
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
            if exc.status_code in (401, 403):
                self.state.metrics.connection_refused(CloseReason.UNAUTHORIZED)
            challenge = exc.challenge if isinstance(exc, AuthenticationError) else None
            await self._reject(scope, send, exc.status_code, exc.message, exc.error_code, challenge)
        except Exception:
            logger.exception("Unhandled error on WebSocket %s", path)
            self.state.metrics.system_errors.inc()
            if not scope.get("emulator.accepted"):
                await self._reject(scope, send, 500, "Internal error; see the emulator log.")

    async def _trace(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The live trace page, its event stream and state, and ``GET /metrics``."""
        state = self.state
        await handle_trace_request(
            scope,
            receive,
            send,
            bus=state.trace,
            snapshot=lambda: hub_snapshot(state.registry),
            metrics=state.metrics.render if self.settings.metrics_enabled else None,
            metrics_content_type=METRICS_CONTENT_TYPE,
        )

    @staticmethod
    async def _reject(
        scope: Scope,
        send: Send,
        status: int,
        text: str,
        error_code: str | None = None,
        challenge: str | None = None,
    ) -> None:
        if "websocket.http.response" in scope.get("extensions", {}):
            body = text.encode("utf-8")
            headers = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ]
            if error_code:
                headers.append((b"x-ms-error-code", error_code.encode("ascii")))
            if challenge:
                headers.append((b"www-authenticate", challenge.encode("ascii")))
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
