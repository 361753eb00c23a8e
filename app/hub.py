"""The class-based hub model: write SignalR Service event handlers as Python methods.

This is the Python counterpart of the Functions extension's ``ServerlessHub`` and
``[SignalRTrigger]``. A client connected to the SignalR Service calls
``connection.invoke("sendToUser", "bob", "hi")``; the service POSTs a signed request to the
backend's webhook; the registry (:mod:`app.services.dispatcher`) finds the handler and runs it.

A hub is a subclass of :class:`ServerlessHub`::

    from app.hub import InvocationContext, ServerlessHub, require_role


    class Chat(ServerlessHub):
        hub_name = "chat"  # optional: defaults to the class name

        async def on_connected(self) -> None:
            await self.clients.all.send("newConnection", self.context.connection_id)

        async def send_to_user(self, user_id: str, text: str) -> None:
            await self.clients.user(user_id).send("newMessage", text)

        async def echo(self, value: object) -> object:
            return value  # becomes the completion's result

        @require_role("admin")
        async def shutdown(self, reason: str) -> None: ...

Rules, in the order the webhook applies them:

1. **Names.** The hub is named after the class (``hub_name`` overrides it) and matched
   case-insensitively. Every public method defined by the subclass (name not starting with
   ``_``) is a target of the ``messages`` category; a client target matches it
   case-insensitively, with camelCase matching snake_case (``sendToUser`` → ``send_to_user``).
   ``on_connected`` and ``on_disconnected`` handle the ``connections`` category;
   ``negotiate`` is the negotiation hook (below). Targets are computed once per class; two
   methods that differ only by case or underscores are a start-up error.
2. **Filters** (the ``SignalRFilterAttribute`` equivalent) run before the handler: first the
   hub-wide ``filters`` class attribute, then those attached with :func:`hub_filter` or
   :func:`require_role`, top decorator first. A filter takes the :class:`InvocationContext`
   (sync or async) and rejects by raising :class:`FilterRejectedError` (its message goes to
   the caller) or by returning ``False``. A rejected connect answers 403; a rejected
   invocation gives the caller an error completion.
3. **Binding.** Invocation arguments bind to the method's parameters in order and are
   validated and converted against the type hints with pydantic. A wrong count or type gives
   the caller an error completion naming the parameter and the reason
   (:class:`BindingError`). A parameter annotated :class:`InvocationContext` or
   :class:`HubContext` is injected instead of bound.
4. **Result.** The return value becomes the completion's result (pydantic models,
   dataclasses, dates and the like are converted to JSON-compatible values). A method that
   returns ``None`` without a non-``None`` return annotation completes without a result.
   A plain ``def`` runs in a worker thread, so it may block; it cannot ``await`` the hub
   API, so methods that send or manage groups are ``async def``.
5. **Errors.** A :class:`HubError` (or subclass) raised by a handler becomes an error
   completion carrying its message; any other exception becomes ``"Method execution
   failed."`` plus a log line with the connection id, so internals don't leak.

Inside a handler ``self.context`` is the :class:`InvocationContext` and ``self.clients``,
``self.groups``, ``self.user_groups`` and ``self.client_manager`` call the SignalR Service
REST API (through :class:`app.services.protocols.OutboundService`).

Plain functions work too, like ``[SignalRTrigger(hub, category, event, parameterNames)]``::

    @signalr_trigger(hub="chat", category="messages", event="shout", parameter_names=["text"])
    async def shout(context: InvocationContext, api: HubContext, text: str) -> None:
        await api.clients.all.send("newMessage", text.upper())

Hubs and functions are loaded from import strings listed in the ``SIGNALR_HUBS`` setting
(``"module:Class"``, ``"module:function"`` or a bare ``"module"`` to take every hub class and
trigger function it defines).

**Negotiation hook.** A hub may override ``async def negotiate(self, request:
NegotiateRequest) -> NegotiateOptions`` to choose the user id, claims and token lifetime
of the access token ``/api/{hub}/negotiate`` hands out — the class-based
``Negotiate(userId, claims, lifetime)``. The default keeps what the request carried.
Raising :class:`FilterRejectedError` refuses negotiation (403). Inside the hook
``self.context`` is not available (there is no connection yet) but the hub API is.
"""

from __future__ import annotations

