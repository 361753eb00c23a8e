"""Serve ASGI apps with uvicorn: the emulator's options, listening sockets, one process runner.

- :func:`server_config`: what every server of the project runs with (no uvicorn log
  handlers, so :func:`signalr_protocol.logsafe.configure_logging` sees and redacts every
  line; no access log, as request lines carry ``access_token`` queries; lifespan on).
- :func:`uvicorn_config`: the emulator's configuration on top of it: the ``websockets-sansio``
  WebSocket protocol (which :mod:`emulator.fastpath` writes through; subclassed by
  :mod:`emulator.wsprotocol` so invalid UTF-8 is one log line), permessage-deflate off
  (as in ASP.NET Core and the service), no protocol-level pings (the hub protocol has its own).
- :func:`bind_socket`: the listening socket, created with ``IPPROTO_TCP`` so that asyncio sets
  ``TCP_NODELAY`` on accepted connections (otherwise a response written as headers + body can
  wait ~40 ms for a delayed ACK). Binding before serving reports a busy port at once and makes
  port 0 (any free port) usable.
- :class:`ServerGroup`: runs one or more servers in one event loop, stops them on Ctrl-C or
  SIGTERM (a second one forces the exit), last added first. ``signalr-emulator`` runs one;
  ``serverless-signalr`` runs the backend and the embedded emulator.
- :func:`serve`: an emulator inside the caller's event loop, until cancelled::

      task = asyncio.create_task(serve(EmulatorSettings(port=8888)))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

from .server import EmulatorApp, create_app
from .settings import EmulatorSettings
from .wsprotocol import EmulatorWebSocketProtocol

__all__ = [
    "EmulatorServer",
    "Server",
    "ServerGroup",
    "bind_socket",
    "serve",
    "server_config",
    "uvicorn_config",
]

logger = logging.getLogger("emulator.runner")

_DRAIN_POLL_SECONDS = 0.01
"""How often a stop checks whether what was in flight has ended."""

_STOP_GRACE_SECONDS = 10
"""How long a server may take beyond its graceful shutdown timeout before it counts as failed."""


class Server(uvicorn.Server):
    """uvicorn's server without signal handlers of its own.

    Whoever runs it stops it (:class:`ServerGroup` on a signal, or task cancellation): with
    two servers in one loop, each capturing the signals would steal them from the other.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Install nothing (see the class docstring)."""
        yield


class EmulatorServer(Server):
    """A :class:`Server` that stops the emulator as quickly as a crash, for its clients.

    It stops accepting first (the port is free at once, and no client reconnects in
    between); then every client gets a Close message allowing reconnect (so a JS client with
    automatic reconnect comes back after a restart) and its Server-Sent Events or long-poll
    response ends. What is in flight (Close messages being written, ``disconnected`` events
    and other upstream calls) gets the emulator's ``shutdown_timeout`` (0.5 s) to finish;
    then the upstream is cut off, requests still running are cancelled and connections
    whose output is stuck (a client that stopped reading) are dropped, so the stop never
    waits uvicorn's ``timeout_graceful_shutdown``. The official client retries after 0 and
    2 s: a restart within 2 s brings its clients straight back.
    """

    def __init__(self, config: uvicorn.Config, app: EmulatorApp) -> None:
        super().__init__(config)
        self.emulator = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Stop listening, close the clients, drain within the bound, then shut down as
        uvicorn does."""
        for server in self.servers:
            server.close()
        self.emulator.close_connections()
        for protocol in list(self.server_state.connections):
            if hasattr(protocol, "cycle"):
                # HTTP/1.1: an idle kept-alive connection closes now, a busy one after its
                # response, so a client's immediate retry cannot reach this stopping server.
                protocol.shutdown()
        if not await self._drain(self.emulator.settings.shutdown_timeout):
            self._cut_off()
        await super().shutdown(sockets)

    def _busy(self) -> bool:
        return bool(self.server_state.tasks) or self.emulator.in_flight

    async def _drain(self, bound: float) -> bool:
        """Wait up to ``bound`` seconds for requests and background work to end."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + bound
        while self._busy():
            if loop.time() >= deadline or self.force_exit:
                return False
            await asyncio.sleep(_DRAIN_POLL_SECONDS)
        return True

    def _cut_off(self) -> None:
        """The bound passed: no more upstream calls, cancel the requests still running, drop
        the connections with output stuck in their buffers."""
        left = len(self.server_state.tasks)
        logger.info("Stop: %d request(s) still running after the shutdown bound; cut short", left)
        self.emulator.cut_off()
        for task in list(self.server_state.tasks):
            task.cancel()
        for protocol in list(self.server_state.connections):
            transport = getattr(protocol, "transport", None)
            if transport is not None and transport.get_write_buffer_size() > 0:
                transport.abort()


def bind_socket(host: str, port: int, *, backlog: int = 2048) -> socket.socket:
    """Bind a listening TCP socket for uvicorn.

    Args:
        host: the address or name to listen on (``127.0.0.1``, ``0.0.0.0``, ``::``,
            ``localhost``...).
        port: the port; ``0`` picks a free one (read it back with ``sock.getsockname()[1]``).
        backlog: the listen queue length.

    Returns:
        A bound, listening, non-blocking socket; the caller closes it.

    Raises:
        OSError: the address is in use or cannot be bound.
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None,
        port,
        type=socket.SOCK_STREAM,
        proto=socket.IPPROTO_TCP,
        flags=socket.AI_PASSIVE,
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        if sys.platform != "win32":  # on Windows it would let two servers share a port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def server_config(app: Any, *, log_level: str | None = None, **overrides: Any) -> uvicorn.Config:
    """The uvicorn configuration every server of the project starts from.

    Args:
        app: the ASGI application.
        log_level: sets uvicorn's loggers to this level; ``None`` leaves them as
            :func:`signalr_protocol.logsafe.configure_logging` set them.
        **overrides: any other ``uvicorn.Config`` option.
    """
    options: dict[str, Any] = {
        "log_level": log_level.lower() if log_level is not None else None,
        "log_config": None,
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": 5,
        **overrides,
    }
    return uvicorn.Config(app, **options)


