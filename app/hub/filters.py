"""Filters: checks that run before a handler (the Functions ``SignalRFilterAttribute``).

A filter takes the :class:`~app.hub.InvocationContext` (sync or async) and refuses the call
by raising :class:`~app.exceptions.FilterRejectedError` (its message goes to the caller) or
by returning ``False``. Hub-wide filters (a hub's ``filters`` class attribute) run first,
then those attached with :func:`hub_filter` or :func:`require_role`, top decorator first.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final, TypeVar

from app.exceptions import FilterRejectedError

from .context import InvocationContext

__all__ = ["Filter", "attached_filters", "has_role", "hub_filter", "require_role", "run_filters"]

Filter = Callable[[InvocationContext], bool | None | Awaitable[bool | None]]
"""A filter: gets the context; rejects by raising FilterRejectedError or returning False."""

F = TypeVar("F", bound=Callable[..., Any])

_FILTERS_ATTR: Final = "__signalr_filters__"


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
        existing = attached_filters(func)
        setattr(func, _FILTERS_ATTR, (*filters, *existing))
        return func

    return decorate


def attached_filters(func: Callable[..., Any]) -> tuple[Filter, ...]:
    """The filters :func:`hub_filter` attached to ``func``, in running order."""
    found: tuple[Filter, ...] = getattr(func, _FILTERS_ATTR, ())
    return found


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


async def run_filters(filters: Sequence[Filter], context: InvocationContext) -> None:
    """Run ``filters`` in order.

    Raises:
        FilterRejectedError: a filter raised it or returned ``False``.
    """
    for check in filters:
        outcome = check(context)
        if inspect.isawaitable(outcome):
            outcome = await outcome
        if outcome is False:
            raise FilterRejectedError("The call was rejected.")
