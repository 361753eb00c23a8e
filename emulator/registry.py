"""In-memory state of the emulator: hubs, connections, users, groups.

Hub names are lower-cased; with an ``application`` the hub is ``{application}_{hub}``, as
the service names it. Group names and user ids are case-sensitive.

Group membership comes in two kinds, as in the service:

* a **connection** joins a group directly (``PUT .../groups/{g}/connections/{c}``) until it
  leaves or disconnects;
* a **user** joins a group (``PUT .../users/{u}/groups/{g}``), optionally for ``ttl``
  seconds: every connection of that user, now or later, is in the group while the
  membership lasts. Without a TTL a membership lasts a year, and only the 100 most
  recently joined non-TTL groups of a user are kept. ``ttl=0`` adds the user's current
  connections only.

Expired user memberships are ignored on every read and purged by :meth:`Hub.sweep`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from .connection import ClientConnection

__all__ = ["MAX_USER_GROUPS", "NO_TTL_SECONDS", "Hub", "Registry", "hub_key"]

MAX_USER_GROUPS = 100
"""Non-TTL groups kept per user; joining one more drops the least recently joined."""

NO_TTL_SECONDS = 365 * 24 * 3600.0
"""How long a user's group membership without a TTL lasts."""


def hub_key(hub: str, application: str | None = None) -> str:
    """The service's name for a hub: lower-cased, prefixed with ``{application}_``."""
    if application:
        return f"{application.lower()}_{hub.lower()}"
    return hub.lower()


class Hub:
    """The connections and groups of one hub."""

    __slots__ = (
        "_clock",
        "conn_groups",
        "connections",
        "group_users",
        "groups",
        "name",
        "user_groups",
        "users",
    )

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._clock = clock
        self.connections: dict[str, ClientConnection] = {}
        self.users: dict[str, dict[str, ClientConnection]] = {}
        self.groups: dict[str, dict[str, ClientConnection]] = {}
        self.conn_groups: dict[str, set[str]] = {}
        # user -> group -> expiry, insertion order = join order (for the 100-group cap);
        # group -> user -> expiry mirrors it for group reads.
        self.user_groups: dict[str, dict[str, tuple[float, bool]]] = {}
        self.group_users: dict[str, dict[str, float]] = {}

    # connections ---------------------------------------------------------------------

    def add(self, conn: ClientConnection) -> None:
        """Register a connection (and its user)."""
        self.connections[conn.connection_id] = conn
        if conn.user_id is not None:
            self.users.setdefault(conn.user_id, {})[conn.connection_id] = conn

    def remove(self, conn: ClientConnection) -> None:
        """Forget a connection: its user entry and its direct group memberships."""
        cid = conn.connection_id
        if self.connections.get(cid) is not conn:
            return
        del self.connections[cid]
        if conn.user_id is not None:
            mine = self.users.get(conn.user_id)
            if mine is not None:
                mine.pop(cid, None)
                if not mine:
                    del self.users[conn.user_id]
        self.remove_from_all_groups(cid)

    def connection(self, connection_id: str) -> ClientConnection | None:
        """The live connection with this id, or ``None``."""
        return self.connections.get(connection_id)

    def user_connections(self, user_id: str) -> list[ClientConnection]:
        """The user's live connections."""
        mine = self.users.get(user_id)
        return list(mine.values()) if mine else []

    # groups --------------------------------------------------------------------------

    def group_connections(self, group: str) -> list[ClientConnection]:
        """Every connection in the group, directly or through its user's membership."""
        direct = self.groups.get(group)
        members = self.group_users.get(group)
        if not members:
            return list(direct.values()) if direct else []
        found: dict[str, ClientConnection] = dict(direct) if direct else {}
        now = self._clock()
        for user_id, expiry in members.items():
            if expiry > now:
                mine = self.users.get(user_id)
                if mine:
                    found.update(mine)
        return list(found.values())

    def group_exists(self, group: str) -> bool:
        """Whether at least one connection is in the group."""
        if self.groups.get(group):
            return True
        members = self.group_users.get(group)
        if not members:
            return False
        now = self._clock()
        return any(expiry > now and user_id in self.users for user_id, expiry in members.items())

    def add_to_group(self, group: str, connection_id: str) -> bool:
        """Add a connection to a group; ``False`` when the connection does not exist."""
        conn = self.connections.get(connection_id)
        if conn is None:
            return False
        self.groups.setdefault(group, {})[connection_id] = conn
        self.conn_groups.setdefault(connection_id, set()).add(group)
        return True

    def remove_from_group(self, group: str, connection_id: str) -> bool:
        """Remove a connection from a group; ``False`` when it was not a direct member."""
        members = self.groups.get(group)
        if not members or connection_id not in members:
            return False
        del members[connection_id]
        if not members:
            del self.groups[group]
        mine = self.conn_groups.get(connection_id)
        if mine is not None:
            mine.discard(group)
            if not mine:
                del self.conn_groups[connection_id]
        return True

    def remove_from_all_groups(self, connection_id: str) -> None:
        """Remove a connection from every group it joined directly."""
        for group in self.conn_groups.pop(connection_id, ()):
            members = self.groups.get(group)
            if members is not None:
                members.pop(connection_id, None)
                if not members:
                    del self.groups[group]

    # users in groups -----------------------------------------------------------------

    def add_user_to_group(self, group: str, user_id: str, ttl: float | None = None) -> None:
        """Add a user to a group for ``ttl`` seconds (``None``: a year; ``0``: only the
        user's current connections join, directly)."""
        if ttl is not None and ttl <= 0:
            for conn in self.user_connections(user_id):
                self.add_to_group(group, conn.connection_id)
            return
        now = self._clock()
        expiry = now + (NO_TTL_SECONDS if ttl is None else ttl)
        mine = self.user_groups.setdefault(user_id, {})
        mine.pop(group, None)
        mine[group] = (expiry, ttl is None)
        self.group_users.setdefault(group, {})[user_id] = expiry
        if ttl is None:
            self._cap(user_id, mine)

    def _cap(self, user_id: str, mine: dict[str, tuple[float, bool]]) -> None:
        permanent = [g for g, (_, no_ttl) in mine.items() if no_ttl]
        for group in permanent[: max(0, len(permanent) - MAX_USER_GROUPS)]:
            self._drop_user_group(user_id, group)

    def _drop_user_group(self, user_id: str, group: str) -> bool:
        mine = self.user_groups.get(user_id)
        found = False
        if mine is not None and mine.pop(group, None) is not None:
            found = True
            if not mine:
                del self.user_groups[user_id]
        members = self.group_users.get(group)
        if members is not None and members.pop(user_id, None) is not None:
            if not members:
                del self.group_users[group]
        return found

    def remove_user_from_group(self, group: str, user_id: str) -> None:
        """End the user's membership and take the user's connections out of the group."""
        self._drop_user_group(user_id, group)
        for conn in self.user_connections(user_id):
            self.remove_from_group(group, conn.connection_id)

    def remove_user_from_all_groups(self, user_id: str) -> None:
        """End every group membership of the user and of the user's connections."""
        for group in list(self.user_groups.get(user_id, ())):
            self._drop_user_group(user_id, group)
        for conn in self.user_connections(user_id):
            self.remove_from_all_groups(conn.connection_id)

    def user_in_group(self, group: str, user_id: str) -> bool:
        """Whether the user is a member (unexpired) or one of its connections is."""
        entry = self.user_groups.get(user_id, {}).get(group)
        if entry is not None and entry[0] > self._clock():
            return True
        members = self.groups.get(group)
        if members:
            return any(conn.user_id == user_id for conn in members.values())
        return False

    def sweep(self) -> int:
        """Purge expired user memberships; returns how many were purged."""
        now = self._clock()
        expired = [
            (user_id, group)
            for user_id, mine in self.user_groups.items()
            for group, (expiry, _) in mine.items()
            if expiry <= now
        ]
        for user_id, group in expired:
            self._drop_user_group(user_id, group)
        return len(expired)


