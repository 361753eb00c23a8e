"""Name rules of the SignalR Service data plane (docs/protocol.md §5.2).

Hub names: a letter, then up to 127 letters, digits or ``_`` ``,`` ``.`` ``[`` ``]`` or a
backtick. Group names: 1 to 1,024 characters, not only white space. User and connection
ids: 1 to 1,024 characters. Validate before putting a name in a URL; percent-encode it
there anyway.
"""

from __future__ import annotations

import re

from signalr_protocol.errors import InvalidNameError

__all__ = [
    "HUB_NAME_PATTERN",
    "MAX_NAME_LENGTH",
    "validate_connection_id",
    "validate_group_name",
    "validate_hub_name",
    "validate_user_id",
]

HUB_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_`,.\[\]]{0,127}$")
MAX_NAME_LENGTH = 1024


def validate_hub_name(name: str) -> str:
    """Return ``name`` if it is a valid hub name.

    Raises:
        InvalidNameError: with the rule the name broke.
    """
    if not isinstance(name, str) or not HUB_NAME_PATTERN.fullmatch(name):
        raise InvalidNameError(
            f"Invalid hub name {name!r}: a hub name starts with a letter, followed by at most "
            "127 letters, digits or the characters _ , . [ ] `."
        )
    return name


def _validate(kind: str, name: str, *, allow_blank: bool) -> str:
    if not isinstance(name, str) or not name:
        raise InvalidNameError(f"The {kind} must not be empty.")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(
            f"The {kind} is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed."
        )
    if not allow_blank and not name.strip():
        raise InvalidNameError(f"The {kind} must not be only white space.")
    return name


def validate_group_name(name: str) -> str:
    """Return ``name`` if it is a valid group name (1–1,024 characters, not all blank)."""
    return _validate("group name", name, allow_blank=False)


def validate_user_id(name: str) -> str:
    """Return ``name`` if it is a valid user id (1–1,024 characters, not all blank)."""
    return _validate("user id", name, allow_blank=False)


def validate_connection_id(name: str) -> str:
    """Return ``name`` if it is a valid connection id (1–1,024 characters, not all blank)."""
    return _validate("connection id", name, allow_blank=False)
