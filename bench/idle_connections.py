"""Idle connections: the emulator's memory per idle WebSocket client, and one broadcast's fan-out.

The emulator runs as its own process (``python -m emulator``, no upstream), pinned to core 0;
this script, pinned to core 1, opens N clients the way the official ones do (``POST
/client/negotiate``, then a WebSocket with the connection token, then the JSON hub protocol
handshake) and keeps them alive with a ping every 10 s. The clients are light
``asyncio.Protocol`` objects over the sans-I/O ``websockets`` client, so 10,000 of them fit in
one Python process. It prints:

* memory per idle connection: the emulator's RSS after N connections are open and settled,
  minus its RSS after a warm-up (20 connections opened, used and closed), over N;
* fan-out time of each broadcast: from just before the REST ``POST /api/hubs/{hub}/:send``
  until every one of the N clients has received the invocation (client-side parsing
  included), with the REST call's own latency.

The soft ``RLIMIT_NOFILE`` is raised to N plus a margin, up to the hard limit (the emulator
inherits it); when the hard limit is too low for N, N is lowered to what fits and the script
says so. Loopback only; every wait is bounded, and ``--timeout`` bounds the whole run.

    python bench/idle_connections.py [--connections 10000] [--broadcasts 3]
                                     [--concurrency 200] [--timeout 600]

Targets: at most 20 KiB per idle connection, and the full fan-out under 1 s at 10,000.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from _support import ROOT, free_port
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from signalr_protocol.connection_string import EMULATOR_ACCESS_KEY
from signalr_protocol.tokens import mint_token

HUB = "bench"
RS = "\x1e"
HANDSHAKE = json.dumps({"protocol": "json", "version": 1}) + RS
PING = json.dumps({"type": 6}) + RS
TARGET = "idleBench"
FD_MARGIN = 256  # descriptors besides the connections: logs, the HTTP pool, the runtime
PING_EVERY = 10.0  # s; the emulator drops a client silent for 30 s (its client timeout)


def rss_kib(pid: int) -> int:
    """Resident set size of process ``pid``, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def raise_file_limit(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards ``wanted``; return the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def pinned(core: int, argv: list[str]) -> list[str]:
    """``argv`` run on one core when ``taskset`` exists and the machine has two cores or more."""
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(core), *argv]
    return argv


