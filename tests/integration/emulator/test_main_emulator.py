"""``python -m emulator``: prints a working connection string, logs ids but never tokens."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from signalr_protocol.connection_string import ServiceEndpoint, parse_connection_string
from signalr_protocol.tokens import mint_client_token, mint_token

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    """``python -m emulator --port 0 *args`` with stdout and stderr piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "emulator",
        "--port",
        "0",
        *args,
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _printed_endpoint(proc: asyncio.subprocess.Process) -> ServiceEndpoint:
    """The endpoint of the connection string the emulator prints on start."""
    assert proc.stdout is not None
    async with asyncio.timeout(15):
        while b"Endpoint=" not in (line := await proc.stdout.readline()):
            assert line, "the emulator exited"
    return parse_connection_string(line.decode().strip())


async def test_main_prints_connection_string_and_redacts_tokens(tmp_path: Path) -> None:
    """The printed string reaches the emulator; logs name connections but not tokens."""
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"UpstreamSettings": {"Templates": []}}))
    proc = await _spawn("--config", str(settings))
    try:
        endpoint = await _printed_endpoint(proc)
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
                assert str(await ws.recv()).startswith("{}")
    finally:
        proc.terminate()
        _, stderr = await asyncio.wait_for(proc.communicate(), 15)
    log = stderr.decode()
    assert "Connected: connection" in log and "log-user" in log
    assert "Disconnected: connection" in log
    assert "REST HEAD /api/health -> 200" in log
    assert token not in log
    assert "access_token=***" in log


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ("{nope", ("settings.json", "not valid JSON", "line 1")),
        (None, ("settings.json", "Cannot read")),
        (
            json.dumps({"UpstreamSettings": {"Templates": [{"UrlTemplate": "/relative"}]}}),
            ("Templates[0].UrlTemplate", "absolute"),
        ),
    ],
    ids=["broken-json", "missing-file", "relative-url"],
)
async def test_main_refuses_a_bad_config(
    tmp_path: Path, content: str | None, needles: tuple[str, ...]
) -> None:
    """A settings.json that is broken, absent or invalid stops start-up with a clear message."""
    settings = tmp_path / "settings.json"
    if content is not None:
        settings.write_text(content)
    proc = await _spawn("--config", str(settings))
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    text = stderr.decode()
    assert text.startswith("emulator: ") and "Traceback" not in text
    for needle in needles:
        assert needle in text
    assert b"Endpoint=" not in stdout


async def test_stopping_closes_clients_with_reconnect_allowed() -> None:
    """On SIGTERM clients get a Close allowing reconnect and streams end without a wait."""
    proc = await _spawn()
    try:
        endpoint = await _printed_endpoint(proc)
        token = mint_client_token(endpoint, "chat")
        client_url = endpoint.client_url("chat")
        bearer = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(timeout=15) as http:
            async with asyncio.timeout(15):
                while True:
                    try:
                        negotiated = await http.post(
                            client_url.replace("/client/?", "/client/negotiate?"), headers=bearer
                        )
                        break
                    except httpx.ConnectError:
                        await asyncio.sleep(0.05)
            sse_url = f"{client_url}&id={negotiated.json()['connectionId']}"
            async with (
                http.stream("GET", sse_url, headers={**bearer, "Accept": "text/event-stream"}),
                connect(client_url.replace("http://", "ws://"), additional_headers=bearer) as ws,
            ):
                await ws.send('{"protocol":"json","version":1}\x1e')
                assert str(await ws.recv()).startswith("{}")
                proc.terminate()
                frame = await asyncio.wait_for(ws.recv(), 10)
                close = json.loads(str(frame).split("\x1e")[0])
                assert close == {
                    "type": 7,
                    "error": "The server is shutting down.",
                    "allowReconnect": True,
                }
    finally:
        if proc.returncode is None:
            proc.terminate()
        _, stderr = await asyncio.wait_for(proc.communicate(), 15)
    assert "timeout graceful shutdown exceeded" not in stderr.decode()


async def test_serve_runs_in_the_callers_loop_and_stops_gracefully_when_cancelled() -> None:
    """serve() runs in the caller's loop; cancelling it closes clients with reconnect allowed."""
    from emulator.runner import bind_socket, serve
    from emulator.settings import EmulatorSettings

    sock = bind_socket("127.0.0.1", 0)
    settings = EmulatorSettings(port=sock.getsockname()[1], upstream_url="")
    endpoint = parse_connection_string(settings.connection_string())
    task = asyncio.create_task(serve(settings, sock=sock))
    try:
        token = mint_client_token(endpoint, "chat")
        ws_url = endpoint.client_url("chat").replace("http://", "ws://")
        async with asyncio.timeout(15):
            while True:
                try:
                    ws = await connect(f"{ws_url}&access_token={token}")
                    break
                except OSError:
                    await asyncio.sleep(0.05)
        async with ws:
            await ws.send('{"protocol":"json","version":1}\x1e')
            assert str(await ws.recv()).startswith("{}")
            task.cancel()
            close = json.loads(str(await asyncio.wait_for(ws.recv(), 10)).split("\x1e")[0])
            assert close["type"] == 7 and close["allowReconnect"] is True
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, 15)
    finally:
        task.cancel()
        sock.close()
