"""The sample hub ``chat``: the hub the sample page, the tests and the benchmarks talk to.

Loaded by default (``SIGNALR_HUBS=app.samples.chat:ChatHub``). Clients call these targets in
camelCase (``sendToUser``); they match the snake_case methods below.
"""

from __future__ import annotations

from typing import Any

from app.hub import ServerlessHub, require_role

__all__ = ["ChatHub"]


class ChatHub(ServerlessHub):
    """A chat room: broadcast, per-user and per-group messages, echo, admin broadcast."""

    hub_name = "chat"

    def _message(self, text: str, **extra: Any) -> dict[str, Any]:
        context = self.context
        return {
            "sender": context.user_id,
            "connectionId": context.connection_id,
            "text": text,
            **extra,
        }

    async def on_connected(self) -> None:
        """Tell everyone a connection arrived: ``newConnection {connectionId, userId}``."""
        context = self.context
        await self.clients.all.send(
            "newConnection", {"connectionId": context.connection_id, "userId": context.user_id}
        )

    async def broadcast(self, text: str) -> None:
        """Send ``newMessage {sender, connectionId, text}`` to everyone."""
        await self.clients.all.send("newMessage", self._message(text))

    async def send_to_user(self, user_id: str, text: str) -> None:
        """Send ``newMessage`` to every connection of ``user_id``."""
        await self.clients.user(user_id).send("newMessage", self._message(text))

    async def join_group(self, group: str) -> None:
        """Add the calling connection to ``group``; completes once the service applied it."""
        await self.groups.add_to_group(self.context.connection_id, group)

    async def leave_group(self, group: str) -> None:
        """Remove the calling connection from ``group``."""
        await self.groups.remove_from_group(self.context.connection_id, group)

    async def send_to_group(self, group: str, text: str) -> None:
        """Send ``newMessage {..., group}`` to the connections of ``group``."""
        await self.clients.group(group).send("newMessage", self._message(text, group=group))

    async def echo(self, value: Any) -> Any:
        """Return ``value``: ``invoke("echo", v)`` resolves to ``v``."""
        return value

    @require_role("admin")
    async def admin_broadcast(self, text: str) -> None:
        """Like :meth:`broadcast`, for callers whose token carries the role ``admin``."""
        await self.clients.all.send("newMessage", self._message(text))
