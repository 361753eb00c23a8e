"""An accepted WebSocket keeps nothing of its handshake: idle connections stay small."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support.emulator import running_emulator

pytestmark = pytest.mark.anyio


async def test_accepted_websockets_drop_their_handshake_and_share_the_unused_deque() -> None:
    """After accept, uvicorn's protocol holds no handshake request/response or header list,
    receive queues share one empty producers' deque, and messages still flow both ways."""
    async with running_emulator() as emu:
        token = emu.client_token("chat")
        url = emu.client_url("chat").replace("http://", "ws://") + f"&access_token={token}"
        async with connect(url) as first, connect(url) as second:
            for ws in (first, second):
                await ws.send('{"protocol":"json","version":1}\x1e')
                assert str(await ws.recv()).startswith("{}")
            # White-box: what uvicorn's protocol object keeps for each connection.
            directs = [conn._direct for conn in emu.app.state.registry.connections()]
            protocols: list[Any] = [d._protocol for d in directs if d is not None]
            assert len(protocols) == 2
            for protocol in protocols:
                assert protocol.request is None and protocol.response is None
                assert protocol.scope["headers"] == []
            assert protocols[0].queue._putters is protocols[1].queue._putters

            path = "/api/hubs/chat/:send"
            async with httpx.AsyncClient() as http:
                sent = await http.post(
                    emu.base_url + path,
                    json={"target": "t", "arguments": ["still here"]},
                    headers=emu.rest_headers(path),
                )
            assert sent.status_code == 202
            for ws in (first, second):
                assert "still here" in str(await ws.recv())
            await first.send('{"type":6}\x1e')  # a ping still reads
            await first.send('{"type":7}\x1e')  # and a Close ends the connection
            await first.wait_closed()
