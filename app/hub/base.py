"""The base class of class-based hubs: :class:`ServerlessHub` (see :mod:`app.hub`)."""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from signalr_protocol.names import validate_hub_name
from signalr_protocol.upstream import (
    CATEGORY_CONNECTIONS,
    CATEGORY_MESSAGES,
    EVENT_CONNECTED,
    EVENT_DISCONNECTED,
)

from .api import ClientManager, GroupManager, HubClients, HubContext, UserGroupManager
from .binding import EventHandler, normalize_name
from .context import InvocationContext, NegotiateOptions, NegotiateRequest
from .filters import Filter, attached_filters
from .outbound import OutboundService

__all__ = ["ServerlessHub"]

_HANDLER_CACHE: weakref.WeakKeyDictionary[type[ServerlessHub], list[EventHandler]] = (
    weakref.WeakKeyDictionary()
)


class ServerlessHub:
    """Base class of class-based hubs; subclass it and add methods (see the module docs).

    An instance is created for each event, so keep per-connection state in the service
    (groups) or your own store, not on ``self``; instances are built with the keyword
    arguments below (per event, and for :meth:`negotiate`), so don't change ``__init__``'s
    signature.

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
            method_filters = attached_filters(member)
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
