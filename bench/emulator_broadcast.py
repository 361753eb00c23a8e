"""REST broadcast fan-out: the emulator against a bare ``websockets.broadcast()`` server.

Both servers run as separate processes pinned to core 0; N official JS clients (one Node
process) and the load driver are pinned to core 1. Each round, for each server:

1. start it, note its RSS; connect N clients (WebSockets, skipNegotiation); note RSS again
   → memory per idle connection;
2. send M messages, ``--lanes`` requests in flight: to the emulator as REST
   ``POST /api/hubs/bench/:send`` calls, to the bare server as control-socket messages
   that each trigger one ``websockets.broadcast()`` of the same pre-encoded frame;
3. wait until every client received every message → deliveries/s, and server CPU time
   per delivery (from /proc).

The ratio printed is emulator / bare for deliveries per second (target >= 0.6) and for CPU
per delivery (lower is better). The JS clients on one core usually cap deliveries/s for
both servers, so CPU per delivery is the sharper comparison.

    python bench/emulator_broadcast.py [--clients 100,1000] [--messages 200] [--rounds 1]
                                       [--protocol json|messagepack] [--lanes 4] [--trace-page]

``--trace-page`` adds a third server, ``emulator+page``: the same emulator with a live trace
page open during the run (a subscriber reading ``GET /trace/events`` and discarding it), to
show what watching costs; ``emulator`` alone is the no-page figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from signalr_protocol.codec import get_codec  # noqa: E402
from signalr_protocol.connection_string import EMULATOR_ACCESS_KEY  # noqa: E402
from signalr_protocol.messages import InvocationMessage  # noqa: E402
from signalr_protocol.tokens import mint_token  # noqa: E402

RECEIVERS = ROOT / "tests" / "node" / "broadcast_receivers.mjs"
HUB = "bench"
ARGUMENTS = ("hello from the benchmark", {"n": 12345, "ok": True})
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pinned(core: int, argv: list[str]) -> list[str]:
    return ["taskset", "-c", str(core), *argv] if shutil.which("taskset") else argv


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# --------------------------------------------------------------------------- bare server


async def serve_bare(port: int, protocol: str) -> None:
    """The baseline: hub handshake, then websockets.broadcast() of a pre-encoded frame."""
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    codec = get_codec(protocol)
    encoded = codec.encode(InvocationMessage(target="newMessage", arguments=ARGUMENTS))
    frame: bytes | str = encoded if codec.binary else encoded.decode()
    clients: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        if ws.request is not None and ws.request.path.startswith("/control"):
            async for _ in ws:
                broadcast(clients, frame)
                await ws.send("ok")
            return
        await ws.recv()  # the handshake (a ping may follow; ignored)
        await ws.send("{}\x1e")
        clients.add(ws)
        try:
            async for _ in ws:
                pass
        finally:
            clients.discard(ws)

    async def keep_alive() -> None:
        from signalr_protocol.messages import PingMessage

        data = codec.encode(PingMessage())
        payload: bytes | str = data if codec.binary else data.decode()
        while True:
            await asyncio.sleep(10)
            broadcast(clients, payload)

    async with serve(handler, "127.0.0.1", port, compression=None, max_queue=64):
        print("ready", flush=True)
        await keep_alive()


# --------------------------------------------------------------------------- driver


class Receivers:
    """The Node process holding N client connections."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, url: str, count: int, protocol: str, token: str) -> Receivers:
        argv = pinned(1, ["node", str(RECEIVERS), url, str(count), protocol, token])
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=str(ROOT), stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self = cls(proc)
        await self._line(120)
        return self

    async def _line(self, seconds: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), seconds)
        if not line:
            raise RuntimeError("receivers exited")
        result: dict[str, Any] = json.loads(line)
        return result

    async def expect(self, total: int) -> None:
        """Wait until the clients received ``total`` messages in all."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"expect {total}\n".encode())
        await self.proc.stdin.drain()
        await self._line(300)

    async def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 30)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


async def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(200):
        if proc.poll() is not None:
            raise RuntimeError("server exited")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            await writer.wait_closed()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("server did not start")


async def run_one(
    kind: str, clients: int, messages: int, protocol: str, lanes: int
) -> dict[str, float]:
    from websockets.asyncio.client import connect

    port = free_port()
    page = kind == "emulator+page"
    if page:
        kind = "emulator"
    if kind == "emulator":
        argv = [sys.executable, "-m", "emulator", "--port", str(port), "--log-level", "warning"]
    else:
        argv = [sys.executable, __file__, "--serve-bare", str(port), "--protocol", protocol]
    env = {**os.environ, "EMULATOR_UPSTREAM_URL": ""}  # no upstream webhook in this benchmark
    server = subprocess.Popen(  # noqa: ASYNC220 - started once per round, outside timing
        pinned(0, argv), cwd=str(ROOT), stdout=subprocess.DEVNULL, env=env
    )
    try:
        await wait_port(port, server)
        await asyncio.sleep(0.3)
        rss_before = rss_kib(server.pid)
        token = mint_token(EMULATOR_ACCESS_KEY, f"http://127.0.0.1/client/?hub={HUB}")
        receivers = await Receivers.start(
            f"http://127.0.0.1:{port}/client/?hub={HUB}", clients, protocol, token
        )
        watcher: asyncio.Task[int] | None = None
        try:
            if page:
                watcher = asyncio.create_task(watch_trace(port))
            await asyncio.sleep(1.0)
            rss_idle = rss_kib(server.pid)
            path = f"/api/hubs/{HUB}/:send"
            rest_token = mint_token(EMULATOR_ACCESS_KEY, f"http://127.0.0.1{path}")
            body = json.dumps({"target": "newMessage", "arguments": list(ARGUMENTS)})
            expected = 0

            request = (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                f"Authorization: Bearer {rest_token}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n{body}"
            ).encode()

            async def rest_lane(count: int) -> None:
                # A minimal keep-alive HTTP/1.1 client: the driver shares a core with the
                # JS clients, and httpx would cost more CPU than the server's work.
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                try:
                    for _ in range(count):
                        writer.write(request)
                        head = await reader.readuntil(b"\r\n\r\n")
                        assert head.startswith(b"HTTP/1.1 202"), head
                        length = 0
                        for line in head.split(b"\r\n"):
                            if line.lower().startswith(b"content-length:"):
                                length = int(line.split(b":")[1])
                        if length:
                            await reader.readexactly(length)
                finally:
                    writer.close()
                    await writer.wait_closed()

            async def bare_lane(count: int) -> None:
                async with connect(f"ws://127.0.0.1:{port}/control", compression=None) as ws:
                    for _ in range(count):
                        await ws.send("go")
                        await ws.recv()

            lane = rest_lane if kind == "emulator" else bare_lane

            async def burst(total: int) -> None:
                share = [total // lanes + (1 if i < total % lanes else 0) for i in range(lanes)]
                await asyncio.gather(*(lane(n) for n in share if n))

            warmup = max(10, messages // 10)
            await burst(warmup)
            expected += warmup * clients
            await receivers.expect(expected)

            cpu0 = cpu_seconds(server.pid)
            t0 = time.perf_counter()
            await burst(messages)
            expected += messages * clients
            await receivers.expect(expected)
            elapsed = time.perf_counter() - t0
            cpu = cpu_seconds(server.pid) - cpu0
        finally:
            if watcher is not None:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
            await receivers.stop()
    finally:
        server.terminate()
        server.wait(10)
    deliveries = messages * clients
    return {
        "deliveries_per_s": deliveries / elapsed,
        "cpu_us_per_delivery": cpu / deliveries * 1e6,
        "kib_per_idle_conn": (rss_idle - rss_before) / clients,
    }


async def watch_trace(port: int) -> int:
    """A trace page's event stream: read ``GET /trace/events`` and discard it; bytes read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    total = 0
    try:
        writer.write(b"GET /trace/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        while chunk := await reader.read(65536):
            total += len(chunk)
    finally:
        writer.close()
    return total


async def main(args: argparse.Namespace) -> None:
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})  # the driver shares core 1 with the JS clients
    counts = [int(c) for c in args.clients.split(",")]
    print(
        f"protocol={args.protocol} messages={args.messages} lanes={args.lanes} rounds={args.rounds}"
    )
    for clients in counts:
        kinds = ("bare", "emulator", "emulator+page") if args.trace_page else ("bare", "emulator")
        results: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
        for _ in range(args.rounds):
            for kind in kinds:
                results[kind].append(
                    await run_one(kind, clients, args.messages, args.protocol, args.lanes)
                )
        median = {
            kind: {key: statistics.median(r[key] for r in rows) for key in rows[0]}
            for kind, rows in results.items()
        }
        print(f"\n{clients} clients ({clients * args.messages} deliveries per round)")
        print(f"{'server':<10}{'deliveries/s':>14}{'CPU us/delivery':>18}{'KiB/idle conn':>16}")
        for kind in kinds:
            m = median[kind]
            print(
                f"{kind:<10}{m['deliveries_per_s']:>14,.0f}{m['cpu_us_per_delivery']:>18.2f}"
                f"{m['kib_per_idle_conn']:>16.1f}"
            )
        ratio = median["emulator"]["deliveries_per_s"] / median["bare"]["deliveries_per_s"]
        cpu = {kind: median[kind]["cpu_us_per_delivery"] for kind in median}
        # A run too short for the clock's resolution measures no CPU at all.
        cpu_ratio = f"{cpu['emulator'] / cpu['bare']:.2f}x" if cpu["bare"] else "n/a (too short)"
        print(
            f"ratio emulator/bare: deliveries/s {ratio:.2f} (target >= 0.6), "
            f"CPU per delivery {cpu_ratio}"
        )
        if args.trace_page:
            watched = median["emulator+page"]
            print(
                "trace page open / none: deliveries/s "
                f"{watched['deliveries_per_s'] / median['emulator']['deliveries_per_s']:.3f}, "
                f"CPU per delivery {watched['cpu_us_per_delivery'] / (cpu['emulator'] or 1):.3f}x"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", default="100", help="comma-separated client counts")
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--protocol", choices=["json", "messagepack"], default="json")
    parser.add_argument("--lanes", type=int, default=4, help="requests in flight")
    parser.add_argument(
        "--trace-page", action="store_true", help="also run the emulator with a trace page open"
    )
    parser.add_argument("--serve-bare", type=int, metavar="PORT", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve_bare:
        asyncio.run(serve_bare(arguments.serve_bare, arguments.protocol))
    else:
        asyncio.run(main(arguments))
