"""The hub registry: every hub handler of the app, loaded once, looked up per event.

:class:`HubRegistry` holds every :class:`~app.hub.binding.EventHandler`, keyed by
``(hub, category, event)`` and matched case-insensitively (message targets also
camelCase ↔ snake_case). It loads hub classes and trigger functions from import strings
(the ``SIGNALR_HUBS`` setting), refuses duplicates at start-up, holds the outbound service
the hub API calls, and runs a hub class's ``negotiate`` hook.

Two edges use it: the webhook (:mod:`app.services.webhook`) looks handlers up, and
negotiate (:mod:`app.services.negotiation`) asks whether a hub exists and lets its hook
shape the access token.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from app.exceptions import ConfigurationError
from app.hub import NegotiateOptions, NegotiateRequest, ServerlessHub
from app.hub.binding import EventHandler, normalize_name
from app.hub.filters import attached_filters
from app.hub.outbound import OutboundService
from app.hub.triggers import trigger_of
from signalr_protocol.errors import InvalidNameError
from signalr_protocol.upstream import CATEGORY_MESSAGES, CaseInsensitiveMapping

from .principal import Identity

if TYPE_CHECKING:
    from app.settings import Settings

__all__ = ["HubRegistry"]


class _NoService:
    """Stands in for the outbound service before one is attached; every call fails."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(
            "HubRegistry has no outbound service: call registry.bind(service) first."
        )


def _event_key(category: str, event: str) -> str:
    return normalize_name(event) if category == CATEGORY_MESSAGES else event.lower()


