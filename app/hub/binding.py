"""The binding engine: turns a hub method or trigger function into an :class:`EventHandler`.

Hub authors don't use this module. There is one :class:`EventHandler` per
``(hub, category, event)`` (:meth:`ServerlessHub.event_handlers` makes those of a hub class,
the registry those of trigger functions); for each upstream event the webhook calls
:meth:`EventHandler.run`, which runs the filters, binds and validates the invocation's
arguments against the function's type hints (pydantic), injects :class:`InvocationContext`
and :class:`HubContext` parameters, calls the function (a plain ``def`` in a worker thread)
and converts its result with the payload policy (:func:`signalr_protocol.payload.to_jsonable`).
"""

from __future__ import annotations

import base64
import inspect
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from pydantic import TypeAdapter, ValidationError

from app.exceptions import BindingError
from signalr_protocol.payload import to_jsonable

from .api import HubContext
from .context import InvocationContext
from .filters import Filter, run_filters
from .outbound import OutboundService

if TYPE_CHECKING:
    from .base import ServerlessHub

__all__ = ["EventHandler", "normalize_name"]


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


def _signature_params(func: Callable[..., Any], owner: str, *, skip_first: bool) -> list[_Param]:
    """Inspect ``func`` once: its parameters with validators."""
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
    return result


def _format_validation_error(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    return f"{first['msg']}{f' (at {where})' if where else ''}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class EventHandler:
    """One handler bound to ``(hub, category, event)``: binds arguments, filters, runs.

    Made from hub methods and trigger functions (see the module docs); hub authors don't use it.

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
        params = _signature_params(func, owner, skip_first=hub_class is not None)
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
            completion carries it: always ``True``, so a void method completes with
            ``result: null`` and the JS client's ``invoke()`` resolves to ``null``, as the
            Functions extension answers (``CompletionMessage.WithResult(id, null)``).

        Raises:
            FilterRejectedError: a filter refused the call.
            BindingError: the arguments don't fit.
            Exception: whatever the handler raised.
        """
        await run_filters(self.filters, context)
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
        return to_jsonable(result), True
