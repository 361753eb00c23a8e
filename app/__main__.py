"""``serverless-signalr`` (or ``python -m app``): the backend on 7071, and the embedded emulator.

With ``AzureSignalRConnectionString`` (or ``Azure__SignalR__Endpoints__*``) set, only the
backend runs and talks to that service. ``--keyless`` runs the local stack keyless: the
embedded emulator with local auth disabled, the backend signing in with a managed identity
that the emulator's identity endpoint provides, the webhook checking the upstream's bearer.
Without a connection string, the local emulator runs too, on ``SIGNALR_EMULATOR_PORT``
(8888), in the same process and event loop, and calls the backend's webhook at
``http://127.0.0.1:<port>/runtime/webhooks/signalr``. A gateway key is generated for that
local setup when ``GATEWAY_API_KEYS`` is unset, and printed.

The launcher is the emulator's (:mod:`emulator.runner`), the log set-up the core's
(:mod:`signalr_protocol.logsafe`, through :func:`app.telemetry.configure_logging`): both
listening sockets are bound before anything starts, so a busy port is reported at once and
port ``0`` (any free port) works for both; the settings of both servers are built here and
passed to them. Ctrl-C or SIGTERM stops the emulator first, then the backend, each with a
bounded grace period; a second Ctrl-C forces the exit. This is the only module of ``app``
that imports ``emulator``.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import secrets
import socket
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from app.exceptions import ConfigurationError
from app.main import create_app
from app.settings import Settings, describe_settings_error
from app.telemetry import TelemetryError, configure_logging, configure_tracing
from emulator.errors import EmulatorError
from emulator.runner import (
    EmulatorServer,
    Server,
    ServerGroup,
    bind_socket,
    server_config,
    uvicorn_config,
)
from emulator.server import create_app as create_emulator
from emulator.settings import (
    EmulatorSettings,
    describe_settings_error as describe_emulator_settings_error,
)
from signalr_protocol.connection_string import EMULATOR_ACCESS_KEY, emulator_connection_string

__all__ = ["build_runner", "emulator_settings", "main", "mask_connection_string"]

GRACEFUL_SHUTDOWN_SECONDS = 3
"""How long open connections (SSE, long polling, WebSockets) get to finish on shutdown."""

_SECRET_SEGMENT = re.compile(r"(?i)\b(accesskey|clientsecret)=([^;]*)")
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})
KEYLESS_UPSTREAM_RESOURCE = "api://serverless-signalr"
"""The upstream's ManagedIdentity resource (and the webhook's audience) of ``--keyless``."""
_PLACEHOLDER_EMULATOR_PORT = 8888
"""Stands for port 0 until the socket is bound: a connection string needs a real port."""


def mask_connection_string(text: str) -> str:
    """Hide the secrets of a connection string for printing.

    The emulator's well-known access key is shown as is (it is public and users need it);
    any other ``AccessKey`` or ``ClientSecret`` value becomes ``***``.

    Args:
        text: a SignalR Service connection string.

    Returns:
        The same string with secret values replaced.
    """

    def hide(match: re.Match[str]) -> str:
        value = match.group(2).strip()
        if match.group(1).lower() == "accesskey" and value == EMULATOR_ACCESS_KEY:
            return match.group(0)
        return f"{match.group(1)}=***"

    return _SECRET_SEGMENT.sub(hide, text)


def _set_but_empty(name: str) -> bool:
    value = os.environ.get(name)
    return value is not None and not value.strip()


def _port_of(sock: socket.socket) -> int:
    port: int = sock.getsockname()[1]
    return port


def _url_host(host: str, wildcard: str) -> str:
    """``host`` as a URL's host part (IPv6 in brackets); a wildcard address becomes ``wildcard``."""
    if host in _WILDCARD_HOSTS:
        return wildcard
    return f"[{host}]" if ":" in host else host


def _dial_host(host: str) -> str:
    """Where this process reaches its own server bound to ``host``."""
    return _url_host(host, "127.0.0.1")


