"""``python -m app``: the backend on port 7071, plus the embedded emulator when no service is set.

With ``AzureSignalRConnectionString`` (or ``Azure__SignalR__Endpoints__*``) set, only the
backend runs and talks to that service. Without it, the local emulator runs too, on
``SIGNALR_EMULATOR_PORT`` (8888), in the same process and event loop, and calls the backend's
webhook at ``http://127.0.0.1:<port>/runtime/webhooks/signalr``. A gateway key is generated
for that local setup when ``GATEWAY_API_KEYS`` is unset, and printed.

Both listening sockets are bound before anything starts, so a busy port is reported at once
and port ``0`` (any free port) works for both. Ctrl-C or SIGTERM stops the emulator first,
then the backend, each with a bounded grace period; a second Ctrl-C forces the exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import logging.config
import os
import re
import secrets
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn
from pydantic import ValidationError

from app.settings import Settings, get_settings
from signalr_protocol.connection_string import EMULATOR_ACCESS_KEY, emulator_connection_string

__all__ = ["Runner", "bind_socket", "build_runner", "main", "mask_connection_string"]

logger = logging.getLogger("app.run")

GRACEFUL_SHUTDOWN_SECONDS = 3
"""How long open connections (SSE, long polling, WebSockets) get to finish on shutdown."""

EMULATOR_UVICORN_OPTIONS: dict[str, Any] = {
    "ws": "websockets-sansio",
    # The service does not compress, and its keep-alive is the hub protocol's Ping.
    "ws_per_message_deflate": False,
    "ws_ping_interval": None,
    "ws_max_size": 16 * 1024 * 1024,
}
"""uvicorn options for the embedded emulator (as ``python -m emulator`` runs it)."""

_SECRET_SEGMENT = re.compile(r"(?i)\b(accesskey|clientsecret)=([^;]*)")
_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "[::]"})


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


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind a listening TCP socket for uvicorn.

    Args:
        host: the address to listen on (``127.0.0.1``, ``0.0.0.0``, ``::``...).
        port: the port; ``0`` picks a free one (read it back with ``getsockname()``).

    Returns:
        A bound, listening, non-blocking socket; the caller closes it.

    Raises:
        OSError: the address is in use or cannot be bound.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        if sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


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


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to :class:`Runner` (two servers, one loop)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(slots=True)
class _Member:
    name: str
    server: _Server
    sock: socket.socket
    before_stop: Callable[[], None] | None = None
    task: asyncio.Task[None] | None = None


class Runner:
    """Runs the backend and, optionally, the emulator as two uvicorn servers in one loop.

    Call :meth:`run` from the main thread; it returns the process exit status.
    """

    def __init__(self) -> None:
        self._members: list[_Member] = []
        self._stop = asyncio.Event()
        self._signals = 0

    def add(
        self,
        name: str,
        app: Any,
        sock: socket.socket,
        *,
        before_stop: Callable[[], None] | None = None,
        **config: Any,
    ) -> None:
        """Serve ``app`` on the already bound ``sock`` (started in the order added).

        Args:
            name: for log lines.
            app: the ASGI application.
            sock: a bound, listening socket (see :func:`bind_socket`).
            before_stop: called just before the server is told to stop, e.g. to end
                long-lived responses (SSE, long polling) that would otherwise hold the
                graceful shutdown until its timeout.
            **config: extra ``uvicorn.Config`` options.
        """
        options: dict[str, Any] = {
            "lifespan": "on",
            "log_config": None,
            "access_log": False,
            "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
            "server_header": False,
            **config,
        }
        uvicorn_config = uvicorn.Config(app, **options)
        self._members.append(_Member(name, _Server(uvicorn_config), sock, before_stop))

    def request_stop(self) -> None:
        """Begin a graceful stop (what Ctrl-C and SIGTERM do)."""
        self._signals += 1
        if self._signals > 1:
            logger.warning("second stop request: forcing exit")
            for member in self._members:
                member.server.force_exit = True
        self._stop.set()

    async def run(self, on_started: Any = None) -> int:
        """Start every server, wait for a stop request or a failure, then stop them all.

        Args:
            on_started: called (no arguments) once every server accepts connections.

        Returns:
            0 after a requested stop, 1 when a server failed to start or stopped by itself.
        """
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
                installed.append(sig)
        failed = False
        try:
            for member in self._members:
                member.task = asyncio.create_task(self._serve(member), name=f"serve-{member.name}")
                if not await self._started(member):
                    break
            else:
                if on_started is not None:
                    on_started()
                failed = await self._wait_for_stop()
        finally:
            # The emulator (added last) stops first, so its disconnect webhooks still find
            # the backend; then the backend.
            for member in reversed(self._members):
                if await self._shutdown(member):
                    failed = True
            for sig in installed:
                loop.remove_signal_handler(sig)
        return 1 if failed else 0

    @staticmethod
    async def _serve(member: _Member) -> None:
        try:
            await member.server.serve(sockets=[member.sock])
        except SystemExit as exc:
            # uvicorn exits the process when the app's lifespan start-up fails; here that
            # would tear the loop down under the other server, so make it a plain failure.
            raise RuntimeError(f"{member.name} failed to start (exit status {exc.code})") from None

    async def _started(self, member: _Member) -> bool:
        """Wait until ``member`` accepts connections; False if it failed or a stop came first."""
        assert member.task is not None
        while not member.server.started:
            if member.task.done() or self._stop.is_set():
                return False
            await asyncio.sleep(0.02)
        return True

    async def _wait_for_stop(self) -> bool:
        """Wait for a stop request; True when a server ended on its own instead."""
        stop = asyncio.create_task(self._stop.wait())
        tasks = {m.task for m in self._members if m.task is not None}
        done, _ = await asyncio.wait({stop, *tasks}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stop
        ended = [m.name for m in self._members if m.task in done]
        if ended:
            logger.error("server stopped unexpectedly: %s", ", ".join(ended))
            return True
        return False

    async def _shutdown(self, member: _Member) -> bool:
        """Stop one server; True when it had failed."""
        server = member.server
        server.should_exit = True
        logger.debug("stopping %s", member.name)
        if member.before_stop is not None and server.started:
            # First let uvicorn stop accepting (it checks should_exit every 0.1 s), so no
            # client reconnects in between; then end the long-lived responses it waits for.
            for _ in range(50):
                if not any(s.is_serving() for s in getattr(server, "servers", [])):
                    break
                await asyncio.sleep(0.02)
            try:
                member.before_stop()
            except Exception:
                logger.exception("%s: preparing to stop failed", member.name)
        try:
            if member.task is not None:
                await asyncio.wait_for(member.task, timeout=GRACEFUL_SHUTDOWN_SECONDS + 10)
        except (Exception, SystemExit) as exc:  # startup failures exit via SystemExit
            logger.error("%s server failed: %r", member.name, exc)
            return True
        finally:
            member.sock.close()
        return False


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m app",
        description=(
            "Run the backend (default port 7071). Without AzureSignalRConnectionString, the "
            "local SignalR Service emulator runs too (default port 8888)."
        ),
    )
    parser.add_argument("--host", help="address to listen on (SIGNALR_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="backend port (SIGNALR_PORT, 7071)")
    parser.add_argument(
        "--emulator-port", type=int, help="embedded emulator port (SIGNALR_EMULATOR_PORT, 8888)"
    )
    return parser.parse_args(argv)


def _configure_logging(level: str) -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "plain": {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"},
            },
            # The embedded emulator's WebSocket / SSE URLs carry access_token in the query,
            # and uvicorn logs request paths: mask tokens before any record is written.
            "filters": {"redact": {"()": "emulator.logs.RedactTokens"}},
            "handlers": {
                "stdout": {
                    "class": "logging.StreamHandler",
                    "formatter": "plain",
                    "stream": "ext://sys.stdout",
                    "filters": ["redact"],
                },
            },
            "root": {"level": level.upper(), "handlers": ["stdout"]},
            "loggers": {
                # uvicorn's own handlers are off (log_config=None): everything goes to root.
                "uvicorn.error": {"level": "WARNING" if level != "debug" else "DEBUG"},
                # One line per outbound request is noise; failures are logged by the callers.
                "httpx": {"level": "WARNING" if level != "debug" else "DEBUG"},
                "httpcore": {"level": "WARNING"},
            },
        }
    )


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


def _load_settings(**overrides: Any) -> Settings:
    get_settings.cache_clear()
    return Settings(**overrides)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m app``; returns the exit status."""
    args = _parse_args(argv)
    # Command-line values win over the environment; they are written back to it so that
    # every Settings() built later in this process (get_settings) agrees.
    for name, value in (
        ("SIGNALR_HOST", args.host),
        ("SIGNALR_PORT", args.port),
        ("SIGNALR_EMULATOR_PORT", args.emulator_port),
    ):
        if value is not None:
            os.environ[name] = str(value)
    # Port 0 (any free port) is fine for the emulator, but not in a connection string: use a
    # placeholder until the socket is bound and the real port is known.
    any_emulator_port = os.environ.get("SIGNALR_EMULATOR_PORT", "").strip() == "0"
    try:
        settings = _load_settings(**({"emulator_port": 8888} if any_emulator_port else {}))
    except ValidationError as exc:
        print(f"Invalid settings:\n{exc}", file=sys.stderr)
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
            print(
                f"Cannot listen on {settings.host}:{port} for the {name}: "
                f"{exc.strerror or exc}. Stop the process using it, or choose another port "
                f"with {option}.",
                file=sys.stderr,
            )
            return 1
    backend_sock = sockets[0]
    emulator_sock = sockets[1] if len(sockets) > 1 else None

    try:
        backend_port = _port_of(backend_sock)
        emulator_port = _port_of(emulator_sock) if emulator_sock is not None else None
        generated_key: str | None = None
        os.environ["SIGNALR_PORT"] = str(backend_port)
        if emulator_port is not None:
            os.environ["SIGNALR_EMULATOR_PORT"] = str(emulator_port)
            if not settings.gateway_api_keys:
                # The gateway refuses every call without keys; a local run gets one to try.
                generated_key = secrets.token_urlsafe(24)
                os.environ["GATEWAY_API_KEYS"] = generated_key
        settings = _load_settings()
        _configure_logging(settings.log_level)
        banner = _banner(settings, backend_port, emulator_port, generated_key)
        runner = build_runner(settings, backend_sock, emulator_sock)
        return asyncio.run(runner.run(on_started=lambda: print(banner, flush=True)))
    finally:
        for sock in sockets:
            sock.close()


