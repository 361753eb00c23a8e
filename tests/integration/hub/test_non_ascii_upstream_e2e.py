"""Non-ASCII values in the X-ASRS headers reach the hub as the client wrote them.

The emulator writes header values as UTF-8; an ASGI server hands the backend each header
byte as one Latin-1 character, so without decoding them back a user id "José" reached the
hub as "JosÃ©" and a target "café" did not match its own invocation (400).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.emulator_kit import invoke_once
from tests.support.stack import HubStack, hub_stack

pytestmark = pytest.mark.anyio

RS = "\x1e"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[HubStack]:
    """A fresh emulator and backend with the probe hub."""
    async with hub_stack(tmp_path) as running:
        yield running


async def _invoke(stack: HubStack, user_id: str, target: str, *arguments: Any) -> dict[str, Any]:
    """Connect to the probe hub as ``user_id``, invoke ``target``; the completion."""
    emulator = stack.emulator
    token = emulator.client_token("probe", user_id=user_id)
    return await invoke_once(emulator.client_url("probe"), token, target, *arguments)


async def test_a_non_ascii_user_id_reaches_the_hub_intact(stack: HubStack) -> None:
    """A client whose token names user "José 李" is "José 李" to the hub's context."""
    completion = await _invoke(stack, "José 李", "whoami")
    assert completion.get("error") is None, completion
    assert completion["result"]["userId"] == "José 李"


async def test_a_non_ascii_target_is_named_intact(stack: HubStack) -> None:
    """An unknown target "café" is a 404 naming "café", not a mismatch of event and target."""
    completion = await _invoke(stack, "u", "café")
    assert "No handler for target 'café' in hub 'probe'" in completion["error"]
