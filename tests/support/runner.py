"""Run ``python -m app`` as a child process and read its start-up banner (shared by e2e tests)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_BANNER_END = "Press Ctrl-C to stop."
_OUR_PREFIXES = ("SIGNALR_", "EMULATOR_", "AZURE__SIGNALR__", "AZURESIGNALR")
_OUR_NAMES = ("AZURESIGNALRCONNECTIONSTRING", "WEBSITE_AUTH_ENABLED", "GATEWAY_API_KEYS")


@dataclass
class RunningApp:
    """A ``python -m app`` child process and what its banner said."""

    process: asyncio.subprocess.Process
    banner: str
    output: list[str] = field(default_factory=list)

    def line(self, label: str) -> str:
        """The value printed after ``label`` in the banner (first word after it)."""
        match = re.search(rf"^\s*{re.escape(label)}\s+(\S+)", self.banner, re.MULTILINE)
        assert match, f"{label!r} not in banner:\n{self.banner}"
        return match.group(1)

    @property
    def base_url(self) -> str:
        """The backend's base URL, from the banner's page line."""
        return self.line("sample page").rstrip("/")

    async def stop(self, sig: signal.Signals = signal.SIGINT, wait: float = 15) -> int:
        """Send ``sig`` and wait for the exit status."""
        if self.process.returncode is None:
            self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), wait)


def child_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without the project's settings, plus ``extra``."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith(_OUR_PREFIXES) and name.upper() not in _OUR_NAMES
    }
    env.update(extra)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextlib.asynccontextmanager
async def run_app(
    extra_env: Mapping[str, str | None], *, cwd: Path, start_within: float = 30
) -> AsyncIterator[RunningApp]:
    """Start ``python -m app`` on free ports; yield once its banner is printed; stop it after.

    ``cwd`` should hold no ``.env`` (a developer's would leak in); the package is imported
    from the virtual environment, where it is installed. A ``None`` in ``extra_env`` unsets
    that variable (e.g. ``SIGNALR_PORT``, so a ``local.settings.json`` can choose the port).
    """
    env = child_environment({"SIGNALR_PORT": "0", "SIGNALR_EMULATOR_PORT": "0"})
    for name, value in extra_env.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    env["PYTHONPATH"] = str(ROOT)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    output: list[str] = []

    async def read_banner() -> str:
        assert process.stdout is not None
        while True:
            raw = await process.stdout.readline()
            if not raw:
                raise AssertionError("python -m app exited early:\n" + "".join(output))
            output.append(raw.decode(errors="replace"))
            if _BANNER_END in output[-1]:
                return "".join(output)

    try:
        banner = await asyncio.wait_for(read_banner(), start_within)
    except BaseException:
        if process.returncode is None:
            process.kill()
        await process.wait()
        raise

    async def drain() -> None:
        assert process.stdout is not None
        while raw := await process.stdout.readline():
            output.append(raw.decode(errors="replace"))

    drainer = asyncio.create_task(drain())
    running = RunningApp(process, banner, output)
    try:
        yield running
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        await drainer
