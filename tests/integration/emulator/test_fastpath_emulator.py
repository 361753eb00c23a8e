"""The WebSocket fast path: frames built once, eager sends, and the fallback under load."""

from __future__ import annotations

import asyncio
import struct

import pytest

from emulator.eager import start_eagerly
from emulator.fastpath import ws_frame
from tests.support.emulator import RunningEmulator
from tests.support.emulator_kit import Rest, raw_client

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 70000])
def test_ws_frame_headers(size: int) -> None:
    """Frames use the 7-bit, 16-bit or 64-bit length form at the RFC 6455 boundaries."""
    payload = b"x" * size
    frame = ws_frame(payload, binary=size % 2 == 0)
    assert frame[0] == (0x82 if size % 2 == 0 else 0x81)
    if size < 126:
        assert frame[1] == size and frame[2:] == payload
    elif size < 65536:
        assert frame[1] == 126 and struct.unpack("!H", frame[2:4])[0] == size
    else:
        assert frame[1] == 127 and struct.unpack("!Q", frame[2:10])[0] == size
    assert frame.endswith(payload)


async def test_start_eagerly_runs_synchronously_until_it_must_wait() -> None:
    """A coroutine that never waits completes inline; one that waits finishes in a task."""
    steps: list[str] = []

    async def immediate() -> None:
        steps.append("immediate")

    assert start_eagerly(immediate()) is None
    assert steps == ["immediate"]

    gate = asyncio.get_running_loop().create_future()

    async def waiting() -> None:
        steps.append("before")
        steps.append(await gate)

    task = start_eagerly(waiting())
    assert task is not None and steps[-1] == "before"
    gate.set_result("after")
    await task
    assert steps[-1] == "after"


async def test_start_eagerly_propagates_errors_and_cancellation() -> None:
    """Errors before the first wait raise at once; later errors and cancels reach the task."""

    async def fails_now() -> None:
        raise ValueError("now")

    with pytest.raises(ValueError, match="now"):
        start_eagerly(fails_now())

    gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    cleaned = asyncio.Event()

    async def fails_later() -> None:
        try:
            await gate
        finally:
            cleaned.set()

    task = start_eagerly(fails_later())
    assert task is not None
    gate.set_exception(KeyError("later"))
    with pytest.raises(KeyError):
        await task
    assert cleaned.is_set()

    cleaned.clear()
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def waits_forever() -> None:
        try:
            await never
        finally:
            cleaned.set()

    task = start_eagerly(waits_forever())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned.is_set()


async def test_websocket_connections_use_the_fast_path(
    emu: RunningEmulator, rest: Rest, hub: str
) -> None:
    """Under uvicorn's websockets-sansio server, sends bypass ASGI and arrive intact."""
    async with raw_client(emu, hub, user_id="fast") as client:
        conn = emu.app.state.registry.hub(hub).connection(client.connection_id or "")
        assert conn is not None and conn.fast_path
        big = "é" * 40_000  # over 65,535 bytes of UTF-8: the 64-bit length form
        await rest.send(f"/api/hubs/{hub}/:send", "big", big)
        await rest.send(f"/api/hubs/{hub}/:send", "small", 1)
        assert (await client.receive())["arguments"] == [big]
        assert (await client.receive())["arguments"] == [1]
