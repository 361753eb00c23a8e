"""The hub API: send to clients and manage groups through the SignalR Service REST API.

``self.clients``, ``self.groups``, ``self.user_groups`` and ``self.client_manager`` of a
:class:`~app.hub.ServerlessHub` (and the same attributes of a :class:`HubContext` injected
into a trigger function) are the proxies below. Each call goes to the
:class:`~app.hub.outbound.OutboundService` the app attached (the REST client in production);
arguments are converted by the project's one payload policy
(:func:`signalr_protocol.payload.to_jsonable`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from datetime import timedelta
from functools import cached_property
from typing import Any

from signalr_protocol.payload import to_jsonable

from .outbound import GroupMember, OutboundService

__all__ = [
    "ClientManager",
    "ClientProxy",
    "GroupManager",
    "HubClients",
    "HubContext",
    "UserGroupManager",
]


class ClientProxy:
    """Sends hub messages to one set of receivers (all, a user, a group, ...).

    Get one from :class:`HubClients`; don't build it directly.
    """

    __slots__ = ("_send",)

    def __init__(self, send: Callable[[str, list[Any]], Awaitable[None]]) -> None:
        self._send = send

    async def send(self, target: str, *arguments: Any) -> None:
        """Call ``target(*arguments)`` on every receiving client.

        The call returns once the service accepted the message (REST ``202``); it does not
        wait for clients to receive it.

        Raises:
            ServiceError: the service refused or could not be reached.
        """
        await self._send(target, [to_jsonable(argument) for argument in arguments])


class HubClients:
    """Pick who receives a message: ``self.clients.group("g").send("target", arg)``.

    Args:
        service: the outbound SignalR Service client.
        hub: the hub name.
        connection_id: the calling connection, for :attr:`caller` and :attr:`others`.
    """

    __slots__ = ("_connection_id", "_hub", "_service")

    def __init__(self, service: OutboundService, hub: str, connection_id: str | None) -> None:
        self._service = service
        self._hub = hub
        self._connection_id = connection_id

    def _caller_id(self) -> str:
        if self._connection_id is None:
            raise RuntimeError("There is no calling connection here (e.g. during negotiate).")
        return self._connection_id

    @property
    def all(self) -> ClientProxy:
        """Every connection of the hub."""
        return self.all_except(())

    def all_except(self, excluded: Iterable[str]) -> ClientProxy:
        """Every connection of the hub except the listed connection ids."""
        skip = list(excluded)
        return ClientProxy(lambda t, a: self._service.send_to_all(self._hub, t, a, excluded=skip))

    @property
    def caller(self) -> ClientProxy:
        """The connection that raised the current event."""
        return self.client(self._caller_id())

    @property
    def others(self) -> ClientProxy:
        """Every connection except the caller."""
        return self.all_except([self._caller_id()])

    def user(self, user_id: str) -> ClientProxy:
        """Every connection of one user."""
        return ClientProxy(lambda t, a: self._service.send_to_user(self._hub, user_id, t, a))

    def users(self, user_ids: Iterable[str]) -> ClientProxy:
        """Every connection of the listed users."""
        ids = list(user_ids)
        return ClientProxy(lambda t, a: self._service.send_to_users(self._hub, ids, t, a))

    def group(self, group: str) -> ClientProxy:
        """Every connection in a group."""
        return self.group_except(group, ())

    def group_except(self, group: str, excluded: Iterable[str]) -> ClientProxy:
        """Every connection in a group except the listed connection ids."""
        skip = list(excluded)
        return ClientProxy(
            lambda t, a: self._service.send_to_group(self._hub, group, t, a, excluded=skip)
        )

    def groups(self, groups: Iterable[str], *, excluded: Iterable[str] = ()) -> ClientProxy:
        """Every connection in any of the listed groups, except ``excluded`` connection ids."""
        names = list(groups)
        skip = list(excluded)
        return ClientProxy(
            lambda t, a: self._service.send_to_groups(self._hub, names, t, a, excluded=skip)
        )

    def client(self, connection_id: str) -> ClientProxy:
        """One connection."""
        return ClientProxy(
            lambda t, a: self._service.send_to_connection(self._hub, connection_id, t, a)
        )

    def clients(self, connection_ids: Iterable[str]) -> ClientProxy:
        """The listed connections."""
        ids = list(connection_ids)
        return ClientProxy(lambda t, a: self._service.send_to_connections(self._hub, ids, t, a))


class GroupManager:
    """Add and remove connections to and from groups of the hub (``self.groups``).

    Each call returns once the service applied the change.
    """

    __slots__ = ("_hub", "_service")

    def __init__(self, service: OutboundService, hub: str) -> None:
        self._service = service
        self._hub = hub

    async def add_to_group(self, connection_id: str, group: str) -> None:
        """Add a connection to a group."""
        await self._service.add_connection_to_group(self._hub, group, connection_id)

    async def remove_from_group(self, connection_id: str, group: str) -> None:
        """Remove a connection from a group."""
        await self._service.remove_connection_from_group(self._hub, group, connection_id)

    async def remove_from_all_groups(self, connection_id: str) -> None:
        """Remove a connection from every group."""
        await self._service.remove_connection_from_all_groups(self._hub, connection_id)

    async def list_connections(self, group: str, *, top: int | None = None) -> list[GroupMember]:
        """The connections in a group (connection id and user id), at most ``top`` of them.

        ``top=None`` lists them all, page by page; pass a bound when the group may be large.
        A group without connections gives an empty list.
        """
        return await self._service.list_group_connections(self._hub, group, top=top)


class UserGroupManager:
    """Add and remove users (all their connections) to and from groups (``self.user_groups``)."""

    __slots__ = ("_hub", "_service")

    def __init__(self, service: OutboundService, hub: str) -> None:
        self._service = service
        self._hub = hub

    async def add_to_group(
        self, user_id: str, group: str, *, ttl: float | timedelta | None = None
    ) -> None:
        """Add a user to a group, for ``ttl`` (seconds or a timedelta) or until removed."""
        seconds = ttl.total_seconds() if isinstance(ttl, timedelta) else ttl
        await self._service.add_user_to_group(self._hub, group, user_id, ttl=seconds)

    async def remove_from_group(self, user_id: str, group: str) -> None:
        """Remove a user from a group."""
        await self._service.remove_user_from_group(self._hub, group, user_id)

    async def remove_from_all_groups(self, user_id: str) -> None:
        """Remove a user from every group."""
        await self._service.remove_user_from_all_groups(self._hub, user_id)

    async def is_user_in_group(self, user_id: str, group: str) -> bool:
        """Whether the user belongs to the group."""
        return await self._service.user_in_group(self._hub, group, user_id)


class ClientManager:
    """Close connections and ask what exists (``self.client_manager``)."""

    __slots__ = ("_hub", "_service")

    def __init__(self, service: OutboundService, hub: str) -> None:
        self._service = service
        self._hub = hub

    async def close_connection(self, connection_id: str, *, reason: str | None = None) -> None:
        """Close a client connection; the client sees ``reason`` as the close error."""
        await self._service.close_connection(self._hub, connection_id, reason=reason)

    async def connection_exists(self, connection_id: str) -> bool:
        """Whether the connection is open."""
        return await self._service.connection_exists(self._hub, connection_id)

    async def user_exists(self, user_id: str) -> bool:
        """Whether the user has an open connection."""
        return await self._service.user_exists(self._hub, user_id)

    async def group_exists(self, group: str) -> bool:
        """Whether the group has a connection."""
        return await self._service.group_exists(self._hub, group)


class HubContext:
    """The hub API for one hub: ``clients``, ``groups``, ``user_groups``, ``client_manager``.

    :class:`ServerlessHub` exposes the same attributes on ``self``; trigger functions get one
    by declaring a parameter annotated ``HubContext``.

    Args:
        service: the outbound SignalR Service client.
        hub: the hub name the calls address.
        connection_id: the calling connection (for ``clients.caller`` / ``clients.others``).
    """

    def __init__(
        self, service: OutboundService, hub: str, connection_id: str | None = None
    ) -> None:
        self.service = service
        self.hub = hub
        self.connection_id = connection_id

    @cached_property
    def clients(self) -> HubClients:
        """Choose receivers and send to them."""
        return HubClients(self.service, self.hub, self.connection_id)

    @cached_property
    def groups(self) -> GroupManager:
        """Connection ↔ group membership."""
        return GroupManager(self.service, self.hub)

    @cached_property
    def user_groups(self) -> UserGroupManager:
        """User ↔ group membership."""
        return UserGroupManager(self.service, self.hub)

    @cached_property
    def client_manager(self) -> ClientManager:
        """Close connections; check connections, users and groups exist."""
        return ClientManager(self.service, self.hub)
