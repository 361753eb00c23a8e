"""Stopping and restarting ``python -m emulator``: quick enough for clients to come straight back.

The official JavaScript client's automatic reconnect retries after 0, 2, 10 and 30 s
(``DefaultReconnectPolicy`` in dotnet/aspnetcore,
src/SignalR/clients/ts/signalr/src/DefaultReconnectPolicy.ts). A restart therefore has to
fit between the first two retries: the stopping emulator must leave the port at once, or
its clients wait 12 s instead of 2.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from signalr_protocol.connection_string import ServiceEndpoint, parse_connection_string
from signalr_protocol.tokens import mint_client_token, mint_token
from tests.support.node import NodeClient, node_process

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]

STOP_BOUND = 0.5
"""Seconds from SIGTERM to the process's exit."""
FIRST_RETRY = 2.0
"""The official client's second retry delay (the first is immediate)."""
RETURN_BOUND = 6.0
"""Seconds from SIGTERM until every client is back: past the 2 s retry, well before 12 s."""


async def _spawn(port: int, upstream: str = "") -> asyncio.subprocess.Process:
    """``python -m emulator --port <port>``, every upstream event to ``upstream`` (none: "")."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "emulator",
        "--port",
        str(port),
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "EMULATOR_UPSTREAM_URL": upstream},
    )


async def _printed_endpoint(proc: asyncio.subprocess.Process) -> ServiceEndpoint:
    """The endpoint of the connection string the emulator prints once it listens."""
    assert proc.stdout is not None
    async with asyncio.timeout(20):
        while b"Endpoint=" not in (line := await proc.stdout.readline()):
            assert line, "the emulator exited"
    return parse_connection_string(line.decode().strip())


async def _exit_time(proc: asyncio.subprocess.Process) -> float:
    """SIGTERM ``proc``; the seconds it took to exit (its status must be 0)."""
    started = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(15):
        await proc.wait()
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0
    return elapsed


async def _stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
    await proc.communicate()


async def test_sigterm_exits_at_once_and_clients_come_back_on_their_first_retries() -> None:
    """SIGTERM with official clients connected (each transport) exits within 0.5 s, and
    after a restart on the same port the clients, on the default retry delays, are back
    before the 10 s retry."""
    first = await _spawn(0)
    second: asyncio.subprocess.Process | None = None
    try:
        endpoint = await _printed_endpoint(first)
        port = urlsplit(endpoint.endpoint).port
        assert port is not None
        async with AsyncExitStack() as stack:
            node = await stack.enter_async_context(node_process())
            clients: list[NodeClient] = []
            for transport in ("WebSockets", "WebSockets", "ServerSentEvents", "LongPolling"):
                clients.append(
                    await stack.enter_async_context(
                        node.connect(
                            endpoint.client_url("chat"),
                            access_token=mint_client_token(endpoint, "chat"),
                            transport=transport,
                            reconnect="default",
                        )
                    )
                )
            before = {client.connection_id for client in clients}

            started = time.perf_counter()
            stopped = await _exit_time(first)
            assert stopped < STOP_BOUND, f"SIGTERM took {stopped:.2f} s"
            # Everything ended within the bound: no client's immediate retry got a new
            # connection from the stopping emulator to hold it up.
            assert "cut short" not in await _log(first)

            second = await _spawn(port)
            await _printed_endpoint(second)
            async with asyncio.timeout(RETURN_BOUND + 2):
                for client in clients:
                    await client.reconnected.wait()
            back = time.perf_counter() - started
            assert back < RETURN_BOUND, f"clients came back {back:.2f} s after SIGTERM"
            assert not any(client.closed.is_set() for client in clients)
            assert {client.connection_id for client in clients}.isdisjoint(before)

            # Back for real: a broadcast on the restarted emulator reaches every client.
            path = "/api/hubs/chat/:send"
            token = mint_token(endpoint.require_access_key(), endpoint.audience_base + path[1:])
            async with httpx.AsyncClient(timeout=10) as http:
                sent = await http.post(
                    f"{endpoint.endpoint}{path}",
                    json={"target": "newMessage", "arguments": ["back"]},
                    headers={"Authorization": f"Bearer {token}"},
                )
            assert sent.status_code == 202
            for client in clients:
                assert await client.next_message("newMessage", timeout=5) == ["back"]
    finally:
        await _stop(first)
        if second is not None:
            await _stop(second)


DRAIN_BOUND = 1.0
"""Seconds from SIGTERM to exit when something in flight does not finish: the emulator's
``shutdown_timeout`` (0.5 s) plus the process's own stop."""


