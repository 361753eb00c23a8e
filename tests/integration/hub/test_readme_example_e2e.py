"""The README's example hub, verbatim, behind the real emulator with the official JS client."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.hubkit import readme_example_module
from tests.support.node import NODE, NodeClientError, node_process
from tests.support.stack import hub_stack

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.node,
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
]

MODULE = "readme_example_e2e_hubs"


async def test_readme_example_works_with_the_js_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``withUrl(".../api")``: newConnection on connect, broadcast, echo 42, the admin gate."""
    monkeypatch.setitem(sys.modules, MODULE, readme_example_module(MODULE))
    async with (
        hub_stack(tmp_path, hubs=[f"{MODULE}:Chat"]) as stack,
        node_process() as node,
        node.connect(f"{stack.backend}/api", targets=("newMessage", "newConnection")) as client,
    ):
        assert await client.next_message("newConnection") == [
            {"connectionId": client.connection_id}
        ]
        assert await client.invoke("echo", 42) == 42
        await client.send("broadcast", "hi")
        assert await client.next_message("newMessage") == [{"sender": None, "text": "hi"}]
        with pytest.raises(NodeClientError, match="role 'admin' is required"):
            await client.invoke("adminBroadcast", "x")
        await client.send("broadcast", "marker")  # nothing from adminBroadcast came first
        assert await client.next_message("newMessage") == [{"sender": None, "text": "marker"}]
