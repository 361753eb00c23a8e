"""The dev header ``x-ms-signalr-user-id`` with a non-ASCII user id, sent as UTF-8 (as
``curl -H "x-ms-signalr-user-id: José"`` does from a UTF-8 terminal), reaches the hub as
written, not as "JosÃ©"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.emulator_kit import invoke_once
from tests.support.stack import HubStack, hub_stack

pytestmark = pytest.mark.anyio

RS = "\x1e"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[HubStack]:
    """A fresh emulator and backend (served by uvicorn) with the probe hub."""
    async with hub_stack(tmp_path) as running:
        yield running


async def _whoami(url: str, token: str) -> dict[str, Any]:
    """Invoke the probe hub's ``whoami`` over a raw WebSocket; its result."""
    completion = await invoke_once(url, token, "whoami")
    assert completion.get("error") is None, completion
    result: dict[str, Any] = completion["result"]
    return result


async def test_a_utf8_dev_user_id_reaches_the_hub_intact(stack: HubStack) -> None:
    """Negotiate with ``x-ms-signalr-user-id: José 李`` in UTF-8 bytes; the connection's user
    id in the hub's context is "José 李"."""
    async with httpx.AsyncClient(base_url=stack.backend) as client:
        answer = await client.post(
            "/api/probe/negotiate", headers={b"x-ms-signalr-user-id": "José 李".encode()}
        )
    assert answer.status_code == 200, answer.text
    info = answer.json()
    assert (await _whoami(info["url"], info["accessToken"]))["userId"] == "José 李"
