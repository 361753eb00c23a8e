"""Fixtures of the outbound integration tests: a real emulator, a Node process for
official clients, and the REST client pointed at the emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.services.signalr import SignalRService
from app.settings import Settings
from tests.support.emulator import RunningEmulator, running_emulator
from tests.support.node import NodeProcess, node_process


@pytest.fixture
async def emulator() -> AsyncIterator[RunningEmulator]:
    async with running_emulator() as emu:
        yield emu


@pytest.fixture
async def node() -> AsyncIterator[NodeProcess]:
    async with node_process() as process:
        yield process


@pytest.fixture
async def service(emulator: RunningEmulator) -> AsyncIterator[SignalRService]:
    settings = Settings(connection_string=emulator.connection_string, retry_delay=0.0)
    async with SignalRService.open(settings) as service:
        yield service
