"""Trigger functions (and one hub class) loaded from import strings by the hub unit tests."""

from __future__ import annotations

from app.hub import HubContext, InvocationContext, ServerlessHub, require_role, signalr_trigger

__all__ = ["Lobby", "announce", "shout"]


@signalr_trigger(hub="lobby", category="messages", event="shout", parameter_names=["text"])
async def shout(context: InvocationContext, api: HubContext, text: str) -> str:
    """Send the text upper-cased to everyone and return it to the caller."""
    await api.clients.all.send("shouted", context.connection_id, text.upper())
    return text.upper()


@require_role("member")
@signalr_trigger(hub="lobby", category="connections", event="connected")
def announce(context: InvocationContext) -> None:
    """A sync connect handler guarded by a role filter."""


class Lobby(ServerlessHub):
    """A class in the same module: a bare ``module`` import string loads it too."""

    hub_name = "lobby"

    async def ping(self) -> str:
        return "pong"
