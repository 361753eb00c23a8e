"""Outbound REST throughput: SignalRService against a raw client of the same library.

A bare sink (a raw asyncio HTTP/1.1 server answering ``202`` to everything, in another
process) stands in for the service, so the figures measure the client side only. For
concurrency 1, 8 and 32 it prints requests per second of:

* ``service``: :meth:`SignalRService.send_to_all` (validation, token cache, JSON body,
  retry loop) through its pooled httpx client with the aiohttp transport;
* ``raw``: the same httpx client and transport, same pool size, posting the same request
  with a precomputed token (``client.post``) - the baseline the ratio is taken against;
* ``httpx``: a plain ``httpx.AsyncClient`` (httpcore pool), and ``aiohttp``: a plain
  ``aiohttp.ClientSession``, for context.

Run: ``python bench/outbound_throughput.py [--requests 3000] [--rounds 5]``. The best of
the rounds is reported; the exit status is 1 when a service/raw ratio is below 0.9. The
``cpu ratio`` column compares requests per CPU second of the client process: on a busy
machine the wall-clock ratio wanders, the CPU one does not.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import aiohttp
import httpx

from app.services.signalr import MAX_CONNECTIONS, AiohttpTransport, SignalRService
from app.settings import Settings
from signalr_protocol.connection_string import EMULATOR_ACCESS_KEY

CONCURRENCY = (1, 8, 32)
TARGET_RATIO = 0.9

SINK = r"""
import asyncio, socket, sys
RESPONSE = b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n"
class Sink(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""
    def data_received(self, data):
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15:].split(b"\r\n", 1)[0])
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length:]
            self.transport.write(RESPONSE)
async def main():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = await asyncio.get_running_loop().create_server(Sink, sock=sock)
    print(sock.getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    server.close()
asyncio.run(main())
"""

Request = Callable[[], Awaitable[None]]


async def measure(request: Request, concurrency: int, count: int) -> tuple[float, float]:
    """Requests per second, and per CPU second of this process, of ``count`` calls made
    by ``concurrency`` workers. The CPU figure is steady on a busy machine."""
    remaining = count

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await request()

    started = time.perf_counter()
    cpu_started = time.process_time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu = time.process_time() - cpu_started
    return count / (time.perf_counter() - started), count / max(cpu, 1e-9)


async def best_of(
    requests: list[Request], concurrency: int, count: int, rounds: int
) -> list[tuple[float, float]]:
    """Warm up, then the best of ``rounds`` measurements of each request kind.

    The kinds take turns within each round, so a noisy moment on a shared machine hits
    them alike instead of one kind's whole series.
    """
    for request in requests:
        await measure(request, concurrency, min(count, 200))
    best = [(0.0, 0.0)] * len(requests)
    for _ in range(rounds):
        for index, request in enumerate(requests):
            wall, cpu = await measure(request, concurrency, count)
            best[index] = (max(best[index][0], wall), max(best[index][1], cpu))
    return best


async def run(port: int, count: int, rounds: int) -> bool:
    base = f"http://127.0.0.1:{port}"
    settings = Settings(
        connection_string=(
            f"Endpoint=http://127.0.0.1;Port={port};AccessKey={EMULATOR_ACCESS_KEY};Version=1.0;"
        )
    )
    arguments = [{"sender": "bench", "text": "hello"}]
    ok = True
    print(f"{count} requests per measurement, best of {rounds}; pool {MAX_CONNECTIONS}")
    print(
        f"{'concurrency':>11} {'service':>9} {'raw':>9} {'ratio':>6} {'cpu ratio':>9} "
        f"{'httpx':>9} {'aiohttp':>9}"
    )
    async with SignalRService.open(settings) as service:
        # The raw request the service makes, with a token minted the same way.
        path = "/api/hubs/chat/:send?api-version=" + settings.api_version
        token, _ = service._token_entry(0, path)
        url = base + path
        body = b'{"target":"newMessage","arguments":[{"sender":"bench","text":"hello"}]}'
        headers = {
            "authorization": f"Bearer {token}",
            "content-type": "application/json; charset=utf-8",
        }
        limits = httpx.Limits(
            max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS
        )
        async with (
            httpx.AsyncClient(transport=AiohttpTransport(max_connections=MAX_CONNECTIONS)) as raw,
            httpx.AsyncClient(limits=limits) as plain,
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS)) as aio,
        ):

            async def via_service() -> None:
                await service.send_to_all("chat", "newMessage", arguments)

            async def via_raw() -> None:
                response = await raw.post(url, content=body, headers=headers)
                assert response.status_code == 202

            async def via_plain() -> None:
                response = await plain.post(url, content=body, headers=headers)
                assert response.status_code == 202

            async def via_aiohttp() -> None:
                async with aio.post(url, data=body, headers=headers) as response:
                    await response.read()
                    assert response.status == 202

            for concurrency in CONCURRENCY:
                raw_rate, service_rate, aiohttp_rate = await best_of(
                    [via_raw, via_service, via_aiohttp], concurrency, count, rounds
                )
                # httpx's own pool is slow: fewer requests keep the run short.
                ((plain_rate, _),) = await best_of(
                    [via_plain], concurrency, max(count // 4, 200), 1
                )
                ratio = service_rate[0] / raw_rate[0]
                cpu_ratio = service_rate[1] / raw_rate[1]
                ok = ok and ratio >= TARGET_RATIO
                print(
                    f"{concurrency:>11} {service_rate[0]:>9.0f} {raw_rate[0]:>9.0f} "
                    f"{ratio:>6.2f} {cpu_ratio:>9.2f} {plain_rate:>9.0f} {aiohttp_rate[0]:>9.0f}"
                )
    print(
        f"requests/s (wall clock); ratio = service/raw, cpu ratio = the same per CPU second "
        f"of the client process. Target ratio >= {TARGET_RATIO}: {'met' if ok else 'NOT met'}"
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sink = subprocess.Popen(  # the sink runs in its own process (its own core)
        [sys.executable, "-c", SINK], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert sink.stdout is not None
        port = int(sink.stdout.readline())
        ok = asyncio.run(run(port, args.requests, args.rounds))
    finally:
        assert sink.stdin is not None
        sink.stdin.close()
        sink.wait(timeout=10)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
