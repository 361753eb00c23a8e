"""Log lines of ``uvicorn app.main:app``: client text escaped and tokens redacted, as under
``python -m app``, with uvicorn's own logging set-up left in place.

uvicorn configures its own loggers and leaves the root logger alone, so before the backend
gave its ``app`` logger a handler, its warnings went to Python's last-resort handler, raw.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.emulator import RunningEmulator, running_emulator
from tests.support.emulator_kit import invoke_once
from tests.support.runner import ROOT, child_environment
from tests.support.servers import free_port, wait_listening

pytestmark = pytest.mark.anyio

RS = "\x1e"
SECRET = "SECRETTOKEN42"
FAKE = "2030-01-01 00:00:00,000 CRITICAL app.services.webhook: forged"
HUB_MODULE = '''
from __future__ import annotations

from app.hub import HubError, ServerlessHub


class Rooms(ServerlessHub):
    """Refuses unknown rooms, naming them, as a hub might."""

    hub_name = "rooms"

    async def enter(self, room: str) -> None:
        raise HubError(f"no room named {room}")
'''


@pytest.fixture
def anyio_backend() -> str:
    """asyncio only: the child process is driven with asyncio subprocesses."""
    return "asyncio"


@dataclass
class Served:
    """A ``uvicorn app.main:app`` child wired to an in-process emulator."""

    base_url: str
    emulator: RunningEmulator
    process: asyncio.subprocess.Process

    async def stop(self) -> tuple[str, str]:
        """Stop the child; its stdout and stderr."""
        if self.process.returncode is None:
            self.process.terminate()
        async with asyncio.timeout(30):
            out, err = await self.process.communicate()
        return out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """``uvicorn app.main:app`` (the chat hub and a ``rooms`` hub) behind an emulator."""
    (tmp_path / "rooms_hub.py").write_text(HUB_MODULE, encoding="utf-8")
    port = free_port()
    webhook = f"http://127.0.0.1:{port}/runtime/webhooks/signalr"
    async with running_emulator(upstream_url=webhook) as emulator:
        env = child_environment(
            {
                "AzureSignalRConnectionString": emulator.connection_string,
                "SIGNALR_HUBS": "app.samples.chat:ChatHub,rooms_hub:Rooms",
                "PYTHONPATH": str(ROOT),
            }
        )
        env = {name: value for name, value in env.items() if not name.startswith("OTEL_")}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "uvicorn",
            "app.main:app",
            "--port",
            str(port),
            cwd=tmp_path,  # uvicorn puts it on sys.path: rooms_hub is importable
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        running = Served(f"http://127.0.0.1:{port}", emulator, process)
        try:
            await wait_listening(port, process)
            yield running
        finally:
            await running.stop()


async def test_client_text_is_one_escaped_line_and_tokens_never_appear(served: Served) -> None:
    """Under ``uvicorn app.main:app``, an unknown target holding line breaks and a forged
    log line, and a hub error carrying a newline, are each one escaped log line; a token in
    a query or a ``Bearer`` never reaches either stream (uvicorn's access log included)."""
    async with httpx.AsyncClient(base_url=served.base_url) as client:
        answer = await client.post(
            f"/api/rooms/negotiate?access_token={SECRET}",
            headers={"Authorization": f"Bearer {SECRET}"},
        )
        assert answer.status_code == 200, answer.text
    info = answer.json()
    # The service's header writer turns a raw newline into a space; NEL and LINE SEPARATOR
    # reach the webhook as they are (and split lines for str.splitlines and many viewers).
    target = f"nothing\u0085{FAKE}\u2028access_token={SECRET}"
    unknown = await invoke_once(info["url"], info["accessToken"], target)
    assert "No handler for target" in unknown["error"]
    hostile = f"x\n{FAKE} Bearer {SECRET}"
    refused = await invoke_once(info["url"], info["accessToken"], "enter", hostile)
    assert refused["error"].startswith("no room named x\n")
    out, err = await served.stop()

    assert SECRET not in out and SECRET not in err, (out, err)
    assert "access_token=***" in out  # uvicorn's access line for the negotiate request
    lines = err.splitlines()  # also splits at NEL and LINE SEPARATOR
    forged = [line for line in lines if FAKE in line]
    assert len(forged) == 2, err
    assert not any(line.startswith(FAKE) for line in lines), err
    (no_handler,) = [line for line in forged if "no handler for hub=rooms" in line]
    assert f"event=nothing\\x85{FAKE}\\u2028access_token=***" in no_handler
    (hub_error,) = [line for line in forged if "refused: no room named" in line]
    assert f"no room named x\\n{FAKE} Bearer ***" in hub_error
    assert hub_error.split(" ")[2] == "INFO"  # our format, not the last-resort handler's
