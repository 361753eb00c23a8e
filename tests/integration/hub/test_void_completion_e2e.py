"""A void hub method, invoked by the official JS client through the emulator and the webhook."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.node import NODE, NodeProcess, node_process
from tests.support.stack import HubStack, hub_stack

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.node,
    pytest.mark.skipif(NODE is None, reason="node is not installed"),
]


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module-scoped so the stack and the Node process are shared by the module's tests."""
    return "asyncio"


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[HubStack]:
    """The emulator and the backend, wired together."""
    async with hub_stack(Path(tmp_path_factory.mktemp("void"))) as running:
        yield running


@pytest.fixture(scope="module")
async def node() -> AsyncIterator[NodeProcess]:
    """One Node process hosting the JS clients."""
    async with node_process() as process:
        yield process


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
async def test_invoke_of_a_void_method_resolves_to_null(
    stack: HubStack, node: NodeProcess, protocol: str
) -> None:
    """``invoke()`` of a void method resolves to ``null``, not ``undefined``, in both protocols.

    Reproduces Azure/azure-sdk-for-net
    sdk/signalr/Microsoft.Azure.WebJobs.Extensions.SignalRService/src/TriggerBindings/Executor/SignalRInvocationMethodExecutor.cs:
    a function with no return value completes with ``CompletionMessage.WithResult(id, null)``.
    """
    async with node.connect(f"{stack.backend}/api/chat", protocol=protocol) as client:
        assert await client.invoke_type_of("joinGroup", "room") == "null"
        assert await client.invoke_type_of("echo", "x") == "string"
