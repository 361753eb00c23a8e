"""The emulator's in-memory registry: connections, users, groups, TTL memberships."""

from __future__ import annotations

import pytest

from emulator.connection import ClientConnection
from emulator.lifecycle import Transport
from emulator.registry import MAX_USER_GROUPS, Hub, Registry, hub_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def conn(cid: str, user: str | None = None, hub: str = "chat") -> ClientConnection:
    return ClientConnection(connection_id=cid, token=f"t-{cid}", hub=hub, user_id=user)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hub(clock: Clock) -> Hub:
    return Hub("chat", clock)


def ids(connections: list[ClientConnection]) -> set[str]:
    return {c.connection_id for c in connections}


def test_hub_key_lowercases_and_prefixes_application() -> None:
    """Hub names are lower-cased and an application prefixes them as app_hub."""
    assert hub_key("Chat") == "chat"
    assert hub_key("Chat", "MyApp") == "myapp_chat"


def test_add_and_remove_connection_updates_users_and_groups(hub: Hub) -> None:
    """Removing a connection drops it from its user and from every group it joined."""
    a, b = conn("a", "alice"), conn("b", "alice")
    hub.add(a)
    hub.add(b)
    assert hub.add_to_group("g", "a")
    assert ids(hub.user_connections("alice")) == {"a", "b"}
    hub.remove(a)
    assert ids(hub.user_connections("alice")) == {"b"}
    assert not hub.group_exists("g")
    assert hub.connection("a") is None


def test_add_to_group_needs_existing_connection(hub: Hub) -> None:
    """Adding an unknown connection to a group fails; removing a non-member reports it."""
    assert not hub.add_to_group("g", "nope")
    hub.add(conn("a"))
    assert not hub.remove_from_group("g", "a")
    assert hub.add_to_group("g", "a")
    assert hub.remove_from_group("g", "a")
    assert not hub.group_exists("g")


def test_user_membership_covers_current_and_future_connections(hub: Hub) -> None:
    """A user's group membership applies to connections made after it too."""
    hub.add(conn("a", "alice"))
    hub.add_user_to_group("g", "alice")
    hub.add(conn("b", "alice"))
    hub.add(conn("c", "bob"))
    assert ids(hub.group_connections("g")) == {"a", "b"}
    assert hub.user_in_group("g", "alice")
    assert not hub.user_in_group("g", "bob")


def test_user_membership_ttl_expires(hub: Hub, clock: Clock) -> None:
    """A membership with a TTL ends after TTL seconds and is purged by sweep."""
    hub.add(conn("a", "alice"))
    hub.add_user_to_group("g", "alice", ttl=5)
    clock.now += 4.9
    assert hub.group_exists("g")
    clock.now += 0.2
    assert not hub.group_exists("g")
    assert not hub.user_in_group("g", "alice")
    assert hub.sweep() == 1
    assert hub.user_groups == {}


def test_ttl_zero_adds_only_current_connections(hub: Hub) -> None:
    """ttl=0 puts the user's current connections in the group, not later ones."""
    hub.add(conn("a", "alice"))
    hub.add_user_to_group("g", "alice", ttl=0)
    hub.add(conn("b", "alice"))
    assert ids(hub.group_connections("g")) == {"a"}


def test_only_latest_100_permanent_groups_kept(hub: Hub) -> None:
    """Past 100 non-TTL groups, the least recently joined one is dropped."""
    for i in range(MAX_USER_GROUPS + 1):
        hub.add_user_to_group(f"g{i}", "alice")
    hub.add_user_to_group("ttl", "alice", ttl=60)
    assert not hub.user_in_group("g0", "alice")
    assert hub.user_in_group("g1", "alice")
    assert hub.user_in_group(f"g{MAX_USER_GROUPS}", "alice")
    assert hub.user_in_group("ttl", "alice")
    hub.add_user_to_group("g1", "alice")  # re-joining refreshes recency
    hub.add_user_to_group("new", "alice")
    assert hub.user_in_group("g1", "alice")
    assert not hub.user_in_group("g2", "alice")


def test_remove_user_from_groups(hub: Hub) -> None:
    """Removing a user from a group also removes the user's connections joined directly."""
    hub.add(conn("a", "alice"))
    hub.add_to_group("g", "a")
    hub.add_user_to_group("h", "alice")
    hub.remove_user_from_group("g", "alice")
    assert not hub.group_exists("g")
    assert hub.group_exists("h")
    hub.remove_user_from_all_groups("alice")
    assert not hub.group_exists("h")
    assert hub.user_groups == {} and hub.group_users == {}


def test_group_names_are_case_sensitive(hub: Hub) -> None:
    """Group names and user ids compare exactly."""
    hub.add(conn("a", "alice"))
    hub.add_to_group("G", "a")
    assert not hub.group_exists("g")
    assert hub.user_connections("Alice") == []


def test_registry_lookup_keeps_closed_long_polling_connections(clock: Clock) -> None:
    """A closed long-polling connection stays findable until forgotten, so a last poll works."""
    registry = Registry(clock)
    c = conn("a")
    c.attach(Transport.LONG_POLLING)
    registry.track(c)
    registry.hub("chat").add(c)
    registry.remove(c)
    assert registry.lookup("t-a") is c
    registry.forget_closed(clock.now + 1)
    assert registry.lookup("t-a") is None
    assert registry.find_hub("chat") is not None and registry.find_hub("other") is None
