"""Plain functions as handlers: :func:`signalr_trigger`, the ``[SignalRTrigger]`` equivalent."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

from signalr_protocol.names import validate_hub_name
from signalr_protocol.upstream import (
    CATEGORY_CONNECTIONS,
    CATEGORY_MESSAGES,
    EVENT_CONNECTED,
    EVENT_DISCONNECTED,
)

from .binding import normalize_name

__all__ = ["TriggerSpec", "signalr_trigger", "trigger_of"]

F = TypeVar("F", bound=Callable[..., Any])

_TRIGGER_ATTR: Final = "__signalr_trigger__"


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


def trigger_of(value: Any) -> TriggerSpec | None:
    """The registration :func:`signalr_trigger` attached to ``value``, or ``None``."""
    spec = getattr(value, _TRIGGER_ATTR, None) if callable(value) else None
    return spec if isinstance(spec, TriggerSpec) else None