import base64
import inspect
import logging
import typing
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property, partial
from typing import Any, ClassVar, TypeVar, overload
from urllib.parse import parse_qsl

import anyio.to_thread
from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_jsonable_python

from app.exceptions import BindingError, FilterRejectedError, HubError
from app.services.protocols import OutboundService
from signalr_protocol.names import validate_hub_name

__all__ = [
    "CATEGORY_CONNECTIONS",
    "CATEGORY_MESSAGES",
    "EVENT_CONNECTED",
    "EVENT_DISCONNECTED",
    "BindingError",
    "CaseInsensitiveMapping",
    "ClientManager",
    "ClientProxy",
    "EventHandler",
    "Filter",
    "FilterRejectedError",
    "GroupManager",
    "HubClients",
    "HubContext",
    "HubError",
    "InvocationContext",
    "NegotiateOptions",
    "NegotiateRequest",
    "ServerlessHub",
    "TriggerSpec",
    "UserGroupManager",
    "has_role",
    "hub_filter",
    "normalize_name",
    "parse_client_query",
    "parse_user_claims",
    "require_role",
    "signalr_trigger",
]

logger = logging.getLogger("app.hub")

CATEGORY_CONNECTIONS = "connections"
"""The category of connect and disconnect events."""
CATEGORY_MESSAGES = "messages"
"""The category of client invocations; the event is the invoked target."""
EVENT_CONNECTED = "connected"
"""The ``connections`` event sent when a client connects."""
EVENT_DISCONNECTED = "disconnected"
"""The ``connections`` event sent when a client disconnects."""

_ROLE_TYPES = ("role", "roles")
# Short JWT claim names and the long .NET ClaimTypes URIs they map to: the service (and
# the emulator, after ASP.NET Core's inbound mapping) may send either spelling.
_CLAIM_ALIASES: dict[str, tuple[str, ...]] = {
    "role": ("http://schemas.microsoft.com/ws/2008/06/identity/claims/role",),
    "nameid": ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",),
    "unique_name": ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",),
    "email": ("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",),
}
for _short, _longs in list(_CLAIM_ALIASES.items()):
    for _long in _longs:
        _CLAIM_ALIASES[_long] = (_short,)
# The client's own token; handlers have no use for it and must not log it.
_HIDDEN_QUERY_KEYS = frozenset({"access_token"})

F = TypeVar("F", bound=Callable[..., Any])
_T = TypeVar("_T")


# ---------------------------------------------------------------------------------------------
# Small value types
# ---------------------------------------------------------------------------------------------


