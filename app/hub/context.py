"""What a handler knows: the event it handles, and who is negotiating.

:class:`InvocationContext` is built by the webhook from the decoded ``X-ASRS-*`` headers
(:func:`signalr_protocol.upstream.parse_upstream_headers`) and the body; this module only
reads it. :class:`NegotiateRequest` and :class:`NegotiateOptions` are the two sides of a
hub's ``negotiate`` hook.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

from signalr_protocol.upstream import CaseInsensitiveMapping

__all__ = ["InvocationContext", "NegotiateOptions", "NegotiateRequest"]

_ROLE_TYPES: Final = ("role", "roles")
# Short JWT claim names and the long .NET ClaimTypes URIs they map to: the service (and
# the emulator, after ASP.NET Core's inbound mapping) may send either spelling.
_CLAIM_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "role": ("http://schemas.microsoft.com/ws/2008/06/identity/claims/role",),
    "nameid": ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",),
    "unique_name": ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",),
    "email": ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",),
}
for _short, _longs in list(_CLAIM_ALIASES.items()):
    for _long in _longs:
        _CLAIM_ALIASES[_long] = (_short,)


@dataclass(frozen=True, slots=True, kw_only=True)
class InvocationContext:
    """What a handler knows about the event it handles (the Functions ``InvocationContext``).

    Attributes:
        connection_id: the calling client's connection id (``X-ASRS-Connection-Id``).
        hub: the hub name as the service sent it (``X-ASRS-Hub``, usually lower-case).
        category: ``"connections"`` or ``"messages"``.
        event: ``"connected"``, ``"disconnected"`` or the invoked target as the client spelt it.
        user_id: the connection's user id, or ``None`` for anonymous connections.
        claims: every claim of the connection's token as ``(type, value)`` pairs, repeated
            types kept (use :meth:`claim`, :meth:`claims_of`, :attr:`roles`).
        headers: every request header, case-insensitive.
        query: the client's connect query string (``X-ASRS-Client-Query``), parsed,
            case-insensitive, without ``access_token``.
        arguments: the invocation's raw arguments (before binding); empty for connection events.
        invocation_id: set when the client awaits a completion (``invoke``), ``None`` for
            ``send`` and connection events.
        error: the disconnect error, or ``None`` for a clean close and other events.
        protocol: the client's hub protocol, ``"json"`` or ``"messagepack"``.
    """

    connection_id: str
    hub: str
    category: str
    event: str
    user_id: str | None = None
    claims: tuple[tuple[str, str], ...] = ()
    headers: Mapping[str, str] = field(default_factory=CaseInsensitiveMapping)
    query: Mapping[str, str] = field(default_factory=CaseInsensitiveMapping)
    arguments: tuple[Any, ...] = ()
    invocation_id: str | None = None
    error: str | None = None
    protocol: str = "json"

    def claims_of(self, claim_type: str) -> list[str]:
        """Return every value of a claim type, in token order.

        Types are compared case-insensitively, and the short JWT names ``role``, ``nameid``,
        ``unique_name`` and ``email`` also match their long .NET ``ClaimTypes`` URIs.
        """
        wanted = {claim_type.lower(), *(a.lower() for a in _CLAIM_ALIASES.get(claim_type, ()))}
        return [value for ctype, value in self.claims if ctype.lower() in wanted]

    def claim(self, claim_type: str) -> str | None:
        """Return the first value of a claim type, or ``None`` (see :meth:`claims_of`)."""
        values = self.claims_of(claim_type)
        return values[0] if values else None

    @property
    def roles(self) -> list[str]:
        """The connection's roles: every ``role`` / ``roles`` claim value (long form too)."""
        roles: list[str] = []
        for claim_type in _ROLE_TYPES:
            roles.extend(self.claims_of(claim_type))
        return roles

    def is_in_role(self, role: str) -> bool:
        """Whether the connection's token carries ``role`` (exact, case-sensitive match)."""
        return role in self.roles


@dataclass(frozen=True, slots=True)
class NegotiateRequest:
    """What the negotiate endpoint knows about the client, passed to a hub's hook.

    Attributes:
        user_id: the user id found for the caller (App Service authentication or the
            development header), or ``None``.
        claims: the claims found for the caller as ``(type, value)`` pairs.
        headers: the negotiate request's headers, case-insensitive.
        query: the negotiate request's query parameters, case-insensitive.
    """

    user_id: str | None
    claims: Sequence[tuple[str, str]] = ()
    headers: Mapping[str, str] = field(default_factory=CaseInsensitiveMapping)
    query: Mapping[str, str] = field(default_factory=CaseInsensitiveMapping)


@dataclass(frozen=True, slots=True)
class NegotiateOptions:
    """How a hub wants the client access token built (``Negotiate(userId, claims, lifetime)``).

    Attributes:
        user_id: the user id to put in the token (``asrs.s.uid``), or ``None`` for anonymous.
        claims: extra claims as ``(type, value)`` pairs; repeat a type for several values
            (e.g. two ``("role", ...)`` pairs).
        lifetime: the token lifetime, or ``None`` for the configured default.
    """

    user_id: str | None = None
    claims: Sequence[tuple[str, Any]] = ()
    lifetime: timedelta | None = None
