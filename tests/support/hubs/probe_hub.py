"""A hub for the hub integration tests: records what reached it, in this process."""

from __future__ import annotations

import asyncio
from typing import Any

from app.hub import NegotiateOptions, NegotiateRequest, ServerlessHub

__all__ = ["Probe"]


class Probe(ServerlessHub):
    """Records connects/disconnects; echoes; refuses connects asked to (``?refuse=1``)."""

    hub_name = "probe"
    events: list[tuple[str, str, str | None, str | None]] = []
    changed: asyncio.Event | None = None

    @classmethod
    def reset(cls) -> asyncio.Event:
        """Forget recorded events; return an event set on each new one."""
        cls.events = []
        cls.changed = asyncio.Event()
        return cls.changed

    def _record(self, kind: str) -> None:
        ctx = self.context
        self.events.append((kind, ctx.connection_id, ctx.user_id, ctx.error))
        if self.changed is not None:
            self.changed.set()

    async def on_connected(self) -> None:
        self._record("connected")
        if self.context.query.get("refuse"):
            raise RuntimeError("refused on purpose")

    async def on_disconnected(self) -> None:
        self._record("disconnected")

    async def echo(self, value: Any) -> Any:
        return value

    async def whoami(self) -> dict[str, Any]:
        """The caller's connection id, user id and roles, as the webhook saw them."""
        ctx = self.context
        return {"connectionId": ctx.connection_id, "userId": ctx.user_id, "roles": ctx.roles}

    async def negotiate(self, request: NegotiateRequest) -> NegotiateOptions:
        """``?role=admin`` on negotiate puts a role claim in the token (a test convenience)."""
        claims = list(request.claims)
        role = request.query.get("role")
        if role:
            claims.append(("role", role))
        return NegotiateOptions(user_id=request.user_id, claims=claims)
