"""The whole client-to-server path for tests: emulator → webhook → hub, on free ports.

Use::

    async with hub_stack(tmp_dir) as stack:
        stack.emulator   # RunningEmulator (client URLs, tokens)
        stack.backend    # the backend's base URL
        await stack.restart_backend(stopped=...)   # see below

The emulator starts first (its upstream settings file points nowhere yet), then the
backend with the emulator's connection string, then the file is rewritten with the
backend's webhook URL and reloaded, so no port is guessed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.main import create_app
from app.settings import Settings
from tests.support.emulator import RunningEmulator, running_emulator, write_upstream_settings
from tests.support.servers import serve_asgi

__all__ = ["HUBS", "HubStack", "hub_stack"]

HUBS = ["app.samples.chat:ChatHub", "tests.support.hubs.probe_hub:Probe"]
WEBHOOK = "/runtime/webhooks/signalr"


@dataclass
class HubStack:
    """A running emulator and backend wired together."""

    emulator: RunningEmulator
    backend: str
    settings: Settings
    config: Path
    _exit: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    @property
    def port(self) -> int:
        """The backend's port."""
        return int(self.backend.rsplit(":", 1)[1])

    async def stop_backend(self) -> None:
        """Stop the backend (the emulator keeps running and keeps its upstream URL)."""
        await self._exit.aclose()

    async def start_backend(self, port: int = 0) -> None:
        """(Re)start the backend, on ``port`` if given, and point the upstream at it."""
        self._exit = contextlib.AsyncExitStack()
        self.backend = await self._exit.enter_async_context(
            serve_asgi(create_app(self.settings), port=port)
        )
        write_upstream_settings(self.config, self.backend + WEBHOOK)
        self.emulator.app.templates.reload()  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def hub_stack(
    directory: Path, *, hubs: Sequence[str] = tuple(HUBS), **emulator_settings: Any
) -> AsyncIterator[HubStack]:
    """Start the emulator and the backend (loading ``hubs``), wired together; stop both on exit."""
    config = write_upstream_settings(directory / "settings.json", "http://127.0.0.1:9" + WEBHOOK)
    async with running_emulator(config=config, **emulator_settings) as emu:
        settings = Settings(connection_string=emu.connection_string, hubs=list(hubs))
        stack = HubStack(emulator=emu, backend="", settings=settings, config=config)
        await stack.start_backend()
        try:
            yield stack
        finally:
            await stack.stop_backend()
