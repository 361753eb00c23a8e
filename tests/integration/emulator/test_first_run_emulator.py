"""A new user's first run of ``python -m emulator``: a busy port, and where events go."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parents[3]


async def _run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``python -m emulator *args`` until it exits or has printed its banner, then stop it.

    Returns:
        The exit status, stdout and stderr.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "emulator",
        *args,
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # The emulator's own variables only as the test sets them.
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("EMULATOR_")},
            **(env or {}),
        },
    )
    assert proc.stdout is not None
    printed: list[bytes] = []
    try:
        async with asyncio.timeout(20):
            while line := await proc.stdout.readline():
                printed.append(line)
                if line.startswith(b"Upstream") or b"Press Ctrl-C" in line:
                    break
        if proc.returncode is None:
            await asyncio.sleep(0.2)  # the rest of the banner
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        stdout, stderr = await asyncio.wait_for(proc.communicate(), 15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, (b"".join(printed) + stdout).decode(), stderr.decode()


async def test_a_busy_port_is_one_line_naming_the_address_and_the_setting() -> None:
    """On a port already in use the emulator says which address and which setting to
    change, in one line without a traceback or a raw errno, and exits non-zero."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        status, stdout, stderr = await _run("--port", str(port), env={"EMULATOR_UPSTREAM_URL": ""})
    assert status == 1
    assert stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert f"127.0.0.1:{port}" in line
    assert "--port" in line and "EMULATOR_PORT" in line
    assert "Traceback" not in line and "Errno" not in line


async def test_an_address_not_of_this_machine_names_the_host_setting() -> None:
    """An address no interface has (TEST-NET-3) is reported with the host setting."""
    status, _, stderr = await _run(
        "--host", "203.0.113.7", "--port", "0", env={"EMULATOR_UPSTREAM_URL": ""}
    )
    assert status == 1
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "203.0.113.7" in lines[0]
    assert "--host" in lines[0] and "EMULATOR_HOST" in lines[0]
    assert "Traceback" not in lines[0] and "Errno" not in lines[0]


async def test_the_banner_says_where_upstream_events_go_without_credentials() -> None:
    """The banner names the upstream URL with user info and query values hidden."""
    url = "http://alice:hunter2@127.0.0.1:7071/runtime/webhooks/signalr?code=s3cret&x=1"
    status, stdout, _ = await _run("--port", "0", env={"EMULATOR_UPSTREAM_URL": url})
    assert status == 0
    assert (
        "Upstream: http://***@127.0.0.1:7071/runtime/webhooks/signalr?code=***&x=*** "
        "(every hub, category and event)" in stdout
    )
    assert "hunter2" not in stdout and "s3cret" not in stdout


async def test_the_banner_shows_the_default_upstream_and_how_to_change_it() -> None:
    """Without settings the banner names the Functions host's default URL and the settings
    that change it."""
    status, stdout, _ = await _run("--port", "0")
    assert status == 0
    line = next(line for line in stdout.splitlines() if line.startswith("Upstream"))
    assert "http://localhost:7071/runtime/webhooks/signalr" in line
    assert "EMULATOR_UPSTREAM_URL" in line and "--config" in line


async def test_the_banner_says_when_no_upstream_is_configured() -> None:
    """``EMULATOR_UPSTREAM_URL=""`` turns the upstream off, and the banner says so."""
    status, stdout, _ = await _run("--port", "0", env={"EMULATOR_UPSTREAM_URL": ""})
    assert status == 0
    assert "Upstream: none (EMULATOR_UPSTREAM_URL is empty)" in stdout


async def test_the_banner_lists_the_templates_of_a_settings_file(tmp_path: Path) -> None:
    """With ``--config`` every template is listed with its patterns and auth."""
    config = tmp_path / "settings.json"
    config.write_text(
        json.dumps(
            {
                "UpstreamSettings": {
                    "Templates": [
                        {
                            "UrlTemplate": "http://127.0.0.1:7071/api/{hub}/{event}?code=k",
                            "HubPattern": "chat",
                            "CategoryPattern": "messages",
                            "EventPattern": "*",
                        },
                        {
                            "UrlTemplate": "https://example.test/hook",
                            "Auth": {
                                "Type": "ManagedIdentity",
                                "ManagedIdentity": {"Resource": "api://hook"},
                            },
                        },
                    ]
                }
            }
        )
    )
    status, stdout, _ = await _run("--port", "0", "--config", str(config))
    assert status == 0
    assert f"Upstream: 2 templates from {config} (first match wins, reloaded on change)" in stdout
    assert (
        "  http://127.0.0.1:7071/api/{hub}/{event}?code=***  "
        "(hub chat, category messages, event *)" in stdout
    )
    assert (
        "  https://example.test/hook  (every hub, category and event; bearer for api://hook)"
        in stdout
    )