def build_runner(
    settings: Settings, backend_sock: socket.socket, emulator_sock: socket.socket | None
) -> Runner:
    """Prepare the servers of ``python -m app`` on already bound sockets.

    Args:
        settings: the backend's settings; with an emulator socket, their connection string
            must point at its port (``SIGNALR_EMULATOR_PORT``).
        backend_sock: the backend's listening socket.
        emulator_sock: the embedded emulator's socket, or ``None`` to run the backend only.

    Returns:
        A :class:`Runner`; ``await runner.run()`` serves until a stop is requested.
    """
    from app.main import create_app

    runner = Runner()
    runner.add("backend", create_app(settings), backend_sock)
    if emulator_sock is None:
        return runner

    from emulator.server import create_app as create_emulator
    from emulator.settings import EmulatorSettings

    overrides: dict[str, Any] = {
        "host": settings.host,
        "port": _port_of(emulator_sock),
        "access_key": EMULATOR_ACCESS_KEY,
    }
    if not {"EMULATOR_CONFIG", "EMULATOR_UPSTREAM_URL"} & set(os.environ):
        backend = f"{_dial_host(settings.host)}:{_port_of(backend_sock)}"
        overrides["upstream_url"] = f"http://{backend}/runtime/webhooks/signalr"
    emulator = create_emulator(EmulatorSettings(**overrides))
    runner.add(
        "emulator",
        emulator,
        emulator_sock,
        # Clients get a Close message (reconnect allowed) and their SSE / long-poll
        # responses end, so the graceful stop does not wait for them.
        before_stop=emulator.close_connections,
        **EMULATOR_UVICORN_OPTIONS,
    )
    return runner


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C before the servers took over signal handling
        sys.exit(130)
