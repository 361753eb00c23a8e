"""Suite-wide fixtures: the anyio backend and a clean environment for settings."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from app.settings import Settings

_OUR_PREFIXES = ("SIGNALR_", "EMULATOR_", "AZURE__SIGNALR__", "AZURESIGNALR")
_OUR_NAMES = ("AZURESIGNALRCONNECTIONSTRING", "WEBSITE_AUTH_ENABLED", "GATEWAY_API_KEYS")


@pytest.fixture
def anyio_backend() -> str:
    """Async tests run on asyncio (uvicorn and the emulator are asyncio programs)."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Settings read the environment: start every test without this project's variables."""
    for name in list(os.environ):
        upper = name.upper()
        if upper.startswith(_OUR_PREFIXES) or upper in _OUR_NAMES:
            monkeypatch.delenv(name)
    # A developer's .env must not leak into tests.
    monkeypatch.setitem(Settings.model_config, "env_file", None)
    yield
