"""The interface of the outbound service the hub API calls.

:class:`OutboundService` is the slice of :class:`app.services.signalr.SignalRService` that
:mod:`app.hub.api` calls. Typing against a :class:`typing.Protocol` keeps the hub model
independent of the REST client: production code passes the real service, tests pass a
recording fake, and mypy checks that both fit.

Parameters are positional-only so any implementation whose parameters sit in the same
positions fits, whatever it names them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["GroupMember", "OutboundService"]


@dataclass(frozen=True, slots=True)
class GroupMember:
    """One connection in a group, as the service lists it (its ``GroupMember``)."""

    connection_id: str
    user_id: str | None = None
    """The connection's user id; ``None`` for an anonymous connection."""


class OutboundService(Protocol):
    """What the hub API needs from the SignalR Service data-plane client.

    Every method addresses one hub by name; ``arguments`` are the hub-protocol arguments the
    receiving clients' handlers get, in order. Methods raise
    :class:`app.exceptions.ServiceError` subclasses when the service refuses or can't be
    reached.
    """

    async def send_to_all(
        self, hub: str, target: str, arguments: Sequence[Any], /, *, excluded: Sequence[str] = ()
    ) -> None:
        """Send ``target(*arguments)`` to every connection of the hub except ``excluded``."""
        ...

    async def send_to_user(
        self, hub: str, user_id: str, target: str, arguments: Sequence[Any], /
    ) -> None:
        """Send to every connection of one user."""
        ...

    async def send_to_users(
        self, hub: str, user_ids: Sequence[str], target: str, arguments: Sequence[Any], /
    ) -> None:
        """Send to every connection of several users."""
        ...

    async def send_to_group(
        self,
        hub: str,
        group: str,
        target: str,
        arguments: Sequence[Any],
        /,
        *,
        excluded: Sequence[str] = (),
    ) -> None:
        """Send to every connection in a group except ``excluded``."""
        ...

    async def send_to_groups(
        self,
        hub: str,
        groups: Sequence[str],
        target: str,
        arguments: Sequence[Any],
        /,
        *,
        excluded: Sequence[str] = (),
    ) -> None:
        """Send to every connection in several groups except ``excluded``."""
        ...

    async def send_to_connection(
        self, hub: str, connection_id: str, target: str, arguments: Sequence[Any], /
    ) -> None:
        """Send to one connection."""
        ...

    async def send_to_connections(
        self, hub: str, connection_ids: Sequence[str], target: str, arguments: Sequence[Any], /
    ) -> None:
        """Send to several connections."""
        ...

    async def add_connection_to_group(self, hub: str, group: str, connection_id: str, /) -> None:
        """Add a connection to a group."""
        ...

    async def remove_connection_from_group(
        self, hub: str, group: str, connection_id: str, /
    ) -> None:
        """Remove a connection from a group."""
        ...

    async def remove_connection_from_all_groups(self, hub: str, connection_id: str, /) -> None:
        """Remove a connection from every group it is in."""
        ...

    async def add_user_to_group(
        self, hub: str, group: str, user_id: str, /, *, ttl: float | None = None
    ) -> None:
        """Add a user (all its connections, now and later) to a group, for ``ttl`` s if given."""
        ...

    async def remove_user_from_group(self, hub: str, group: str, user_id: str, /) -> None:
        """Remove a user from a group."""
        ...

    async def remove_user_from_all_groups(self, hub: str, user_id: str, /) -> None:
        """Remove a user from every group."""
        ...

    async def user_in_group(self, hub: str, group: str, user_id: str, /) -> bool:
        """Whether a user belongs to a group."""
        ...

    async def close_connection(
        self, hub: str, connection_id: str, /, *, reason: str | None = None
    ) -> None:
        """Close one client connection, telling the client ``reason``."""
        ...

    async def connection_exists(self, hub: str, connection_id: str, /) -> bool:
        """Whether a connection is currently open."""
        ...

    async def user_exists(self, hub: str, user_id: str, /) -> bool:
        """Whether a user has at least one open connection."""
        ...

    async def group_exists(self, hub: str, group: str, /) -> bool:
        """Whether a group has at least one connection."""
        ...

    async def list_group_connections(
        self, hub: str, group: str, /, *, top: int | None = None
    ) -> list[GroupMember]:
        """The connections in a group, at most ``top`` of them (all when ``None``)."""
        ...
