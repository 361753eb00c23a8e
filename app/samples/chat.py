"""The sample hub ``chat``: the hub the sample page, the tests and the benchmarks talk to.

Loaded by default (``SIGNALR_HUBS=app.samples.chat:ChatHub``). Clients call these targets in
camelCase (``sendToUser``); they match the snake_case methods below.
"""

from __future__ import annotations

from typing import Any, Final

from app.hub import HubError, ServerlessHub, require_role

__all__ = ["PRESENCE_GROUP", "PRESENCE_LIMIT", "ChatHub"]

PRESENCE_GROUP: Final = "_presence"
"""The group every connection joins on connect, so :meth:`ChatHub.who_is_here` can list the
connections from the service (reserved: clients can't join, leave or write to it)."""
PRESENCE_LIMIT: Final = 50
"""At most this many connections are listed by ``whoIsHere``."""


class ChatHub(ServerlessHub):
    """A chat room: broadcast, per-user and per-group messages, echo, admin broadcast, and
    presence (who is connected now; who arrives and leaves)."""

    hub_name = "chat"

    def _message(self, text: str, **extra: Any) -> dict[str, Any]:
        context = self.context
        return {
            "sender": context.user_id,
            "connectionId": context.connection_id,
            "text": text,
            **extra,
        }

    def _presence(self) -> dict[str, Any]:
        context = self.context
        return {"connectionId": context.connection_id, "userId": context.user_id}

    @staticmethod
    def _own_group(group: str) -> str:
        if group == PRESENCE_GROUP:
            raise HubError(
                f"The group name {PRESENCE_GROUP!r} is reserved by the chat hub (it lists who "
                "is connected); choose another name."
            )
        return group

    async def on_connected(self) -> None:
        """Join the presence group, then tell everyone a connection arrived:
        ``newConnection {connectionId, userId}``."""
        await self.groups.add_to_group(self.context.connection_id, PRESENCE_GROUP)
        await self.clients.all.send("newConnection", self._presence())

    async def on_disconnected(self) -> None:
        """Tell everyone a connection left: ``connectionLeft {connectionId, userId}`` (the
        service takes it out of its groups)."""
        await self.clients.all.send("connectionLeft", self._presence())

    async def who_is_here(self) -> list[dict[str, Any]]:
        """The connections connected now, from the service, as ``[{connectionId, userId}]``
        (at most :data:`PRESENCE_LIMIT`): what a page that connected after others shows."""
        members = await self.groups.list_connections(PRESENCE_GROUP, top=PRESENCE_LIMIT)
        return [{"connectionId": m.connection_id, "userId": m.user_id} for m in members]

    async def broadcast(self, text: str) -> None:
        """Send ``newMessage {sender, connectionId, text}`` to everyone."""
        await self.clients.all.send("newMessage", self._message(text))

    async def send_to_user(self, user_id: str, text: str) -> None:
        """Send ``newMessage {..., to}`` to every connection of ``user_id`` (``to`` marks a
        direct message)."""
        await self.clients.user(user_id).send("newMessage", self._message(text, to=user_id))

    async def join_group(self, group: str) -> None:
        """Add the calling connection to ``group``; completes once the service applied it."""
        await self.groups.add_to_group(self.context.connection_id, self._own_group(group))

    async def leave_group(self, group: str) -> None:
        """Remove the calling connection from ``group``."""
        await self.groups.remove_from_group(self.context.connection_id, self._own_group(group))

    async def send_to_group(self, group: str, text: str) -> None:
        """Send ``newMessage {..., group}`` to the connections of ``group``."""
        await self.clients.group(self._own_group(group)).send(
            "newMessage", self._message(text, group=group)
        )

    async def echo(self, value: Any) -> Any:
        """Return ``value``: ``invoke("echo", v)`` resolves to ``v``."""
        return value

    @require_role("admin")
    async def admin_broadcast(self, text: str) -> None:
        """Like :meth:`broadcast`, for callers whose token carries the role ``admin``."""
        await self.clients.all.send("newMessage", self._message(text))
