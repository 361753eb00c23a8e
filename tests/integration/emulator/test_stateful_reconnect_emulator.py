"""Stateful reconnect with the official JS client: a dropped TCP connection loses nothing.

The client (``withStatefulReconnect()``) reaches the emulator through a small TCP proxy on
127.0.0.1 that the test cuts (both sockets aborted, no WebSocket close frame), as a network
blip would. Reference behaviour read in dotnet/aspnetcore:
``src/SignalR/common/Http.Connections/src/Internal/HttpConnectionDispatcher.cs`` (negotiate's
``useStatefulReconnect``; an ungraceful transport end leaves the connection for a reconnect),
``src/SignalR/common/Shared/MessageBuffer.cs`` (Ack / Sequence / replay) and
``src/SignalR/common/Http.Connections/src/ConnectionOptionsSetup.cs`` (15 s
``DisconnectTimeout``); and in the JS client ``src/HttpConnection.ts`` / ``src/MessageBuffer.ts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from emulator.http import read_body
from signalr_protocol.codec import JSON_CODEC
from signalr_protocol.messages import CompletionMessage, InvocationMessage
from tests.support.emulator import RunningEmulator, running_emulator
from tests.support.emulator_kit import Rest
from tests.support.node import NODE
from tests.support.servers import serve_asgi

pytestmark = [pytest.mark.anyio, pytest.mark.node]

SCRIPT = Path(__file__).resolve().parents[2] / "node" / "stateful_reconnect.mjs"
ROOT = SCRIPT.parents[2]


@pytest.fixture
def anyio_backend() -> str:
    """Run on asyncio."""
    return "asyncio"


class Proxy:
    """A TCP proxy to the emulator; :meth:`cut` drops every open pipe, :attr:`hold` delays
    new ones (they connect to the emulator only when released)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.accepted = 0
        self.hold = asyncio.Event()
        self.hold.set()
        self._pipes: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        await self.hold.wait()
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._pipes.append((writer, up_writer))
        loop = asyncio.get_running_loop()
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = loop.create_task(self._pump(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        dst.close()

    def cut(self) -> None:
        """Abort both sockets of every open pipe (no close frame, no FIN handshake)."""
        for client, upstream in self._pipes:
            client.transport.abort()
            upstream.transport.abort()
        self._pipes.clear()

    async def close(self) -> None:
        self.cut()
        if self.server is not None:
            self.server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass
class Upstream:
    """Records the connection events and invocations the emulator sends upstream; answers an
    invocation with its first argument, after ``delay`` seconds."""

    events: list[tuple[str, str]] = field(default_factory=list)
    calls: list[tuple[str, list[Any]]] = field(default_factory=list)
    delay: float = 0.0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        body = await read_body(receive, 2**20)
        answer = b""
        if headers.get("x-asrs-category") == "connections":
            self.events.append((headers["x-asrs-event"], headers["x-asrs-connection-id"]))
        else:
            invocation = JSON_CODEC.decode_payload(body)
            assert isinstance(invocation, InvocationMessage)
            self.calls.append((invocation.target, list(invocation.arguments)))
            await asyncio.sleep(self.delay)
            if invocation.invocation_id is not None:
                answer = JSON_CODEC.encode(
                    CompletionMessage.with_result(invocation.invocation_id, invocation.arguments[0])
                )
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": answer})

    def count(self, event: str) -> int:
        return sum(1 for name, _ in self.events if name == event)


class StatefulClient:
    """``node tests/node/stateful_reconnect.mjs``: one official client with stateful reconnect."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.seq: list[int] = []
        self.connection_id: str | None = None
        self.closed = asyncio.Event()
        self.close_error: str | None = None
        self.started = asyncio.Event()
        self._replies: dict[int, asyncio.Future[Any]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def invoke(self, target: str, *args: Any) -> Any:
        """``connection.invoke(target, ...args)`` in the client; its result."""
        req = len(self._replies) + 1
        future = self._replies[req] = asyncio.get_running_loop().create_future()
        assert self.proc.stdin is not None
        command = {"cmd": "invoke", "req": req, "target": target, "args": list(args)}
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        await self.proc.stdin.drain()
        async with asyncio.timeout(15):
            return await future

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            event = json.loads(line)
            kind = event["event"]
            if kind == "seq":
                self.seq.append(event["n"])
            elif kind == "started":
                self.connection_id = event["connectionId"]
                self.started.set()
            elif kind == "reply":
                future = self._replies[event["req"]]
                if event["ok"]:
                    future.set_result(event["result"])
                else:
                    future.set_exception(RuntimeError(event["error"]))
            elif kind == "closed":
                self.close_error = event["error"]
                self.closed.set()
                self.started.set()

    async def received(self, count: int, seconds: float) -> None:
        async with asyncio.timeout(seconds):
            while len(self.seq) < count and not self.closed.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def stateful_client(url: str, token: str) -> AsyncIterator[StatefulClient]:
    if NODE is None:
        pytest.skip("node is not installed")
    proc = await asyncio.create_subprocess_exec(
        NODE,
        str(SCRIPT),
        url,
        token,
        cwd=str(ROOT),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NODE_NO_WARNINGS": "1"},
    )
    client = StatefulClient(proc)
    try:
        async with asyncio.timeout(15):
            await client.started.wait()
        yield client
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            async with asyncio.timeout(10):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
        await client._reader


@contextlib.asynccontextmanager
async def setup(**settings: Any) -> AsyncIterator[tuple[RunningEmulator, Proxy, Upstream, Rest]]:
    upstream = Upstream()
    async with serve_asgi(upstream, lifespan="off") as upstream_base:
        async with running_emulator(
            upstream_url=f"{upstream_base}/runtime/webhooks/signalr", **settings
        ) as emu:
            proxy = Proxy(emu.port)
            await proxy.start()
            try:
                async with httpx.AsyncClient(timeout=10) as http:
                    yield emu, proxy, upstream, Rest(emu, http)
            finally:
                await proxy.close()


def _link(emu: RunningEmulator, connection_id: str) -> Any:
    for conn in emu.app.state.registry.connections():
        if conn.connection_id == connection_id:
            return conn.replay
    return None


async def test_negotiate_grants_stateful_reconnect_only_when_asked() -> None:
    """Negotiate answers ``useStatefulReconnect: true`` only to ``useStatefulReconnect=true``,
    and not at all when the setting turns it off (HttpConnectionDispatcher.cs, ProcessNegotiate)."""
    for enabled in (True, False):
        async with running_emulator(stateful_reconnect=enabled) as emu, httpx.AsyncClient() as http:
            headers = {"Authorization": f"Bearer {emu.client_token('chat')}"}
            base = f"{emu.base_url}/client/negotiate?hub=chat&negotiateVersion=1"
            asked = (await http.post(base + "&useStatefulReconnect=true", headers=headers)).json()
            plain = (await http.post(base, headers=headers)).json()
            assert asked.get("useStatefulReconnect", False) is enabled
            assert "useStatefulReconnect" not in plain


async def test_tcp_drop_mid_stream_loses_and_duplicates_nothing() -> None:
    """300 sequenced broadcasts with the client's TCP connection cut twice mid-stream all
    arrive exactly once and in order, on the same connection id, with no ``disconnected``
    upstream; a client stop then sends ``disconnected`` at once."""
    async with setup(keep_alive_interval=2) as (emu, proxy, upstream, rest):
        hub = "seqhub"
        url = f"http://127.0.0.1:{proxy.port}/client/?hub={hub}"
        async with stateful_client(url, emu.client_token(hub)) as client:
            assert client.connection_id is not None
            assert _link(emu, client.connection_id) is not None  # armed: version 2 handshake
            for n in range(1, 301):
                await rest.send(f"/api/hubs/{hub}/:send", "seq", n)
                if n == 150:  # let the client's Ack (sent after 1 s) trim the buffer
                    link = _link(emu, client.connection_id)
                    held = link.buffer.unacknowledged
                    await asyncio.sleep(1.5)
                    assert link.buffer.unacknowledged < held
                if n in (100, 200):
                    before = proxy.accepted
                    proxy.cut()
                if n in (120, 220):  # the client came back (a new TCP connection)
                    assert proxy.accepted > before
            await client.received(300, seconds=20)
            assert client.close_error is None and not client.closed.is_set()
            assert client.seq == list(range(1, 301))
            assert proxy.accepted >= 4  # negotiate, the WebSocket, and two reconnects
            assert upstream.count("connected") == 1
            assert upstream.count("disconnected") == 0
            link = _link(emu, client.connection_id)
            assert link is not None and link.detached_since is None
        async with asyncio.timeout(5):
            while upstream.count("disconnected") == 0:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert upstream.events == [
            ("connected", client.connection_id),
            ("disconnected", client.connection_id),
        ]


async def test_invocation_cut_in_flight_runs_once_and_completes() -> None:
    """An invocation whose connection is cut while the upstream handles it runs upstream
    exactly once (the client's resend after the reconnect is dropped as a duplicate) and its
    completion, written to the dead socket, is replayed; the reconnect waits for the old
    WebSocket to let go. Then the client's next call works as usual."""
    async with setup() as (emu, proxy, upstream, rest):
        hub = "invhub"
        upstream.delay = 0.6
        url = f"http://127.0.0.1:{proxy.port}/client/?hub={hub}"
        async with stateful_client(url, emu.client_token(hub)) as client:
            call = asyncio.get_running_loop().create_task(client.invoke("slow", "first"))
            async with asyncio.timeout(5):
                while not upstream.calls:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            proxy.cut()
            assert await call == "first"
            upstream.delay = 0.0
            assert await client.invoke("echo", "second") == "second"
            await rest.send(f"/api/hubs/{hub}/:send", "seq", 1)
            await client.received(1, seconds=5)
            assert client.seq == [1]
            assert upstream.calls == [("slow", ["first"]), ("echo", ["second"])]
            assert upstream.count("disconnected") == 0
            assert proxy.accepted >= 3
            assert not client.closed.is_set()


async def test_reconnect_after_the_window_gets_a_clean_close() -> None:
    """A client that comes back after ``stateful_reconnect_window`` is refused and closes;
    ``disconnected`` reaches the upstream once, when the window expires, not at the drop."""
    async with setup(stateful_reconnect_window=1.0, keep_alive_interval=2) as (
        emu,
        proxy,
        upstream,
        rest,
    ):
        hub = "winhub"
        url = f"http://127.0.0.1:{proxy.port}/client/?hub={hub}"
        async with stateful_client(url, emu.client_token(hub)) as client:
            connection_id = client.connection_id
            proxy.hold.clear()  # the client's reconnect waits in the proxy
            proxy.cut()
            await asyncio.sleep(0.5)
            assert upstream.count("disconnected") == 0  # within the window: still connected
            assert not client.closed.is_set()
            async with asyncio.timeout(5):
                while upstream.count("disconnected") == 0:  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
            await rest.send(f"/api/hubs/{hub}/:send", "seq", 1)  # nobody receives it now
            proxy.hold.set()  # the reconnect reaches the emulator after the window
            async with asyncio.timeout(10):
                await client.closed.wait()
            assert client.close_error is not None
            assert client.seq == []
        assert upstream.events == [("connected", connection_id), ("disconnected", connection_id)]
