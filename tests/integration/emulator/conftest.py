"""Shared fixtures for the emulator's integration tests.

One emulator and one Node process serve a whole module (module-scoped, so the async
backend is module-scoped here too); each test works in its own hub (``hub`` fixture), so
tests don't see each other's connections.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support.emulator import RunningEmulator, running_emulator
from tests.support.emulator_kit import Rest
from tests.support.node import NodeProcess, node_process


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module-scoped asyncio backend, so module-scoped async fixtures can share a loop."""
    return "asyncio"


@pytest.fixture(scope="module")
async def emu(anyio_backend: str) -> AsyncIterator[RunningEmulator]:
    """One emulator per test module."""
    async with running_emulator(keep_alive_interval=2) as running:
        yield running


@pytest.fixture(scope="module")
async def node(anyio_backend: str) -> AsyncIterator[NodeProcess]:
    """One Node process (official JS client) per test module."""
    async with node_process() as process:
        yield process


@pytest.fixture
def hub() -> str:
    """A hub name of this test's own."""
    return f"t{secrets.token_hex(6)}"


@pytest.fixture(scope="module")
async def rest(emu: RunningEmulator) -> AsyncIterator[Rest]:
    """A REST caller bound to the module's emulator."""
    async with httpx.AsyncClient(timeout=10) as client:
        yield Rest(emu, client)
