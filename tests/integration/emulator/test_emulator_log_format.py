"""``signalr-emulator --log-format json`` (or ``EMULATOR_LOG_FORMAT=json``): one JSON object
per log line, tokens redacted, client text inside its own object."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
import websockets

from tests.support.runner import ROOT, child_environment

pytestmark = pytest.mark.anyio

SECRET = "SECRETTOKEN42"
FAKE = "2030-01-01 00:00:00,000 CRITICAL emulator: forged"


@pytest.fixture
def anyio_backend() -> str:
    """asyncio only: the child process is driven with asyncio subprocesses."""
    return "asyncio"


@pytest.mark.parametrize(
    ("args", "env"),
    [(["--log-format", "json"], {}), ([], {"EMULATOR_LOG_FORMAT": "json"})],
    ids=["option", "environment"],
)
async def test_json_log_lines_are_one_object_each(
    tmp_path: Path, args: list[str], env: dict[str, str]
) -> None:
    """Every stderr line of a JSON-format emulator is one JSON object: start-up, a refused
    WebSocket whose hub name holds a newline and a forged line, shut-down; the token of the
    refused request appears nowhere."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "emulator",
        "--port",
        "0",
        *args,
        cwd=tmp_path,
        env=child_environment({**env, "PYTHONPATH": str(ROOT)}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(30):
            first = (await process.stdout.readline()).decode()
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", first)
        assert match is not None, first
        hub = quote(f"chat\n{FAKE}")
        url = f"ws://127.0.0.1:{match.group(1)}/client/?hub={hub}&access_token={SECRET}"
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(url):
                pass
        assert refused.value.response.status_code in (400, 401)
    finally:
        if process.returncode is None:
            process.terminate()
        async with asyncio.timeout(30):
            out, err = await process.communicate()
    text = err.decode("utf-8")
    assert SECRET not in text and SECRET not in out.decode("utf-8")
    entries = [json.loads(line) for line in text.split("\n") if line]
    assert all(set(entry) >= {"time", "level", "logger", "message"} for entry in entries)
    messages = [entry["message"] for entry in entries]
    assert "Application startup complete." in messages, messages
    assert any("access_token=***" in message for message in messages), messages
    assert any(message.startswith("WebSocket refused (400)") for message in messages), messages
    assert "Finished server process" in messages[-1], messages
