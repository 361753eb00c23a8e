"""The class-based hub model: write SignalR Service event handlers as Python methods.

This is the Python counterpart of the Functions extension's ``ServerlessHub`` and
``[SignalRTrigger]``. A client connected to the SignalR Service calls
``connection.invoke("sendToUser", "bob", "hi")``; the service POSTs a signed request to the
backend's webhook (:mod:`app.services.webhook`); the registry (:mod:`app.services.registry`)
finds the handler and the webhook runs it.

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
   (:class:`~app.exceptions.BindingError`). A parameter annotated :class:`InvocationContext` or
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
REST API (through :class:`app.hub.outbound.OutboundService`).

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

Where things are: this module is the public face; :mod:`app.hub.base` holds
:class:`ServerlessHub`, :mod:`app.hub.context` the context types, :mod:`app.hub.filters` the
filters, :mod:`app.hub.triggers` :func:`signalr_trigger`, :mod:`app.hub.api` the hub API
proxies, :mod:`app.hub.binding` the binding engine and :mod:`app.hub.outbound` the interface
of the outbound service the hub API calls.
"""

from __future__ import annotations

from app.exceptions import FilterRejectedError, HubError

from .api import HubContext
from .base import ServerlessHub
from .context import InvocationContext, NegotiateOptions, NegotiateRequest
from .filters import Filter, has_role, hub_filter, require_role
from .outbound import GroupMember
from .triggers import signalr_trigger

__all__ = [
    "Filter",
    "FilterRejectedError",
    "GroupMember",
    "HubContext",
    "HubError",
    "InvocationContext",
    "NegotiateOptions",
    "NegotiateRequest",
    "ServerlessHub",
    "has_role",
    "hub_filter",
    "require_role",
    "signalr_trigger",
]