def _browser_host(host: str) -> str:
    """Where a browser on this machine reaches the server bound to ``host``."""
    return _url_host(host, "localhost")


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="serverless-signalr",
        description=(
            "Run the backend (default port 7071). Without AzureSignalRConnectionString, the "
            "local SignalR Service emulator runs too (default port 8888). Also runs as "
            "python -m app."
        ),
    )
    parser.add_argument("--host", help="address to listen on (SIGNALR_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="backend port (SIGNALR_PORT, 7071)")
    parser.add_argument(
        "--emulator-port", type=int, help="embedded emulator port (SIGNALR_EMULATOR_PORT, 8888)"
    )
    parser.add_argument(
        "--keyless",
        action="store_true",
        help=(
            "run the whole local stack keyless: the embedded emulator with local auth "
            "disabled, the backend with a managed identity (AuthType=azure.msi) from the "
            "emulator's identity endpoint, the webhook checking the upstream's Entra bearer"
        ),
    )
    return parser.parse_args(argv)


def _banner(
    settings: Settings,
    backend_port: int,
    emulator_port: int | None,
    generated_key: str | None,
) -> str:
    host = _browser_host(settings.host)
    base = f"http://{host}:{backend_port}"
    if settings.connection_string is not None:
        shown = mask_connection_string(settings.connection_string)
    elif emulator_port is not None:
        shown = emulator_connection_string(port=emulator_port)
    else:
        shown = "(several endpoints from Azure__SignalR__Endpoints__*)"
    lines = [
        "",
        "serverless-signalr is running",
        f"  sample page        {base}/",
        f"  negotiate          {base}/api/negotiate",
        f"  webhook (upstream) {base}/runtime/webhooks/signalr",
        f"  API docs           {base}/docs",
    ]
    if emulator_port is not None:
        lines.append(
            f"  emulator           http://{host}:{emulator_port}  (embedded, upstream -> this app)"
        )
    else:
        lines.append(
            "  emulator           not started: using the configured SignalR Service; set its "
            "upstream URL to https://<public host>/runtime/webhooks/signalr"
        )
    lines.append(f"  connection string  {shown}")
    if settings.connection_string is None and _set_but_empty("AzureSignalRConnectionString"):
        lines.append(
            "    (AzureSignalRConnectionString is set but empty: treated as unset, so the "
            "local emulator is used)"
        )
    if generated_key is not None:
        lines.append(f"  gateway key        {generated_key}  (dev key, generated for this run)")
        lines.append(
            f"    try: curl -X POST {base}/api/hubs/chat/messages -H 'x-functions-key: "
            f"{generated_key}' -H 'content-type: application/json' "
            '-d \'{"target":"newMessage","arguments":[{"sender":"curl","text":"hello"}]}\''
        )
    elif settings.gateway_api_keys:
        lines.append(f"  gateway keys       {len(settings.gateway_api_keys)} from GATEWAY_API_KEYS")
    else:
        lines.append("  gateway            disabled: set GATEWAY_API_KEYS to enable it")
    lines += ["", "Press Ctrl-C to stop.", ""]
    return "\n".join(lines)


def _settings_error(exc: Exception) -> str:
    """A settings error as the user reads it: one line per problem, the variable named."""
    lines = describe_settings_error(exc).splitlines() or ["invalid settings"]
    return "\n".join(f"Invalid setting: {line}" for line in lines)


def _emulator_settings_error(exc: Exception) -> str:
    """An ``EMULATOR_*`` error as one line per problem: the variable named, as for the backend's.

    A ``settings.json`` error (``EMULATOR_CONFIG``) is one line saying what is wrong in it.
    """
    lines = describe_emulator_settings_error(exc).splitlines() or ["invalid settings"]
    if isinstance(exc, ValidationError | SettingsError):
        return "\n".join(f"Invalid setting: {line}" for line in lines)
    return "\n".join(f"Invalid emulator settings: {line}" for line in lines)


def _wants_any_emulator_port(args: argparse.Namespace) -> bool:
    """True when the embedded emulator is to listen on any free port (port 0)."""
    if args.emulator_port is not None:
        return bool(args.emulator_port == 0)
    return os.environ.get("SIGNALR_EMULATOR_PORT", "").strip() == "0"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``serverless-signalr`` and ``python -m app``; returns the exit status."""
    args = _parse_args(argv)
    # Command-line values win over the environment (and .env), which Settings reads for the rest.
    overrides: dict[str, Any] = {
        name: value
        for name, value in (
            ("host", args.host),
            ("port", args.port),
            ("emulator_port", args.emulator_port),
        )
        if value is not None
    }
    any_emulator_port = _wants_any_emulator_port(args)
    if any_emulator_port:
        overrides["emulator_port"] = _PLACEHOLDER_EMULATOR_PORT
    try:
        settings = Settings(**overrides)
    except (ValidationError, SettingsError) as exc:  # SettingsError: local.settings.json
        print(_settings_error(exc), file=sys.stderr)
        return 2

    wanted = [("backend", settings.port, "--port / SIGNALR_PORT")]
    if settings.uses_emulator:
        port = 0 if any_emulator_port else settings.emulator_port
        wanted.append(("emulator", port, "--emulator-port / SIGNALR_EMULATOR_PORT"))
    sockets: list[socket.socket] = []
    for name, port, option in wanted:
        try:
            sockets.append(bind_socket(settings.host, port))
        except OSError as exc:
            for sock in sockets:
                sock.close()
            if exc.errno == errno.EADDRINUSE:
                fix = f"Stop the process using it, or choose another port with {option}."
            elif exc.errno == errno.EACCES:
                fix = f"Ports below 1024 need privileges: choose another with {option}."
            else:
                fix = (
                    "Choose an address of this machine with --host / SIGNALR_HOST "
                    "(127.0.0.1, or 0.0.0.0 for every interface)."
                )
            print(
                f"Cannot listen on {settings.host}:{port} for the {name}: "
                f"{exc.strerror or exc}. {fix}",
                file=sys.stderr,
            )
            return 1
    backend_sock = sockets[0]
    emulator_sock = sockets[1] if len(sockets) > 1 else None

    try:
        backend_port = _port_of(backend_sock)
        overrides["port"] = backend_port
        generated_key: str | None = None
        emulator_port: int | None = None
        if emulator_sock is not None:
            emulator_port = _port_of(emulator_sock)
            overrides["emulator_port"] = emulator_port
            if not settings.gateway_api_keys:
                # The gateway refuses every call without keys; a local run gets one to try.
                generated_key = secrets.token_urlsafe(24)
                overrides["gateway_api_keys"] = [generated_key]
        keyless_note: str | None = None
        if args.keyless:
            if emulator_port is None:
                print(
                    "--keyless runs the local emulator keyless: unset "
                    "AzureSignalRConnectionString and Azure__SignalR__Endpoints__*.",
                    file=sys.stderr,
                )
                return 2
            try:
                keyless_note = _go_keyless(settings, overrides, emulator_port, backend_port)
            except (EmulatorError, ValueError) as exc:
                print(_emulator_settings_error(exc), file=sys.stderr)
                return 2
        settings = Settings(**overrides)
        # SIGNALR_LOG_FORMAT=json: one JSON object per line with the trace and span ids;
        # either way tokens are redacted and control characters escaped.
        configure_logging(
            settings.log_level,
            settings.log_format,
            # uvicorn's start-up lines would only repeat the banner.
            uvicorn_level="debug" if settings.log_level == "debug" else "warning",
        )
        try:
            configure_tracing()  # OTEL_* / APPLICATIONINSIGHTS_CONNECTION_STRING, once
        except TelemetryError as exc:
            print(f"Invalid telemetry settings: {exc}", file=sys.stderr)
            return 2
        banner = _banner(settings, backend_port, emulator_port, generated_key)
        if keyless_note is not None:
            banner = banner.replace("\nPress Ctrl-C", f"{keyless_note}\n\nPress Ctrl-C", 1)
        try:
            runner = build_runner(settings, backend_sock, emulator_sock)
        except ConfigurationError as exc:  # SIGNALR_HUBS names something that won't load
            print(_settings_error(exc), file=sys.stderr)
            return 2
        except (EmulatorError, ValueError) as exc:  # EMULATOR_* settings, EMULATOR_CONFIG's file
            print(_emulator_settings_error(exc), file=sys.stderr)
            return 2
        return runner.run(on_started=lambda: print(banner, flush=True))
    except KeyboardInterrupt:  # before the runner took over signal handling
        return 130
    finally:
        for sock in sockets:
            sock.close()


def _go_keyless(
    settings: Settings, overrides: dict[str, Any], emulator_port: int, backend_port: int
) -> str:
    """Point the backend at the keyless embedded emulator; return the banner's lines.

    The backend gets ``AuthType=azure.msi`` (its managed identity is the emulator's identity
    endpoint: ``IDENTITY_ENDPOINT`` / ``IDENTITY_HEADER``, read by azure-identity), and its
    webhook checks the upstream's bearer (``SIGNALR_UPSTREAM_AUDIENCE`` / ``_TENANT_ID`` /
    ``_AUTHORITY`` name the emulator's tenant, issuer and upstream resource).
    """
    emulator = emulator_settings(settings, emulator_port, backend_port, keyless=True)
    base = emulator.public_base
    resource = emulator.upstream_auth_resource or KEYLESS_UPSTREAM_RESOURCE
    os.environ["IDENTITY_ENDPOINT"] = f"{base}/identity/msi/token"
    os.environ["IDENTITY_HEADER"] = emulator.identity_header
    if "SIGNALR_ACCESS_KEY_RETRY_INTERVAL" not in os.environ:
        overrides["access_key_retry_interval"] = 10.0  # a laptop's emulator restarts often
    overrides.update(
        connection_string=(
            f"Endpoint=http://{_dial_host(settings.host)};Port={emulator_port};"
            "AuthType=azure.msi;Version=1.0;"
        ),
        upstream_audience=resource,
        upstream_tenant_id=emulator.tenant_id,
        upstream_authority=f"{base}/identity",
    )
    return "\n".join(
        [
            "  keyless            local auth disabled on the emulator; the backend signs in",
            f"                     with a managed identity from {base}/identity/msi/token",
            f"                     and checks the upstream's Entra bearer (aud {resource})",
        ]
    )


def emulator_settings(
    settings: Settings, port: int, backend_port: int, *, keyless: bool | None = None
) -> EmulatorSettings:
    """The embedded emulator's settings: the backend's host and key, upstream to its webhook.

    ``EMULATOR_*`` variables set the rest, as for ``signalr-emulator``; ``EMULATOR_CONFIG`` or
    ``EMULATOR_UPSTREAM_URL`` replace the webhook upstream. Keyless (``--keyless``: the
    backend's endpoint is keyless), local auth is disabled, the public base is the address
    the backend dials, and upstream calls carry a bearer for the backend's audience.

    Args:
        settings: the backend's settings; their connection string names the emulator's port.
        port: the emulator's bound port.
        backend_port: the backend's bound port.
        keyless: run the emulator keyless; by default when the backend's endpoint is keyless.
    """
    if keyless is None:
        keyless = settings.endpoint.keyless
    emulator = EmulatorSettings(host=settings.host, port=port, access_key=EMULATOR_ACCESS_KEY)
    if keyless:
        emulator = emulator.model_copy(
            update={
                "keyless": True,
                "public_url": emulator.public_url or f"http://{_dial_host(settings.host)}:{port}",
                "upstream_auth_resource": (
                    settings.upstream_audience
                    or emulator.upstream_auth_resource
                    or KEYLESS_UPSTREAM_RESOURCE
                ),
            }
        )
    if emulator.config is None and emulator.upstream_url is None:
        webhook = f"http://{_dial_host(settings.host)}:{backend_port}/runtime/webhooks/signalr"
        emulator = emulator.model_copy(update={"upstream_url": webhook})
    return emulator


def build_runner(
    settings: Settings, backend_sock: socket.socket, emulator_sock: socket.socket | None
) -> ServerGroup:
    """The servers of ``serverless-signalr`` on already bound sockets.

    Args:
        settings: the backend's settings; with an emulator socket, their connection string
            must point at its port (``emulator_port``).
        backend_sock: the backend's listening socket.
        emulator_sock: the embedded emulator's socket, or ``None`` to run the backend only.

    Returns:
        A :class:`~emulator.runner.ServerGroup`: ``run()`` (or ``await serve()``) serves until
        a stop is requested.
    """
    runner = ServerGroup()
    backend = create_app(settings)
    runner.add(
        "backend",
        Server(
            server_config(
                backend,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
                server_header=False,
            )
        ),
        backend_sock,
    )
    if emulator_sock is None:
        return runner
    emulator = create_emulator(
        emulator_settings(settings, _port_of(emulator_sock), _port_of(backend_sock))
    )
    # Added last, so it stops first: its disconnect webhooks still find the backend.
    runner.add(
        "emulator",
        EmulatorServer(
            uvicorn_config(emulator, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS),
            emulator,
        ),
        emulator_sock,
    )
    return runner


if __name__ == "__main__":
    sys.exit(main())