class CaseInsensitiveMapping(Mapping[str, str]):
    """A read-only ``str -> str`` mapping whose keys are compared case-insensitively.

    Used for request headers and the parsed client query. Iteration yields lower-cased keys.

    Args:
        items: ``(key, value)`` pairs; values of repeated keys are joined with ``","``
            (as the Functions extension does).
    """

    __slots__ = ("_data",)

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        data: dict[str, str] = {}
        for key, value in items:
            lower = key.lower()
            previous = data.get(lower)
            data[lower] = value if previous is None else f"{previous},{value}"
        self._data = data

    def __getitem__(self, key: str) -> str:
        return self._data[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._data

    @overload
    def get(self, key: str, /) -> str | None: ...
    @overload
    def get(self, key: str, /, default: str | _T) -> str | _T: ...
    def get(self, key: str, /, default: Any = None) -> Any:
        """Return the value of ``key`` (any case), or ``default``.

        One dict lookup: the webhook reads a dozen headers per request through this.
        """
        return self._data.get(key.lower(), default) if isinstance(key, str) else default

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"CaseInsensitiveMapping({self._data!r})"


def parse_user_claims(header: str | None) -> tuple[tuple[str, str], ...]:
    """Parse ``X-ASRS-User-Claims`` into ``(type, value)`` pairs, keeping repeated types.

    The service writes each claim as ``type: value`` and joins them with ``", "``. A value
    may itself contain a comma, so a segment without ``": "`` is taken as the continuation
    of the previous value rather than a new claim (the Functions extension drops those).

    Args:
        header: the header value, or ``None``.

    Returns:
        The claims in header order; empty when the header is absent or empty.
    """
    if not header:
        return ()
    claims: list[tuple[str, str]] = []
    for segment in header.split(","):
        claim_type, sep, value = segment.partition(": ")
        claim_type = claim_type.strip()
        if sep and claim_type and " " not in claim_type:
            claims.append((claim_type, value))
        elif claims:
            last_type, last_value = claims[-1]
            claims[-1] = (last_type, f"{last_value},{segment}")
    return tuple(claims)


def parse_client_query(query: str | None) -> CaseInsensitiveMapping:
    """Parse ``X-ASRS-Client-Query`` (``?a=1&b=2``) into a case-insensitive mapping.

    Repeated keys are joined with ``","``. ``access_token`` is dropped: it is the client's
    own bearer token, which handlers have no use for and must not log.
    """
    if not query:
        return CaseInsensitiveMapping()
    pairs = parse_qsl(query.lstrip("?"), keep_blank_values=True)
    return CaseInsensitiveMapping(
        (key, value) for key, value in pairs if key.lower() not in _HIDDEN_QUERY_KEYS
    )


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


# ---------------------------------------------------------------------------------------------
# Hub API (outbound calls)
# ---------------------------------------------------------------------------------------------


def _to_wire(value: Any) -> Any:
    """Convert a value to what the hub protocols can carry (JSON types, plus bytes)."""
    if value is None or isinstance(value, str | int | float | bool | bytes):
        return value
    if isinstance(value, list | tuple):
        return [_to_wire(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _to_wire(item) for key, item in value.items()}
    return to_jsonable_python(value)


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
        await self._send(target, [_to_wire(argument) for argument in arguments])


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


# ---------------------------------------------------------------------------------------------
# Filters
# ---------------------------------------------------------------------------------------------

Filter = Callable[[InvocationContext], bool | None | Awaitable[bool | None]]
"""A filter: gets the context; rejects by raising FilterRejectedError or returning False."""

_FILTERS_ATTR = "__signalr_filters__"
_TRIGGER_ATTR = "__signalr_trigger__"


def hub_filter(*filters: Filter) -> Callable[[F], F]:
    """Attach filters to a hub method or trigger function.

    Filters run before the handler, in the order written (the top decorator's first).
    Hub-wide filters (the ``filters`` class attribute) run before these.

    Args:
        *filters: callables taking the :class:`InvocationContext`, sync or async, that
            reject by raising :class:`FilterRejectedError` or by returning ``False``.

    Returns:
        A decorator returning the function unchanged apart from the attached filters.
    """

    def decorate(func: F) -> F:
        existing: tuple[Filter, ...] = getattr(func, _FILTERS_ATTR, ())
        setattr(func, _FILTERS_ATTR, (*filters, *existing))
        return func

    return decorate


def has_role(*roles: str) -> Filter:
    """Return a filter that lets a call through only if the token carries one of ``roles``.

    Use it in a hub's ``filters`` attribute; :func:`require_role` is the decorator form.

    Raises:
        ValueError: no role was given.
    """
    if not roles:
        raise ValueError("has_role() needs at least one role.")
    wanted = frozenset(roles)
    names = " or ".join(repr(role) for role in roles)

    def check_role(context: InvocationContext) -> None:
        if wanted.isdisjoint(context.roles):
            raise FilterRejectedError(f"Unauthorized: the role {names} is required.")

    check_role.__qualname__ = f"has_role({names})"
    return check_role


def require_role(*roles: str) -> Callable[[F], F]:
    """Decorator: only callers whose token carries one of ``roles`` may call the method.

    Anyone else's invocation gets an error completion (or a 403 for ``on_connected``).
    """
    return hub_filter(has_role(*roles))


async def _run_filters(filters: Sequence[Filter], context: InvocationContext) -> None:
    for check in filters:
        outcome = check(context)
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome is False:
            raise FilterRejectedError("The call was rejected.")


# ---------------------------------------------------------------------------------------------
# Handlers: binding and running
# ---------------------------------------------------------------------------------------------


def normalize_name(name: str) -> str:
    """Return the lookup key of a target: lower-cased, underscores removed.

    So ``sendToUser``, ``SendToUser`` and ``send_to_user`` all match.
    """
    return name.replace("_", "").lower()


@dataclass(frozen=True, slots=True)
class _Param:
    """One bindable parameter: where its value comes from and how it is validated."""

    name: str
    kind: inspect._ParameterKind
    adapter: TypeAdapter[Any] | None  # None: Any / unannotated, passed through unchanged
    has_default: bool
    inject: str | None  # "context" | "hub" | None (bound from the arguments)
    base64: bool = False  # a ``bytes`` parameter: JSON clients send base64 text


@dataclass(frozen=True, slots=True)
class TriggerSpec:
    """The registration :func:`signalr_trigger` attaches to a function.

    Attributes:
        hub: the hub name.
        category: ``"connections"`` or ``"messages"``.
        event: ``"connected"``, ``"disconnected"`` or the target name.
        parameter_names: names of the function parameters the invocation arguments bind to,
            in order (the ``ParameterNames`` of ``[SignalRTrigger]``).
    """

    hub: str
    category: str
    event: str
    parameter_names: tuple[str, ...] = ()


def _check_category_event(category: str, event: str) -> tuple[str, str]:
    category = category.lower()
    if category == CATEGORY_CONNECTIONS:
        if event.lower() not in (EVENT_CONNECTED, EVENT_DISCONNECTED):
            raise ValueError(
                f"Event {event!r} is not a connections event: use 'connected' or 'disconnected'."
            )
        return category, event.lower()
    if category != CATEGORY_MESSAGES:
        raise ValueError(f"Category {category!r} is unknown: use 'connections' or 'messages'.")
    if not event:
        raise ValueError("A messages trigger needs an event (the target name).")
    return category, event


def signalr_trigger(
    *, hub: str, category: str, event: str, parameter_names: Sequence[str] = ()
) -> Callable[[F], F]:
    """Register a plain function as a handler, like ``[SignalRTrigger]``.

    The function may be sync or async. Parameters annotated :class:`InvocationContext` or
    :class:`HubContext` are injected. With ``parameter_names``, the invocation's arguments
    bind by position to the parameters with those names (the count must match exactly);
    without, they bind in order to the remaining parameters, as for hub methods. Filters
    attached with :func:`hub_filter` apply. List the function in ``SIGNALR_HUBS``
    (``"module:function"``) so the registry loads it.

    Args:
        hub: the hub name.
        category: ``"connections"`` or ``"messages"``.
        event: ``"connected"`` / ``"disconnected"``, or the target name for messages.
        parameter_names: parameter names the arguments bind to, in order.

    Returns:
        A decorator returning the function unchanged apart from the attached registration.

    Raises:
        ValueError: bad category, event or duplicate parameter names.
        InvalidNameError: the hub name breaks the service's rule.
    """
    validate_hub_name(hub)
    category, event = _check_category_event(category, event)
    names = tuple(parameter_names)
    if len({normalize_name(n) for n in names}) != len(names):
        raise ValueError(f"parameter_names {list(names)} repeats a name (case-insensitively).")
    spec = TriggerSpec(hub=hub, category=category, event=event, parameter_names=names)

    def decorate(func: F) -> F:
        setattr(func, _TRIGGER_ATTR, spec)
        return func

    return decorate


def _signature_params(
    func: Callable[..., Any], owner: str, *, skip_first: bool
) -> tuple[list[_Param], bool]:
    """Inspect ``func`` once: its parameters with validators, and whether it returns void."""
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception as exc:  # NameError for unresolved forward references, mostly
        raise TypeError(f"Cannot resolve the type hints of {owner}: {exc}") from exc
    params = list(inspect.signature(func).parameters.values())
    if skip_first:
        params = params[1:]
    result: list[_Param] = []
    for param in params:
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            continue
        hint = hints.get(param.name, Any)
        inject: str | None = None
        if hint is InvocationContext:
            inject = "context"
        elif hint is HubContext:
            inject = "hub"
        adapter: TypeAdapter[Any] | None = None
        if inject is None and hint is not Any:
            try:
                adapter = TypeAdapter(hint)
            except Exception as exc:
                raise TypeError(
                    f"Parameter {param.name!r} of {owner} has a type pydantic cannot "
                    f"validate: {exc}"
                ) from exc
        result.append(
            _Param(
                name=param.name,
                kind=param.kind,
                adapter=adapter,
                has_default=param.default is not inspect.Parameter.empty,
                inject=inject,
                base64=hint is bytes,
            )
        )
    returns = hints.get("return", inspect.Signature.empty)
    void = returns in (None, type(None), inspect.Signature.empty)
    return result, void


def _format_validation_error(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{first['msg']}{f' (at {where})' if where else ''}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class EventHandler:
    """One handler bound to ``(hub, category, event)``: binds arguments, filters, runs.

    Built by the registry from hub classes and trigger functions; hub authors don't use it.

    Args:
        hub: the hub name.
        category: ``"connections"`` or ``"messages"``.
        event: the event or target name (as declared).
        func: the function to call (for hub methods: the unbound method).
        hub_class: the hub class for methods (an instance is made per event), else ``None``.
        filters: filters to run first, in order.
        parameter_names: the trigger's ``parameter_names`` (functions only).
        implicit: a base-class no-op (``on_connected`` not overridden) that an explicit
            trigger function for the same event may replace.
    """

    def __init__(
        self,
        *,
        hub: str,
        category: str,
        event: str,
        func: Callable[..., Any],
        hub_class: type[ServerlessHub] | None = None,
        filters: Sequence[Filter] = (),
        parameter_names: Sequence[str] = (),
        implicit: bool = False,
    ) -> None:
        self.hub = hub
        self.implicit = implicit
        self.category = category
        self.event = event
        self.func = func
        self.hub_class = hub_class
        self.filters = tuple(filters)
        owner = f"{hub_class.__name__}.{func.__name__}" if hub_class else func.__qualname__
        self.owner = owner
        params, self.void = _signature_params(func, owner, skip_first=hub_class is not None)
        self.is_async = inspect.iscoroutinefunction(func)
        self._params = params
        self._names = tuple(parameter_names)
        self._bound = self._plan_binding(params)
        self._variadic = next(
            (p for p in params if p.kind is inspect.Parameter.VAR_POSITIONAL and not p.inject),
            None,
        )
        self._required = sum(1 for p in self._bound if not p.has_default)

    def _plan_binding(self, params: list[_Param]) -> tuple[_Param, ...]:
        """Return the parameters invocation arguments bind to, in argument order."""
        bindable = [
            p
            for p in params
            if p.inject is None
            and p.kind
            in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        ]
        listed_keys = {normalize_name(n) for n in self._names}
        for p in params:
            if p.inject is None and p.kind is inspect.Parameter.KEYWORD_ONLY and not p.has_default:
                if normalize_name(p.name) not in listed_keys:
                    raise TypeError(
                        f"Keyword-only parameter {p.name!r} of {self.owner} can't be bound: "
                        "give it a default or list it in parameter_names."
                    )
        if not self._names:
            return tuple(bindable)
        by_key = {normalize_name(p.name): p for p in params if p.inject is None}
        bound: list[_Param] = []
        for name in self._names:
            param = by_key.get(normalize_name(name))
            if param is None or param.kind is inspect.Parameter.VAR_POSITIONAL:
                raise TypeError(
                    f"parameter_names lists {name!r} but {self.owner} has no such parameter."
                )
            bound.append(param)
        listed = {p.name for p in bound}
        for p in bindable:
            if p.name not in listed and not p.has_default:
                raise TypeError(
                    f"Parameter {p.name!r} of {self.owner} is not in parameter_names and has "
                    "no default."
                )
        # With parameter_names the count must match exactly, as in the Functions extension.
        return tuple(
            _Param(p.name, inspect.Parameter.KEYWORD_ONLY, p.adapter, False, None, p.base64)
            for p in bound
        )

    def describe_parameters(self) -> str:
        """Return ``"(a, b)"``: the bindable parameter names, for error messages."""
        names = [p.name for p in self._bound]
        if self._variadic is not None:
            names.append(f"*{self._variadic.name}")
        return f"({', '.join(names)})"

    def bind(self, context: InvocationContext, api: HubContext) -> tuple[list[Any], dict[str, Any]]:
        """Bind and validate ``context.arguments``; return ``(args, kwargs)`` for the call.

        Raises:
            BindingError: wrong number of arguments, or one fails validation; the message
                names the parameter and the reason.
        """
        arguments = context.arguments
        count = len(arguments)
        maximum = None if self._variadic is not None else len(self._bound)
        if count < self._required or (maximum is not None and count > maximum):
            if self._names or maximum == self._required:
                expected = _plural(len(self._bound), "argument")
            elif maximum is None:
                expected = f"at least {_plural(self._required, 'argument')}"
            else:
                expected = f"{self._required} to {maximum} arguments"
            raise BindingError(
                f"'{context.event}' expects {expected} {self.describe_parameters()} "
                f"but got {count}."
            )
        values: dict[str, Any] = {}
        for index, param in enumerate(self._bound[:count]):
            values[param.name] = self._validate(param, arguments[index], index, context)
        extra: list[Any] = []
        if self._variadic is not None:
            for index in range(len(self._bound), count):
                extra.append(self._validate(self._variadic, arguments[index], index, context))
        args: list[Any] = []
        kwargs: dict[str, Any] = {}
        skipped = False  # after a parameter left to its default, pass the rest by name
        for param in self._params:
            if param.inject == "context":
                value: Any = context
            elif param.inject == "hub":
                value = api
            elif param.kind is inspect.Parameter.VAR_POSITIONAL:
                args.extend(extra)
                continue
            elif param.name in values:
                value = values[param.name]
            else:
                skipped = True  # left to its default
                continue
            if param.kind is inspect.Parameter.KEYWORD_ONLY or (
                (self._names or skipped) and param.kind is not inspect.Parameter.POSITIONAL_ONLY
            ):
                kwargs[param.name] = value
            else:
                args.append(value)
        return args, kwargs

    @staticmethod
    def _validate(param: _Param, value: Any, index: int, context: InvocationContext) -> Any:
        if param.adapter is None:
            return value
        where = f"Argument {index + 1} ('{param.name}') of '{context.event}' is invalid"
        if param.base64 and isinstance(value, str) and context.protocol == "json":
            # The JSON hub protocol carries byte arrays as base64 text.
            try:
                return base64.b64decode(value, validate=True)
            except ValueError:
                raise BindingError(f"{where}: expected base64-encoded bytes.") from None
        try:
            return param.adapter.validate_python(value)
        except ValidationError as exc:
            raise BindingError(f"{where}: {_format_validation_error(exc)}") from None

    async def run(self, context: InvocationContext, service: OutboundService) -> tuple[Any, bool]:
        """Run filters, bind arguments and call the handler.

        Args:
            context: the event.
            service: the outbound client the hub API uses.

        Returns:
            ``(result, has_result)``: the wire-ready return value, and whether the
            completion should carry it (``False`` for a void method that returned ``None``).

        Raises:
            FilterRejectedError: a filter refused the call.
            BindingError: the arguments don't fit.
            Exception: whatever the handler raised.
        """
        await _run_filters(self.filters, context)
        if self.hub_class is not None:
            instance = self.hub_class(service=service, context=context)
            api: HubContext = instance._hub_context
            call: Callable[..., Any] = partial(self.func, instance)
        else:
            api = HubContext(service, self.hub, context.connection_id)
            call = self.func
        args, kwargs = self.bind(context, api)
        if self.is_async:
            result = await call(*args, **kwargs)
        else:
            result = await anyio.to_thread.run_sync(partial(call, *args, **kwargs))
            if inspect.isawaitable(result):
                result = await result
        if result is None and self.void:
            return None, False
        return _to_wire(result), True


# ---------------------------------------------------------------------------------------------
# The hub base class
# ---------------------------------------------------------------------------------------------

_HANDLER_CACHE: weakref.WeakKeyDictionary[type[ServerlessHub], list[EventHandler]] = (
    weakref.WeakKeyDictionary()
)


class ServerlessHub:
    """Base class of class-based hubs; subclass it and add methods (see the module docs).

    An instance is created for each event, so keep per-connection state in the service
    (groups) or your own store, not on ``self``; the registry builds instances with the
    keyword arguments below, so don't change ``__init__``'s signature.

    Attributes:
        hub_name: the hub name; ``None`` (default) uses the class name.
        filters: filters applied to every event of the hub, before per-method ones.

    Args:
        service: the outbound SignalR Service client.
        context: the event being handled; ``None`` during :meth:`negotiate`.
    """

    hub_name: ClassVar[str | None] = None
    filters: ClassVar[Sequence[Filter]] = ()

    def __init__(
        self, *, service: OutboundService, context: InvocationContext | None = None
    ) -> None:
        self._context = context
        self._hub_context = HubContext(
            service, self.name(), context.connection_id if context else None
        )

    @classmethod
    def name(cls) -> str:
        """The hub's name: ``hub_name`` if set, else the class name."""
        return cls.hub_name or cls.__name__

    @property
    def context(self) -> InvocationContext:
        """The event being handled.

        Raises:
            RuntimeError: during :meth:`negotiate`, where there is no connection yet.
        """
        if self._context is None:
            raise RuntimeError("There is no invocation context during negotiate.")
        return self._context

    @property
    def clients(self) -> HubClients:
        """Choose receivers and send: ``await self.clients.all.send("target", arg)``."""
        return self._hub_context.clients

    @property
    def groups(self) -> GroupManager:
        """Connection ↔ group membership."""
        return self._hub_context.groups

    @property
    def user_groups(self) -> UserGroupManager:
        """User ↔ group membership, with optional TTL."""
        return self._hub_context.user_groups

    @property
    def client_manager(self) -> ClientManager:
        """Close connections; check connections, users and groups exist."""
        return self._hub_context.client_manager

    async def on_connected(self) -> None:
        """Override to handle a client connecting. Raise to refuse it (403)."""

    async def on_disconnected(self) -> None:
        """Override to handle a client disconnecting; ``self.context.error`` says why."""

    async def negotiate(self, request: NegotiateRequest) -> NegotiateOptions:
        """Override to shape the client access token handed out by negotiate.

        Args:
            request: who is negotiating (user id, claims, headers, query).

        Returns:
            The user id, claims and lifetime to put in the token. The default keeps the
            request's user id and claims and the configured lifetime.

        Raises:
            FilterRejectedError: to refuse the negotiation (403).
        """
        return NegotiateOptions(user_id=request.user_id, claims=tuple(request.claims))

    @classmethod
    def event_handlers(cls) -> list[EventHandler]:
        """The handlers of this hub class, computed once per class.

        Raises:
            TypeError: two methods map to the same target, or a type hint can't be used.
            InvalidNameError: the hub name breaks the service's rule.
        """
        cached = _HANDLER_CACHE.get(cls)
        if cached is not None:
            return cached
        hub = validate_hub_name(cls.name())
        handlers: list[EventHandler] = []
        seen: dict[str, str] = {}
        for attr, member in _hub_methods(cls):
            if attr == "negotiate":
                continue
            if attr == "on_connected":
                category, event = CATEGORY_CONNECTIONS, EVENT_CONNECTED
            elif attr == "on_disconnected":
                category, event = CATEGORY_CONNECTIONS, EVENT_DISCONNECTED
            else:
                category, event = CATEGORY_MESSAGES, attr
                key = normalize_name(attr)
                if key in seen:
                    raise TypeError(
                        f"{cls.__name__}.{attr} and {cls.__name__}.{seen[key]} both match "
                        f"target {key!r} (names match case-insensitively, ignoring '_')."
                    )
                seen[key] = attr
            method_filters: tuple[Filter, ...] = getattr(member, _FILTERS_ATTR, ())
            handlers.append(
                EventHandler(
                    hub=hub,
                    category=category,
                    event=event,
                    func=member,
                    hub_class=cls,
                    filters=(*cls.filters, *method_filters),
                )
            )
        for attr, event in (
            ("on_connected", EVENT_CONNECTED),
            ("on_disconnected", EVENT_DISCONNECTED),
        ):
            if not any(h.event == event and h.category == CATEGORY_CONNECTIONS for h in handlers):
                # Not overridden: the base no-op still runs the hub-wide filters, so a filter
                # can refuse connects; a trigger function may replace it (implicit).
                handlers.append(
                    EventHandler(
                        hub=hub,
                        category=CATEGORY_CONNECTIONS,
                        event=event,
                        func=getattr(ServerlessHub, attr),
                        hub_class=cls,
                        filters=tuple(cls.filters),
                        implicit=True,
                    )
                )
        _HANDLER_CACHE[cls] = handlers
        return handlers


def _hub_methods(cls: type[ServerlessHub]) -> list[tuple[str, Callable[..., Any]]]:
    """Public functions defined by ``cls`` and its bases below :class:`ServerlessHub`."""
    found: dict[str, Callable[..., Any]] = {}
    for klass in reversed(cls.__mro__):
        if klass is ServerlessHub or not issubclass(klass, ServerlessHub):
            continue
        for attr, member in vars(klass).items():
            if attr.startswith("_") or not inspect.isfunction(member):
                continue
            found[attr] = member
    return sorted(found.items())
