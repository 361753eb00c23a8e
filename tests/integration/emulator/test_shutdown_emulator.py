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
from contextlib import AsyncExitStack
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

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


async def _spawn(port: int) -> asyncio.subprocess.Process:
    """``python -m emulator --port <port>`` without an upstream."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "emulator",
        "--port",
        str(port),
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "EMULATOR_UPSTREAM_URL": ""},
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
            print("STOP", stopped)
            assert stopped < STOP_BOUND, f"SIGTERM took {stopped:.2f} s"

            second = await _spawn(port)
            await _printed_endpoint(second)
            async with asyncio.timeout(RETURN_BOUND + 2):
                for client in clients:
                    await client.reconnected.wait()
            back = time.perf_counter() - started
            print("BACK", back)
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