class HubRegistry:
    """Every hub handler of the app, and the outbound service they call.

    Build it once at start-up (:meth:`from_settings`) and attach the outbound service
    (:meth:`bind`) when it is open.

    Args:
        service: the outbound SignalR Service client the hub API calls; may be attached
            later with :meth:`bind`.
    """

    def __init__(self, *, service: OutboundService | None = None) -> None:
        self.service: OutboundService | None = service
        self._handlers: dict[tuple[str, str, str], EventHandler] = {}
        self._hubs: dict[str, str] = {}  # lower-cased name -> declared name
        self._classes: dict[str, type[ServerlessHub]] = {}

    @classmethod
    def from_settings(
        cls, settings: Settings, service: OutboundService | None = None
    ) -> HubRegistry:
        """Build the registry and load every import string of ``settings.hubs``.

        Raises:
            ConfigurationError: a hub can't be imported, is invalid, or duplicates another.
        """
        registry = cls(service=service)
        for spec in settings.hubs:
            try:
                registry.load(spec)
            except ConfigurationError as exc:
                # Name the setting: the first thing a new user needs to know is where to look.
                raise ConfigurationError(f"SIGNALR_HUBS ({spec.strip()!r}): {exc}") from exc
        return registry

    # ------------------------------------------------------------------ registration

    def load_all(self, specs: Iterable[str]) -> None:
        """Load every import string (see :meth:`load`)."""
        for spec in specs:
            self.load(spec)

    def load(self, spec: str) -> None:
        """Load hubs from an import string.

        ``"module:Class"`` registers a :class:`ServerlessHub` subclass, ``"module:function"``
        a function decorated with :func:`app.hub.signalr_trigger`, and ``"module"`` every
        hub class and trigger function defined in that module.

        Raises:
            ConfigurationError: the module or attribute doesn't exist, is not a hub, or a
                handler duplicates one already registered.
        """
        module_name, _, attr = spec.strip().partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            raise ConfigurationError(f"Cannot import hub module {module_name!r}: {exc}") from exc
        if not attr:
            found = False
            for value in list(vars(module).values()):
                if getattr(value, "__module__", None) != module.__name__:
                    continue
                if _is_hub_class(value) or trigger_of(value) is not None:
                    self._add(value, spec)
                    found = True
            if not found:
                raise ConfigurationError(
                    f"Module {module_name!r} defines no ServerlessHub subclass and no "
                    "@signalr_trigger function."
                )
            return
        target: Any = module
        for part in attr.split("."):
            try:
                target = getattr(target, part)
            except AttributeError:
                raise ConfigurationError(
                    f"Hub {spec!r}: module {module_name!r} has no attribute {attr!r}."
                ) from None
        self._add(target, spec)

    def _add(self, target: Any, spec: str) -> None:
        if _is_hub_class(target):
            self.add_hub(target)
        elif trigger_of(target) is not None:
            self.add_function(target)
        else:
            raise ConfigurationError(
                f"Hub {spec!r} is neither a ServerlessHub subclass nor a @signalr_trigger function."
            )

    def add_hub(self, hub_class: type[ServerlessHub]) -> None:
        """Register every handler of a hub class.

        Raises:
            ConfigurationError: the class is invalid or a handler is already registered.
        """
        try:
            handlers = hub_class.event_handlers()
        except (TypeError, ValueError, InvalidNameError) as exc:
            raise ConfigurationError(f"Hub class {hub_class.__qualname__}: {exc}") from exc
        key = hub_class.name().lower()
        other = self._classes.get(key)
        if other is not None and other is not hub_class:
            raise ConfigurationError(
                f"Hub {hub_class.name()!r} is defined twice: {other.__qualname__} and "
                f"{hub_class.__qualname__}."
            )
        self._classes[key] = hub_class
        for handler in handlers:
            self._register(handler)

    def add_function(self, func: Any) -> None:
        """Register a function decorated with :func:`app.hub.signalr_trigger`.

        Raises:
            ConfigurationError: not decorated, bad signature, or already registered.
        """
        spec = trigger_of(func)
        if spec is None:
            raise ConfigurationError(f"{func!r} is not decorated with @signalr_trigger.")
        try:
            handler = EventHandler(
                hub=spec.hub,
                category=spec.category,
                event=spec.event,
                func=func,
                filters=attached_filters(func),
                parameter_names=spec.parameter_names,
            )
        except (TypeError, ValueError) as exc:
            raise ConfigurationError(f"Trigger function {func.__qualname__}: {exc}") from exc
        self._register(handler)

    def _register(self, handler: EventHandler) -> None:
        key = (handler.hub.lower(), handler.category, _event_key(handler.category, handler.event))
        existing = self._handlers.get(key)
        if existing is not None and existing.func is not handler.func:
            if handler.implicit:
                return
            if not existing.implicit:
                raise ConfigurationError(
                    f"Two handlers for hub {handler.hub!r}, category {handler.category!r}, "
                    f"event {handler.event!r}: {existing.owner} and {handler.owner}."
                )
        self._handlers[key] = handler
        self._hubs.setdefault(handler.hub.lower(), handler.hub)

    # ------------------------------------------------------------------ lookups

    @property
    def hub_names(self) -> list[str]:
        """The registered hub names, as declared."""
        return sorted(self._hubs.values())

    def has_hub(self, name: str) -> bool:
        """Whether a hub of that name (case-insensitive) has any handler."""
        return name.lower() in self._hubs

    def handler(self, hub: str, category: str, event: str) -> EventHandler | None:
        """Return the handler for ``(hub, category, event)``, matched case-insensitively."""
        category = category.lower()
        return self._handlers.get((hub.lower(), category, _event_key(category, event)))

    # ------------------------------------------------------------------ outbound service

    def bind(self, service: OutboundService) -> None:
        """Attach the outbound service the hub API calls (done by the app's lifespan)."""
        self.service = service

    @property
    def outbound(self) -> OutboundService:
        """The attached outbound service; before :meth:`bind`, one whose every call fails."""
        if self.service is None:
            return _NoService()
        return self.service

    # ------------------------------------------------------------------ negotiate hook

    async def shape_negotiation(
        self,
        hub: str,
        identity: Identity,
        headers: Mapping[str, str],
        query: Mapping[str, str],
    ) -> NegotiateOptions | None:
        """Run the hub class's ``negotiate`` hook, if it overrides one.

        The negotiator (:class:`app.services.negotiation.Negotiator`) calls this; ``None``
        means "keep the defaults" (no class, or the hook is not overridden).

        Args:
            hub: the hub name from the negotiate URL.
            identity: who is negotiating (``user_id`` and ``claims``).
            headers: the negotiate request's headers.
            query: the negotiate request's query parameters.

        Raises:
            FilterRejectedError: the hook refused the negotiation (403).
        """
        hub_class = self._classes.get(hub.lower())
        if hub_class is None or hub_class.negotiate is ServerlessHub.negotiate:
            return None
        request = NegotiateRequest(
            user_id=identity.user_id,
            claims=list(identity.claims),
            headers=_case_insensitive(headers),
            query=_case_insensitive(query),
        )
        return await self.negotiate_options(hub, request)

    async def negotiate_options(self, hub: str, request: NegotiateRequest) -> NegotiateOptions:
        """Let the hub class shape the access token of a negotiating client.

        Hubs without a class (functions only) and unknown hubs keep the request's user id
        and claims.

        Raises:
            FilterRejectedError: the hub refused the negotiation (answer 403).
        """
        hub_class = self._classes.get(hub.lower())
        if hub_class is None:
            return NegotiateOptions(user_id=request.user_id, claims=tuple(request.claims))
        instance = hub_class(service=self.outbound)
        return await instance.negotiate(request)


def _case_insensitive(mapping: Mapping[str, str]) -> Mapping[str, str]:
    if isinstance(mapping, CaseInsensitiveMapping):
        return mapping
    items = getattr(mapping, "multi_items", None)  # Starlette keeps repeated keys
    return CaseInsensitiveMapping(items() if callable(items) else mapping.items())


def _is_hub_class(value: Any) -> bool:
    return (
        inspect.isclass(value) and issubclass(value, ServerlessHub) and value is not ServerlessHub
    )