class _Events:
    """The event names an upstream received, and a way to wait for some."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self._changed = asyncio.Condition()

    async def add(self, name: str) -> None:
        async with self._changed:
            self.names.append(name)
            self._changed.notify_all()

    async def wait_for(self, name: str, count: int = 1) -> None:
        async with asyncio.timeout(10), self._changed:
            await self._changed.wait_for(lambda: self.names.count(name) >= count)


@asynccontextmanager
async def _upstream(delay: float | None) -> AsyncIterator[tuple[str, _Events]]:
    """A real HTTP upstream on a free port: its URL, and the events it received.

    It answers 200 after ``delay`` seconds, or never (``None``: a hung backend).
    """
    events = _Events()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                fields = {
                    name.lower(): value
                    for name, _, value in (line.partition(": ") for line in lines[1:])
                }
                await reader.readexactly(int(fields.get("content-length") or "0"))
                await events.add(fields.get("x-asrs-event", "?"))
                if delay is None:
                    await asyncio.Event().wait()
                else:
                    await asyncio.sleep(delay)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/runtime/webhooks/signalr", events
    finally:
        server.close()


async def _hub_client(endpoint: ServiceEndpoint, hub: str = "chat") -> ClientConnection:
    """A WebSocket client of ``hub`` past the JSON handshake."""
    token = mint_client_token(endpoint, hub)
    url = endpoint.client_url(hub).replace("http://", "ws://") + f"&access_token={token}"
    ws = await connect(url, max_queue=1, max_size=None)
    await ws.send('{"protocol":"json","version":1}\x1e')
    assert str(await asyncio.wait_for(ws.recv(), 10)).startswith("{}")
    return ws


async def _log(proc: asyncio.subprocess.Process) -> str:
    assert proc.stderr is not None
    return (await proc.stderr.read()).decode(errors="replace")


async def test_sigterm_drops_a_client_that_does_not_read_within_the_bound() -> None:
    """A client that stopped reading, with megabytes of broadcasts unsent, does not hold the
    stop past the shutdown bound (it held it for uvicorn's 5 s graceful timeout)."""
    proc = await _spawn(0)
    try:
        endpoint = await _printed_endpoint(proc)
        stalled = await _hub_client(endpoint, "stalled")
        reader = await _hub_client(endpoint)
        stalled.transport.pause_reading()
        path = "/api/hubs/stalled/:send"
        token = mint_token(endpoint.require_access_key(), endpoint.audience_base + path[1:])
        async with httpx.AsyncClient(timeout=10) as http:
            for _ in range(16):
                sent = await http.post(
                    f"{endpoint.endpoint}{path}",
                    json={"target": "big", "arguments": ["x" * 900_000]},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert sent.status_code == 202
        stopped = await _exit_time(proc)
        assert stopped < DRAIN_BOUND, f"SIGTERM took {stopped:.2f} s"
        # The client that reads still got its Close message, reconnect allowed.
        async with asyncio.timeout(10):
            while '"type":7' not in (frame := str(await reader.recv())):
                pass
        assert '"allowReconnect":true' in frame
        stalled.transport.abort()
        await reader.close()
    finally:
        await _stop(proc)
    log = await _log(proc)
    assert "Traceback" not in log and "graceful shutdown exceeded" not in log


async def test_sigterm_with_a_hung_upstream_call_exits_within_the_bound_quietly() -> None:
    """An upstream that never answers (a hung backend) does not hold the stop past the
    bound, and the call cut short leaves no traceback in the log."""
    async with _upstream(None) as (url, events):
        proc = await _spawn(0, url)
        try:
            endpoint = await _printed_endpoint(proc)
            client = await _hub_client(endpoint)
            await events.wait_for("connected")
            stopped = await _exit_time(proc)
            assert stopped < DRAIN_BOUND, f"SIGTERM took {stopped:.2f} s"
            client.transport.abort()
        finally:
            await _stop(proc)
    log = await _log(proc)
    assert "Traceback" not in log and "graceful shutdown exceeded" not in log


async def test_sigterm_still_delivers_the_disconnected_events_a_live_upstream_answers() -> None:
    """Within the bound, the stop drains what is in flight: a backend answering in 100 ms
    gets every client's ``disconnected`` event before the process exits."""
    async with _upstream(0.1) as (url, events):
        proc = await _spawn(0, url)
        try:
            endpoint = await _printed_endpoint(proc)
            clients = [await _hub_client(endpoint) for _ in range(3)]
            await events.wait_for("connected", 3)
            stopped = await _exit_time(proc)
            assert stopped < DRAIN_BOUND, f"SIGTERM took {stopped:.2f} s"
            assert events.names.count("disconnected") == 3
            for client in clients:
                client.transport.abort()
        finally:
            await _stop(proc)
