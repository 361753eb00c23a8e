"""Hostile handshake requests: a handshake error naming the problem, never a traceback."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.support.emulator import running_emulator

pytestmark = pytest.mark.anyio

RS = "\x1e"


@pytest.mark.parametrize(
    ("request_text", "reason"),
    [
        ('{"protocol":"\\ud800","version":1}', "lone UTF-16 surrogate"),
        ('{"protocol":"json","version":' + "9" * 5000 + "}", "4,300 digits"),
        ('{"protocol":"json","version":1,"x":[NaN]}', "NaN"),
    ],
    ids=["lone surrogate", "5,000-digit version", "NaN"],
)
async def test_a_handshake_outside_the_json_limits_is_refused_cleanly(
    request_text: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A handshake whose protocol is "\\ud800" (which crashed the reply with a
    UnicodeEncodeError and logged a traceback) or that breaks another JSON limit gets a
    handshake error saying which limit, and the log has no traceback."""
    caplog.set_level(logging.INFO)
    async with running_emulator() as emu:
        token = emu.client_token("chat")
        url = emu.client_url("chat").replace("http://", "ws://") + f"&access_token={token}"
        async with connect(url) as ws:
            await ws.send(request_text + RS)
            async with asyncio.timeout(5):
                answer = await ws.recv()
            assert isinstance(answer, str) and answer.endswith(RS)
            error = json.loads(answer[:-1])["error"]
            assert error.startswith("The handshake request is not valid JSON: ")
            assert reason in error
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(5):
                    await ws.recv()
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info]
    assert tracebacks == []