def uvicorn_config(
    app: EmulatorApp, *, log_level: str | None = None, **overrides: Any
) -> uvicorn.Config:
    """The uvicorn configuration the emulator is meant to run with (see the module docstring)."""
    options: dict[str, Any] = {
        "ws": EmulatorWebSocketProtocol,
        "ws_per_message_deflate": False,
        "ws_ping_interval": None,
        "ws_max_size": 16 * 1024 * 1024,
        **overrides,
    }
    return server_config(app, log_level=log_level, **options)


@dataclass(slots=True)
class _Member:
    name: str
    server: Server
    sock: socket.socket
    task: asyncio.Task[None] | None = None


class ServerGroup:
    """Runs uvicorn servers in one event loop until Ctrl-C, SIGTERM or a failure.

    Servers start in the order added and stop in the reverse order, so a server added after
    the one it calls (the emulator calls the backend's webhook) stops first, while its calls
    still find their target. Call :meth:`run` from the main thread, or ``await``
    :meth:`serve` in a running loop.
    """

    def __init__(self) -> None:
        self._members: list[_Member] = []
        self._stop = asyncio.Event()
        self._stop_requests = 0

    def add(self, name: str, server: Server, sock: socket.socket) -> None:
        """Serve ``server`` on the already bound ``sock`` (see :func:`bind_socket`).

        Args:
            name: for log lines.
            server: a configured server; the group closes ``sock`` once it stopped.
            sock: a bound, listening socket.
        """
        self._members.append(_Member(name, server, sock))

    def request_stop(self) -> None:
        """Begin a graceful stop (what Ctrl-C and SIGTERM do); a second request forces it."""
        self._stop_requests += 1
        if self._stop_requests > 1:
            logger.warning("second stop request: forcing exit")
            for member in self._members:
                member.server.force_exit = True
        self._stop.set()

    def run(self, on_started: Callable[[], object] | None = None) -> int:
        """:meth:`serve` in a new event loop (uvloop when installed, as uvicorn chooses)."""
        factory = self._members[0].server.config.get_loop_factory() if self._members else None
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(self.serve(on_started))

    async def serve(self, on_started: Callable[[], object] | None = None) -> int:
        """Start every server, wait for a stop request or a failure, then stop them all.

        Args:
            on_started: called (no arguments) once every server accepts connections.

        Returns:
            0 after a requested stop, 1 when a server failed to start or stopped by itself.
        """
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
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
            # would tear the loop down under the other servers, so make it a plain failure.
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

    @staticmethod
    async def _shutdown(member: _Member) -> bool:
        """Stop one server; True when it had failed."""
        member.server.should_exit = True
        timeout = member.server.config.timeout_graceful_shutdown or 0
        try:
            if member.task is not None:
                await asyncio.wait_for(member.task, timeout=timeout + _STOP_GRACE_SECONDS)
        except Exception as exc:
            logger.error("%s server failed: %r", member.name, exc)
            return True
        finally:
            member.sock.close()
        return False


async def serve(
    settings: EmulatorSettings, *, sock: socket.socket | None = None, log_level: str | None = None
) -> None:
    """Run an emulator in the current event loop until cancelled, then stop it gracefully.

    Args:
        settings: the emulator settings (``host``/``port`` used unless ``sock`` is given).
        sock: an already bound socket (see :func:`bind_socket`).
        log_level: uvicorn's log level (``None``: as logging is configured).
    """
    own = sock is None
    if sock is None:
        sock = bind_socket(settings.host, settings.port)
    app = create_app(settings)
    server = EmulatorServer(uvicorn_config(app, log_level=log_level), app)
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        # A graceful stop: clients get their Close message and the lifespan shutdown runs.
        server.should_exit = True
        await task
        raise
    finally:
        if own:
            sock.close()
