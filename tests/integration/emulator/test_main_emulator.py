"""``python -m emulator``: prints a working connection string, logs ids but never tokens."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from app.protocol.connection_string import parse_connection_string
from app.protocol.tokens import mint_client_token, mint_token

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]


async def test_main_prints_connection_string_and_redacts_tokens(tmp_path: Path) -> None:
    """The printed string reaches the emulator; logs name connections but not tokens."""
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"UpstreamSettings": {"Templates": []}}))
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "emulator",
        "--port",
        "0",
        "--config",
        str(settings),
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(15):
            while b"Endpoint=" not in (line := await proc.stdout.readline()):
                assert line, "the emulator exited"
        endpoint = parse_connection_string(line.decode().strip())
        token = mint_client_token(endpoint, "chat", user_id="log-user")
        ws_url = endpoint.client_url("chat").replace("http://", "ws://")
        async with httpx.AsyncClient() as http:
            async with asyncio.timeout(15):
                while True:
                    try:
                        health = await http.head(
                            f"{endpoint.endpoint}/api/health",
                            headers={
                                "Authorization": "Bearer "
                                + mint_token(
                                    endpoint.require_access_key(),
                                    endpoint.audience_base + "api/health",
                                )
                            },
                        )
                        break
                    except httpx.ConnectError:
                        await asyncio.sleep(0.05)
            assert health.status_code == 200
            async with connect(f"{ws_url}&access_token={token}") as ws:
                await ws.send('{"protocol":"json","version":1}\x1e')
                assert (await ws.recv()).startswith("{}")
    finally:
        proc.terminate()
        _, stderr = await asyncio.wait_for(proc.communicate(), 15)
    log = stderr.decode()
    assert "Connected: connection" in log and "log-user" in log
    assert "Disconnected: connection" in log
    assert "REST HEAD /api/health -> 200" in log
    assert token not in log
    assert "access_token=***" in log


async def test_main_refuses_a_broken_config(tmp_path: Path) -> None:
    """A settings.json that is not valid JSON stops start-up with a clear message."""
    settings = tmp_path / "settings.json"
    settings.write_text("{nope")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "emulator",
        "--port",
        "0",
        "--config",
        str(settings),
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 2
    assert "settings.json" in stderr.decode() and "JSON" in stderr.decode()