class Client(asyncio.Protocol):
    """One SignalR client over a WebSocket: handshake, pings, and receipt of the broadcast."""

    def __init__(self, uri: str, bench: Bench) -> None:
        self.ws = ClientProtocol(parse_uri(uri))
        self.bench = bench
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        self.closing = False

    def _flush(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            data = self.ws.data_to_send()
            if data:
                self.transport.write(b"".join(data))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.ws.send_request(self.ws.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if isinstance(event, Response):
                if self.ws.handshake_exc is not None:
                    self._fail(self.ws.handshake_exc)
                    return
                self.ws.send_text(HANDSHAKE.encode())
            elif isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self._records(bytes(event.data).decode())
        self._flush()

    def _records(self, text: str) -> None:
        for record in text.split(RS):
            if not record:
                continue
            if not self.ready.done():
                message = json.loads(record)
                if message.get("error"):
                    self._fail(RuntimeError(f"handshake refused: {message['error']}"))
                else:
                    self.ready.set_result(None)
            elif TARGET in record and json.loads(record).get("target") == TARGET:
                self.bench.received(self)

    def ping(self) -> None:
        if not self.closed and self.ws.state.name == "OPEN":
            self.ws.send_text(PING.encode())
            self._flush()

    def _fail(self, exc: BaseException) -> None:
        if not self.ready.done():
            self.ready.set_exception(exc)
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(exc or ConnectionError("closed before the handshake"))
        elif not self.closing:
            self.bench.lost += 1

    def close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()


class Bench:
    """The clients of one run and the receipts of the broadcast in flight."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.clients: list[Client] = []
        self.lost = 0
        self.expected: set[Client] = set()
        self.last_receipt = 0.0
        self.all_received: asyncio.Event = asyncio.Event()
        audience = f"http://127.0.0.1/client/?hub={HUB}"
        self.client_token = mint_token(EMULATOR_ACCESS_KEY, audience)
        self.send_path = f"/api/hubs/{HUB}/:send"
        self.rest_token = mint_token(EMULATOR_ACCESS_KEY, f"http://127.0.0.1{self.send_path}")

    def received(self, client: Client) -> None:
        if client in self.expected:
            self.expected.discard(client)
            self.last_receipt = time.perf_counter()
            if not self.expected:
                self.all_received.set()

    async def connect_one(self, http: aiohttp.ClientSession) -> Client:
        base = f"http://127.0.0.1:{self.port}"
        async with http.post(
            f"{base}/client/negotiate?hub={HUB}&negotiateVersion=1",
            headers={"Authorization": f"Bearer {self.client_token}"},
        ) as answer:
            answer.raise_for_status()
            negotiated = await answer.json()
        uri = (
            f"ws://127.0.0.1:{self.port}/client/?hub={HUB}"
            f"&id={negotiated['connectionToken']}&access_token={self.client_token}"
        )
        loop = asyncio.get_running_loop()
        _, client = await loop.create_connection(lambda: Client(uri, self), "127.0.0.1", self.port)
        try:
            await asyncio.wait_for(client.ready, 30)
        except BaseException:
            client.close()
            raise
        return client

    async def connect(self, http: aiohttp.ClientSession, count: int, concurrency: int) -> None:
        """Open ``count`` clients, at most ``concurrency`` handshakes in flight."""
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with gate:
                self.clients.append(await self.connect_one(http))

        async with asyncio.TaskGroup() as group:
            for _ in range(count):
                group.create_task(one())

    async def broadcast(self, http: aiohttp.ClientSession, within: float) -> tuple[float, float]:
        """Send one invocation to the hub; returns (fan-out seconds, REST call seconds)."""
        self.expected = {client for client in self.clients if not client.closed}
        self.all_received = asyncio.Event()
        body = {"target": TARGET, "arguments": ["hello, idle clients", {"n": 1}]}
        start = time.perf_counter()
        async with http.post(
            f"http://127.0.0.1:{self.port}{self.send_path}",
            json=body,
            headers={"Authorization": f"Bearer {self.rest_token}"},
        ) as answer:
            rest = time.perf_counter() - start
            if answer.status != 202:
                raise RuntimeError(f"broadcast answered {answer.status}: {await answer.text()}")
        await asyncio.wait_for(self.all_received.wait(), within)
        return self.last_receipt - start, rest

    async def keep_alive(self) -> None:
        while True:
            await asyncio.sleep(PING_EVERY)
            for client in self.clients:
                client.ping()

    def close_all(self) -> None:
        for client in self.clients:
            client.close()
        self.clients.clear()


async def wait_port(port: int, server: subprocess.Popen[bytes], within: float = 30.0) -> None:
    """Wait until the emulator accepts connections."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the emulator exited with status {server.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError(f"the emulator did not listen on {port} within {within:.0f} s")


async def settle_rss(pid: int, seconds: float = 2.0) -> int:
    """The RSS once it stops moving (or after ``seconds``)."""
    previous = rss_kib(pid)
    for _ in range(int(seconds / 0.25)):
        await asyncio.sleep(0.25)
        current = rss_kib(pid)
        if abs(current - previous) < 64:
            return current
        previous = current
    return previous


async def run(count: int, broadcasts: int, concurrency: int) -> dict[str, Any]:
    port = free_port()
    argv = [sys.executable, "-m", "emulator", "--port", str(port), "--log-level", "warning"]
    env = {**os.environ, "EMULATOR_UPSTREAM_URL": ""}  # no upstream webhook here
    server = subprocess.Popen(  # noqa: ASYNC220 - started once, outside any timing
        pinned(0, argv), cwd=str(ROOT), stdout=subprocess.DEVNULL, env=env
    )
    bench = Bench(port)
    connector = aiohttp.TCPConnector(limit=concurrency)
    try:
        async with aiohttp.ClientSession(connector=connector) as http:
            await wait_port(port, server)
            # Warm-up: first connections and the first broadcast allocate lazily.
            await bench.connect(http, 20, concurrency)
            await bench.broadcast(http, 10)
            bench.close_all()
            await asyncio.sleep(0.5)
            rss_base = await settle_rss(server.pid)

            pinger = asyncio.create_task(bench.keep_alive())
            started = time.perf_counter()
            await bench.connect(http, count, concurrency)
            connect_seconds = time.perf_counter() - started
            rss_idle = await settle_rss(server.pid, 5.0)
            fan_outs: list[tuple[float, float]] = []
            for _ in range(broadcasts):
                fan_outs.append(await bench.broadcast(http, 30))
                await asyncio.sleep(0.5)
            rss_after = rss_kib(server.pid)
            pinger.cancel()
            lost = bench.lost
            bench.close_all()
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return {
        "connections": count,
        "connect_seconds": connect_seconds,
        "rss_base_kib": rss_base,
        "rss_idle_kib": rss_idle,
        "rss_after_broadcasts_kib": rss_after,
        "kib_per_connection": (rss_idle - rss_base) / count,
        "fan_out_seconds": [f for f, _ in fan_outs],
        "rest_seconds": [r for _, r in fan_outs],
        "lost": lost,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--broadcasts", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=200, help="handshakes in flight")
    parser.add_argument("--timeout", type=float, default=600.0, help="bound on the whole run (s)")
    args = parser.parse_args()
    if not 1 <= args.connections <= 100_000:
        parser.error("--connections must be between 1 and 100000")

    wanted = args.connections + FD_MARGIN
    limit = raise_file_limit(wanted)
    count = args.connections
    if limit < wanted:
        count = max(1, limit - FD_MARGIN)
        print(f"file limit {limit}: {count} connections instead of {args.connections}")
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})

    result = asyncio.run(
        asyncio.wait_for(run(count, args.broadcasts, args.concurrency), args.timeout)
    )
    fan_outs = result["fan_out_seconds"]
    print(json.dumps(result, indent=1))
    print(
        f"{count} idle connections opened in {result['connect_seconds']:.1f} s; emulator RSS "
        f"{result['rss_base_kib'] / 1024:.1f} -> {result['rss_idle_kib'] / 1024:.1f} MiB: "
        f"{result['kib_per_connection']:.1f} KiB per idle connection (target <= 20)"
    )
    print(
        "fan-out to every connection: "
        + ", ".join(f"{f * 1000:.0f} ms" for f in fan_outs)
        + f" (median {statistics.median(fan_outs) * 1000:.0f} ms; target < 1000 at 10,000); "
        f"REST call {statistics.median(result['rest_seconds']) * 1000:.0f} ms; "
        f"connections lost: {result['lost']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