class Registry:
    """All hubs, plus the index from connection token to connection."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.hubs: dict[str, Hub] = {}
        self.by_token: dict[str, ClientConnection] = {}
        self.recently_closed: dict[str, tuple[ClientConnection, float]] = {}

    def hub(self, name: str) -> Hub:
        """The hub named ``name`` (already lower-cased/prefixed), created on first use."""
        hub = self.hubs.get(name)
        if hub is None:
            hub = self.hubs[name] = Hub(name, self._clock)
        return hub

    def find_hub(self, name: str) -> Hub | None:
        """The hub if it was ever used, else ``None`` (reads must not create hubs)."""
        return self.hubs.get(name)

    def track(self, conn: ClientConnection) -> None:
        """Index a new (negotiated) connection by token; it joins its hub only after its
        handshake (:meth:`Hub.add`)."""
        self.by_token[conn.token] = conn

    def lookup(self, token: str) -> ClientConnection | None:
        """The connection for a transport request's ``id``, including one closed in the
        last ``disconnect_timeout`` (so a long poll can still collect its Close message)."""
        conn = self.by_token.get(token)
        if conn is None:
            entry = self.recently_closed.get(token)
            conn = entry[0] if entry else None
        return conn

    def remove(self, conn: ClientConnection) -> None:
        """Forget a connection everywhere (it stays findable by token for a while)."""
        if self.by_token.get(conn.token) is conn:
            del self.by_token[conn.token]
            if conn.transport is not None and conn.transport.polled:
                self.recently_closed[conn.token] = (conn, self._clock())
        hub = self.hubs.get(conn.hub)
        if hub is not None:
            hub.remove(conn)

    def forget_closed(self, older_than: float) -> None:
        """Drop recently-closed entries older than ``older_than`` (monotonic seconds)."""
        stale = [t for t, (_, when) in self.recently_closed.items() if when < older_than]
        for token in stale:
            del self.recently_closed[token]

    def connections(self) -> Iterable[ClientConnection]:
        """Every live connection (a snapshot)."""
        return list(self.by_token.values())

    def sweep(self) -> int:
        """Purge expired user memberships in every hub."""
        return sum(hub.sweep() for hub in self.hubs.values())
