"""The backend's ASGI application: ``uvicorn app.main:app``.

:func:`create_app` wires everything: one :class:`~app.services.signalr.SignalRService`
(one pooled HTTP client) opened and closed by the lifespan, the hub registry, the
negotiator, CORS, the routers, and the exception handlers that turn the package's
exception tree into HTTP answers. ``app`` is created lazily on first access, so importing
this module has no side effects.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, NoReturn

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from pydantic_settings import SettingsError
from starlette.types import ASGIApp, Receive, Scope, Send

from app import __version__
from app.exceptions import (
    ConfigurationError,
    ServiceError,
    ServiceThrottledError,
    edge_status,
    error_body,
)
from app.functions_settings import rest_client_summary, start_notes
from app.routers import docs, gateway, health, negotiate, upstream, web
from app.services import http_errors
from app.services.negotiation import Negotiator
from app.services.registry import HubRegistry
from app.services.signalr import SignalRService
from app.services.upstream_auth import EntraTokenValidator
from app.services.webhook import Webhook
from app.settings import Settings, describe_settings_error, get_settings
from app.telemetry import (
    BackendMetrics,
    Telemetry,
    bridge_to_opentelemetry,
    configure_served_logging,
    configure_tracing,
    fastapi_options,
)
from signalr_protocol.errors import SignalRError

__all__ = ["BackendApp", "create_app"]

logger = logging.getLogger("app")

# The headers the official JS client sends on its negotiate POST, plus the dev user id.
_CORS_HEADERS = [
    "authorization",
    "content-type",
    "x-requested-with",
    "x-signalr-user-agent",
    "x-ms-signalr-user-id",
    "x-functions-key",
]


def _error_response(exc: SignalRError) -> JSONResponse:
    headers: dict[str, str] = {}
    if isinstance(exc, ServiceThrottledError) and exc.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(exc.retry_after)))
    return JSONResponse(error_body(exc), status_code=edge_status(exc), headers=headers)


async def _handle_signalr_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SignalRError)
    if exc.status_code >= 500 or isinstance(exc, ServiceError):
        logger.warning("%s %s failed: %s", request.method, request.url.path, exc)
    return _error_response(exc)


def _telemetry(settings: Settings) -> Telemetry:
    """The app's metrics and tracer: OpenTelemetry as the environment asks (once per
    process; ``python -m app`` did it already, ``uvicorn app.main:app`` does it here)."""
    mode = configure_tracing()
    metrics = BackendMetrics() if settings.metrics_enabled else None
    if mode != "off" and metrics is not None:
        bridge_to_opentelemetry(metrics.registry)
    return Telemetry(metrics)


def _served_by_fast_path(scope: Any) -> bool:
    return negotiate.NegotiateFastPath.serves(scope) or upstream.UpstreamFastPath.serves(scope)


class BackendApp(FastAPI):
    """FastAPI, with negotiate and the webhook answered before FastAPI's own handling.

    On these two hot routes FastAPI's per-request work (its telemetry check once a tracer
    provider is installed, which walks the middleware stack; then the middleware stack
    and routing) costs more than the answer. :meth:`__call__` hands them straight to their
    fast paths (:class:`~app.routers.negotiate.NegotiateFastPath` behind its own CORS
    middleware, :class:`~app.routers.upstream.UpstreamFastPath`); everything else (other
    routes, lifespan, WebSockets) goes through FastAPI as usual. An exception escaping a
    fast path reaches the server (uvicorn answers 500), as it did through FastAPI's
    stack, whose error middleware answers 500 and re-raises.

    Attributes:
        negotiate_fast_path: the ASGI app serving negotiate, or ``None`` (FastAPI's route).
        webhook_fast_path: the ASGI app serving the webhook, or ``None`` (FastAPI's route).
    """

    negotiate_fast_path: ASGIApp | None = None
    webhook_fast_path: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if upstream.UpstreamFastPath.serves(scope):
                fast = self.webhook_fast_path
            elif negotiate.NegotiateFastPath.serves(scope):
                fast = self.negotiate_fast_path
            else:
                fast = None
            if fast is not None:
                if self.root_path:
                    scope["root_path"] = self.root_path
                scope["app"] = self
                await fast(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings | None = None, *, telemetry: Telemetry | None = None
) -> BackendApp:
    """Build the backend.

    Args:
        settings: the settings to use; by default read from the environment.
        telemetry: the metrics and tracer to use (tests pass one with their own tracer
            provider); by default configured from the settings and the ``OTEL_*`` /
            ``APPLICATIONINSIGHTS_CONNECTION_STRING`` variables.

    Returns:
        The FastAPI application (a :class:`BackendApp`). Its lifespan opens the REST
        client; serve it with
        uvicorn (``uvicorn app.main:app`` or ``python -m app``).
    """
    settings = settings if settings is not None else get_settings()
    registry = HubRegistry.from_settings(settings)
    telemetry = telemetry if telemetry is not None else _telemetry(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        for line in (*start_notes(settings), rest_client_summary(settings)):
            logger.info("%s", line)
        async with SignalRService.open(settings, telemetry=telemetry) as service:
            registry.bind(service)
            app.state.signalr = service
            app.state.negotiator = Negotiator(
                settings,
                registry,
                pick_endpoint=service.negotiate_endpoint,
                signing_key=service.signing_key,
            )
            if settings.upstream_audience and settings.upstream_tenant_id:
                app.state.webhook.entra_validator = EntraTokenValidator(
                    audience=settings.upstream_audience,
                    tenant_id=settings.upstream_tenant_id,
                    authority=settings.upstream_authority,
                    client=service.http_client,
                )
            yield

    app = BackendApp(
        title="serverless-signalr",
        version=__version__,
        description=(
            "Azure Functions' SignalR Service bindings on FastAPI: negotiate, the upstream "
            "webhook, and a gateway to send messages and manage groups."
        ),
        lifespan=lifespan,
        docs_url=None,  # served offline by app.routers.docs
        redoc_url=None,
        **fastapi_options(_served_by_fast_path),  # their spans are the requests'
    )
    app.state.settings = settings
    app.state.hubs = registry
    app.state.telemetry = telemetry
    app.state.webhook = Webhook.from_settings(settings, registry, telemetry=telemetry)
    # Fast paths for the two hot routes (see their modules and BackendApp); negotiate
    # behind the same CORS middleware as the other routes. Preflights (OPTIONS) go
    # through FastAPI's stack, whose CORS middleware answers them.
    fallback = partial(FastAPI.__call__, app)  # not reached: BackendApp checks first
    app.webhook_fast_path = upstream.UpstreamFastPath(fallback)
    app.negotiate_fast_path = negotiate.NegotiateFastPath(fallback)
    if settings.cors_origins:
        cors: dict[str, Any] = {
            "allow_origins": settings.cors_origins,
            "allow_credentials": settings.cors_credentials,
            "allow_methods": ["GET", "POST", "OPTIONS"],
            "allow_headers": _CORS_HEADERS,
            "max_age": 600,
        }
        app.add_middleware(CORSMiddleware, **cors)
        app.negotiate_fast_path = CORSMiddleware(app.negotiate_fast_path, **cors)
    app.add_exception_handler(SignalRError, _handle_signalr_error)
    http_errors.install(app)  # 422s and 404/405s in the same {"error", "type"} shape
    app.include_router(health.router)
    app.include_router(negotiate.router)
    app.include_router(upstream.router)
    app.include_router(gateway.router)
    app.include_router(web.router)
    app.include_router(docs.router)
    return app


def _exit_on_settings_error(exc: Exception) -> NoReturn:
    """Under ``uvicorn app.main:app``: one line per settings problem, then a clean exit."""
    for line in describe_settings_error(exc).splitlines() or ["invalid settings"]:
        sys.stderr.write(f"Invalid setting: {line}\n")
    raise SystemExit(2)


def __getattr__(name: str) -> Any:
    # ``uvicorn app.main:app`` asks for ``app``: build it then, from the environment, and
    # keep it, so later reads get the same application.
    if name == "app":
        try:
            settings = get_settings()
        except (ValidationError, SettingsError) as exc:
            _exit_on_settings_error(exc)
        # uvicorn configured its own loggers and left ours to Python's last resort: give
        # them the same safe lines (tokens redacted, controls escaped) as ``python -m app``.
        configure_served_logging(settings.log_level, settings.log_format)
        try:
            application = create_app(settings)
        except ConfigurationError as exc:  # SIGNALR_HUBS names something that won't load
            _exit_on_settings_error(exc)
        globals()["app"] = application
        return application
    raise AttributeError(name)
