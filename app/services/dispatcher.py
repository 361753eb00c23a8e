"""The hub registry and the upstream webhook pipeline (the SignalR trigger's dispatcher).

:class:`HubRegistry` holds every handler, keyed by ``(hub, category, event)`` and matched
case-insensitively (message targets also camelCase ↔ snake_case). It loads hub classes and
trigger functions from import strings (the ``SIGNALR_HUBS`` setting), refuses duplicates at
start-up, and turns one upstream request from the SignalR Service into one response
(:meth:`HubRegistry.dispatch`), so the router stays a thin adapter.

Checks, in order, and the status each failure answers (``PROTOCOL.md`` §4.4):

====================================================  ======
the ``code`` key (when ``SIGNALR_UPSTREAM_CODE`` set)  401
body larger than the cap                               413
media type not JSON / MessagePack                      415
empty ``X-ASRS-Hub/-Category/-Event/-Connection-Id``   400
``X-ASRS-Signature`` matches no configured key         401
no handler for (hub, category, event)                  404
unparsable body, event ≠ body target                   400
filter or handler refused a connect                    403
everything else                                        200
====================================================  ======

The signature is checked *before* the handler lookup (the Functions extension looks up
first): an unsigned caller learns nothing about which hubs and targets exist, and a
rejected request costs one HMAC per key and no parsing.

A ``messages`` request with an invocation id is answered ``200`` with a framed Completion in
the request's protocol (JSON + ``0x1E`` or VarInt-prefixed MessagePack): the handler's result,
or an error. Errors a handler raises on purpose (:class:`~app.exceptions.HubError` and
subclasses: binding, filter) carry their message; anything else becomes ``"Method execution
failed."`` and a log line with the connection id. Without an invocation id (``send``) and for
``disconnected`` the answer is an empty ``200`` whatever happened, so failures are logged with
the connection id and counted in :attr:`HubRegistry.stats` instead of vanishing.
"""

from __future__ import annotations

import hmac
import importlib
import inspect
import json
import logging
from collections.abc import AsyncIterable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

import msgpack

from app.exceptions import ConfigurationError, FilterRejectedError, HubError
from app.hub import (
    CATEGORY_CONNECTIONS,
    CATEGORY_MESSAGES,
    EVENT_DISCONNECTED,
    CaseInsensitiveMapping,
    EventHandler,
    InvocationContext,
    NegotiateOptions,
    NegotiateRequest,
    ServerlessHub,
    TriggerSpec,
    normalize_name,
    parse_client_query,
    parse_user_claims,
)
from app.services.protocols import OutboundService
from signalr_protocol.codec import JSON_CODEC, MSGPACK_CODEC, HubCodec
from signalr_protocol.errors import HubProtocolError, InvalidNameError
from signalr_protocol.messages import CompletionMessage, InvocationMessage
from signalr_protocol.signature import verify_signature

if TYPE_CHECKING:
    from app.settings import Settings

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "GENERIC_ERROR",
    "HubRegistry",
    "WebhookRequest",
    "WebhookResult",
    "WebhookStats",
]

logger = logging.getLogger("app.hub.dispatcher")

DEFAULT_MAX_BODY_BYTES: Final = 1024 * 1024
"""Largest accepted webhook body (the service's own REST limit is 1 MB)."""

GENERIC_ERROR: Final = "Method execution failed."
"""The completion error for unexpected handler exceptions (details go to the log only)."""

_CODECS: Final[dict[str, HubCodec]] = {
    JSON_CODEC.content_type: JSON_CODEC,
    MSGPACK_CODEC.content_type: MSGPACK_CODEC,
}
_TEXT: Final = "text/plain; charset=utf-8"
# Credentials a handler has no use for and could leak into its logs.
_HIDDEN_HEADERS: Final = frozenset({"x-functions-key", "authorization"})
_STREAMING_UNSUPPORTED: Final = "Client-to-server streaming is not supported in serverless mode."


@dataclass(slots=True)
class WebhookStats:
    """Counters of the webhook since start-up (read them; the registry updates them).

    Attributes:
        requests: webhook requests dispatched.
        connected: ``connected`` events handled (accepted or refused).
        disconnected: ``disconnected`` events handled.
        invocations: ``messages`` events handled.
        completions: completions answered with a result or void.
        error_completions: completions answered with an error.
        rejected: calls refused by a filter (403 or error completion).
        handler_failures: unexpected exceptions raised by handlers.
        fire_and_forget_failures: failures nobody is told about on the wire (``send``
            invocations and ``disconnected`` events); each is also logged.
        unauthorized: requests refused with 401 (signature or code).
        not_found: requests refused with 404 (no handler).
        bad_requests: requests refused with 400, 413 or 415.
    """

    requests: int = 0
    connected: int = 0
    disconnected: int = 0
    invocations: int = 0
    completions: int = 0
    error_completions: int = 0
    rejected: int = 0
    handler_failures: int = 0
    fire_and_forget_failures: int = 0
    unauthorized: int = 0
    not_found: int = 0
    bad_requests: int = 0

    def snapshot(self) -> dict[str, int]:
        """Return the counters as a plain dict (e.g. for a metrics endpoint)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """One upstream request, as the router read it.

    Attributes:
        headers: the request headers, case-insensitive (e.g. ``CaseInsensitiveMapping``).
        body: the whole body (the router enforces the size cap while reading).
        code: the ``code`` query parameter, if any.
    """

    headers: Mapping[str, str]
    body: bytes
    code: str | None = None


@dataclass(frozen=True, slots=True)
class WebhookResult:
    """The answer to one upstream request.

    Attributes:
        status_code: the HTTP status.
        body: the response body (a framed Completion, an error text, or empty).
        media_type: the body's content type, ``None`` when the body is empty.
    """

    status_code: int
    body: bytes = b""
    media_type: str | None = None


def _text(status: int, message: str) -> WebhookResult:
    return WebhookResult(status, message.encode("utf-8"), _TEXT)


_OK: Final = WebhookResult(200)


class _NoService:
    """Stands in for the outbound service before one is attached; every call fails."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(
            "HubRegistry has no outbound service: set registry.service before dispatching."
        )


def _event_key(category: str, event: str) -> str:
    return normalize_name(event) if category == CATEGORY_MESSAGES else event.lower()


class HubRegistry:
    """Every hub handler of the app, and the webhook pipeline that runs them.

    Build it once at start-up (:meth:`from_settings`), attach the outbound service, and pass
    each webhook request to :meth:`dispatch`.

    Args:
        service: the outbound SignalR Service client the hub API calls; may be set later
            through :attr:`service`.
        access_keys: the access keys of every configured endpoint; a request is accepted
            when its signature matches any of them. With no keys, only ``upstream_code``
            can authenticate requests (and without it every request gets 401).
        upstream_code: when set, requests must also carry it as the ``code`` query
            parameter or the ``x-functions-key`` header (the Functions system-key convention).
        max_body_bytes: largest accepted body; larger ones get 413.
    """

    def __init__(
        self,
        *,
        service: OutboundService | None = None,
        access_keys: Sequence[str] = (),
        upstream_code: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.service: OutboundService | None = service
        self.access_keys: tuple[str, ...] = tuple(k.strip() for k in access_keys if k.strip())
        self.upstream_code = upstream_code or None
        self.max_body_bytes = max_body_bytes
        self.stats = WebhookStats()
        self._handlers: dict[tuple[str, str, str], EventHandler] = {}
        self._hubs: dict[str, str] = {}  # lower-cased name -> declared name
        self._classes: dict[str, type[ServerlessHub]] = {}
        if not self.access_keys and self.upstream_code is None:
            logger.warning(
                "webhook: no access key and no upstream code configured; every upstream "
                "request will be refused with 401"
            )

    @classmethod
    def from_settings(
        cls, settings: Settings, service: OutboundService | None = None
    ) -> HubRegistry:
        """Build the registry from the app settings and load ``settings.hubs``.

        Raises:
            ConfigurationError: a hub can't be imported, is invalid, or duplicates another.
        """
        registry = cls(
            service=service,
            access_keys=settings.access_keys,
            upstream_code=settings.upstream_code,
            max_body_bytes=settings.webhook_max_body_bytes,
        )
        registry.load_all(settings.hubs)
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
                if _is_hub_class(value) or _trigger_of(value) is not None:
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
        elif _trigger_of(target) is not None:
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
        spec = _trigger_of(func)
        if spec is None:
            raise ConfigurationError(f"{func!r} is not decorated with @signalr_trigger.")
        try:
            handler = EventHandler(
                hub=spec.hub,
                category=spec.category,
                event=spec.event,
                func=func,
                filters=getattr(func, "__signalr_filters__", ()),
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

    def bind(self, service: OutboundService) -> None:
        """Attach the outbound service the hub API calls (done by the app's lifespan)."""
        self.service = service

    async def shape_negotiation(
        self,
        hub: str,
        identity: _Identity,
        headers: Mapping[str, str],
        query: Mapping[str, str],
    ) -> NegotiateOptions | None:
        """Run the hub class's ``negotiate`` hook, if it overrides one.

        The negotiator's adapter (:mod:`app.main`) calls this; ``None`` means "keep the
        defaults" (no class, or the hook is not overridden).

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

        Call this from the negotiate endpoint. Hubs without a class (functions only) and
        unknown hubs keep the request's user id and claims.

        Raises:
            FilterRejectedError: the hub refused the negotiation (answer 403).
        """
        hub_class = self._classes.get(hub.lower())
        if hub_class is None:
            return NegotiateOptions(user_id=request.user_id, claims=tuple(request.claims))
        instance = hub_class(service=self._service())
        return await instance.negotiate(request)

    def _service(self) -> OutboundService:
        if self.service is None:
            return _NoService()
        return self.service

    # ------------------------------------------------------------------ dispatch

    def _code_ok(self, request: WebhookRequest) -> bool:
        expected = self.upstream_code
        if expected is None:
            return True
        given = request.code or request.headers.get("x-functions-key") or ""
        return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))

    async def dispatch_stream(
        self,
        headers: Mapping[str, str],
        chunks: AsyncIterable[bytes],
        code: str | None = None,
    ) -> WebhookResult:
        """Read a request body up to the cap, then :meth:`dispatch` it; never raises.

        A declared ``Content-Length`` over the cap is refused before reading, and reading
        stops as soon as the cap is passed (413 either way).

        Args:
            headers: the request headers, case-insensitive.
            chunks: the body as it arrives (e.g. Starlette's ``request.stream()``).
            code: the ``code`` query parameter, if any.
        """
        limit = self.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return self._too_large()
        parts: list[bytes] = []  # joined once: no quadratic copying of many small chunks
        size = 0
        async for chunk in chunks:
            parts.append(chunk)
            size += len(chunk)
            if size > limit:
                return self._too_large()
        return await self.dispatch(WebhookRequest(headers, b"".join(parts), code))

    def _too_large(self) -> WebhookResult:
        self.stats.requests += 1
        self.stats.bad_requests += 1
        return _text(413, f"The body is larger than {self.max_body_bytes} bytes.")

    async def dispatch(self, request: WebhookRequest) -> WebhookResult:
        """Check and run one upstream request; never raises.

        Args:
            request: the headers, body and ``code`` the router read.

        Returns:
            The response to send (status, body, media type), per the module's table.
        """
        stats = self.stats
        stats.requests += 1
        headers = request.headers
        if not self._code_ok(request):
            stats.unauthorized += 1
            return _text(401, "The 'code' key is missing or wrong.")
        if len(request.body) > self.max_body_bytes:
            stats.requests -= 1  # counted again by _too_large
            return self._too_large()
        media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
        codec = _CODECS.get(media_type)
        if codec is None:
            stats.bad_requests += 1
            return _text(415, "Content-Type must be application/json or application/x-msgpack.")
        hub = headers.get("x-asrs-hub", "").strip()
        category = headers.get("x-asrs-category", "").strip().lower()
        event = headers.get("x-asrs-event", "").strip()
        connection_id = headers.get("x-asrs-connection-id", "").strip()
        for name, value in (
            ("X-ASRS-Hub", hub),
            ("X-ASRS-Category", category),
            ("X-ASRS-Event", event),
            ("X-ASRS-Connection-Id", connection_id),
        ):
            if not value:
                stats.bad_requests += 1
                return _text(400, f"The {name} header is missing or empty.")
        if self.access_keys:
            if not verify_signature(
                headers.get("x-asrs-signature"), connection_id, self.access_keys
            ):
                stats.unauthorized += 1
                # The service only logs our 401; say it here too (a wrong or rotated key is
                # the usual cause). Never the signature itself.
                logger.info(
                    "webhook: X-ASRS-Signature of connection %s (hub=%s event=%s) matches "
                    "none of the configured access keys",
                    connection_id,
                    hub,
                    event,
                )
                return _text(401, "X-ASRS-Signature matches none of the configured access keys.")
        elif self.upstream_code is None:
            stats.unauthorized += 1
            return _text(401, "No access key is configured to verify X-ASRS-Signature.")
        if category not in (CATEGORY_CONNECTIONS, CATEGORY_MESSAGES):
            stats.bad_requests += 1
            return _text(400, f"Unknown X-ASRS-Category {category!r}.")
        handler = self.handler(hub, category, event)
        if handler is None:
            stats.not_found += 1
            logger.info(
                "webhook: no handler for hub=%s category=%s event=%s (connection %s)",
                hub,
                category,
                event,
                connection_id,
            )
            return _text(
                404, f"No handler for hub {hub!r}, category {category!r}, event {event!r}."
            )
        if category == CATEGORY_CONNECTIONS:
            return await self._connection_event(request, handler, codec, hub, event, connection_id)
        return await self._message_event(request, handler, codec, hub, event, connection_id)

    def _context(
        self,
        request: WebhookRequest,
        codec: HubCodec,
        *,
        hub: str,
        category: str,
        event: str,
        connection_id: str,
        arguments: tuple[Any, ...] = (),
        invocation_id: str | None = None,
        error: str | None = None,
    ) -> InvocationContext:
        headers = request.headers
        return InvocationContext(
            connection_id=connection_id,
            hub=hub,
            category=category,
            event=event,
            user_id=headers.get("x-asrs-user-id") or None,
            claims=parse_user_claims(headers.get("x-asrs-user-claims")),
            headers=_visible_headers(headers),
            query=parse_client_query(headers.get("x-asrs-client-query")),
            arguments=arguments,
            invocation_id=invocation_id,
            error=error,
            protocol=codec.name,
        )

    async def _connection_event(
        self,
        request: WebhookRequest,
        handler: EventHandler,
        codec: HubCodec,
        hub: str,
        event: str,
        connection_id: str,
    ) -> WebhookResult:
        stats = self.stats
        try:
            error = _connection_error(request.body, codec)
        except ValueError as exc:
            stats.bad_requests += 1
            return _text(400, f"Bad {event} body: {exc}")
        event = event.lower()
        context = self._context(
            request,
            codec,
            hub=hub,
            category=CATEGORY_CONNECTIONS,
            event=event,
            connection_id=connection_id,
            error=error,
        )
        disconnect = event == EVENT_DISCONNECTED
        if disconnect:
            stats.disconnected += 1
        else:
            stats.connected += 1
        try:
            await handler.run(context, self._service())
        except FilterRejectedError as exc:
            stats.rejected += 1
            logger.info(
                "webhook: %s of connection %s rejected by a filter: %s", event, connection_id, exc
            )
            if disconnect:
                stats.fire_and_forget_failures += 1
                return _OK
            return _text(403, str(exc))
        except Exception as exc:
            stats.handler_failures += 1
            if disconnect:
                stats.fire_and_forget_failures += 1
            if isinstance(exc, HubError):
                logger.warning(
                    "webhook: %s handler %s failed for connection %s: %s",
                    event,
                    handler.owner,
                    connection_id,
                    exc,
                )
            else:
                logger.exception(
                    "webhook: %s handler %s failed for connection %s",
                    event,
                    handler.owner,
                    connection_id,
                )
            return _OK if disconnect else _text(403, "The connection was refused.")
        return _OK

    async def _message_event(
        self,
        request: WebhookRequest,
        handler: EventHandler,
        codec: HubCodec,
        hub: str,
        event: str,
        connection_id: str,
    ) -> WebhookResult:
        stats = self.stats
        try:
            message = codec.decode_payload(request.body)
        except HubProtocolError as exc:
            stats.bad_requests += 1
            return _text(400, f"Bad invocation body: {exc}")
        if not isinstance(message, InvocationMessage):
            stats.bad_requests += 1
            return _text(400, f"Expected an Invocation message, got {type(message).__name__}.")
        if message.target.lower() != event.lower():
            stats.bad_requests += 1
            return _text(
                400,
                f"X-ASRS-Event {event!r} does not match the invocation target {message.target!r}.",
            )
        stats.invocations += 1
        invocation_id = message.invocation_id
        context = self._context(
            request,
            codec,
            hub=hub,
            category=CATEGORY_MESSAGES,
            event=message.target,
            connection_id=connection_id,
            arguments=tuple(message.arguments),
            invocation_id=invocation_id,
        )
        error: str | None = None
        result: Any = None
        has_result = False
        try:
            if message.stream_ids:
                raise HubError(_STREAMING_UNSUPPORTED)
            result, has_result = await handler.run(context, self._service())
        except HubError as exc:
            if isinstance(exc, FilterRejectedError):
                stats.rejected += 1
            error = str(exc)
            # Nobody but the log hears about a refused send (no invocation id): warn.
            logger.log(
                logging.INFO if invocation_id is not None else logging.WARNING,
                "webhook: invocation %r of connection %s refused: %s",
                message.target,
                connection_id,
                error,
            )
        except Exception:
            stats.handler_failures += 1
            error = GENERIC_ERROR
            logger.exception(
                "webhook: handler %s failed for connection %s (invocation %r)",
                handler.owner,
                connection_id,
                message.target,
            )
        if invocation_id is None:
            if error is not None:
                stats.fire_and_forget_failures += 1
            return _OK
        return self._completion(codec, invocation_id, result, has_result, error, connection_id)

    def _completion(
        self,
        codec: HubCodec,
        invocation_id: str,
        result: Any,
        has_result: bool,
        error: str | None,
        connection_id: str,
    ) -> WebhookResult:
        stats = self.stats
        if error is None:
            try:
                body = codec.encode(
                    CompletionMessage(invocation_id, result=result, has_result=has_result)
                )
            except HubProtocolError:
                stats.handler_failures += 1
                logger.exception(
                    "webhook: the result for connection %s can't be encoded as %s",
                    connection_id,
                    codec.name,
                )
                error = GENERIC_ERROR
            else:
                stats.completions += 1
                return WebhookResult(200, body, codec.content_type)
        stats.error_completions += 1
        body = codec.encode(CompletionMessage(invocation_id, error=error))
        return WebhookResult(200, body, codec.content_type)


def _connection_error(body: bytes, codec: HubCodec) -> str | None:
    """Read the ``error`` of a connections body (``{"type":11,"error":...}``), any key case.

    Raises:
        ValueError: the body is not a JSON object (or msgpack map/array).
    """
    if not body.strip():
        return None
    if codec is MSGPACK_CODEC:
        try:
            value = msgpack.unpackb(body, raw=False)
        except Exception as exc:
            raise ValueError("not valid MessagePack") from exc
        if isinstance(value, list):
            # [type, error?] when a service ever sends these as arrays.
            return value[1] if len(value) > 1 and isinstance(value[1], str) else None
    else:
        try:
            value = json.loads(body)
        except ValueError as exc:
            raise ValueError("not valid JSON") from exc
    if not isinstance(value, dict):
        raise ValueError("expected an object")
    for key, item in value.items():
        if isinstance(key, str) and key.lower() == "error":
            return item if isinstance(item, str) and item else None
    return None


def _visible_headers(headers: Mapping[str, str]) -> Mapping[str, str]:
    """The headers handlers see: all but the credentials (the code key, a bearer token)."""
    if not any(name in headers for name in _HIDDEN_HEADERS):
        return headers
    return CaseInsensitiveMapping(
        (name, value) for name, value in headers.items() if name.lower() not in _HIDDEN_HEADERS
    )


class _Identity(Protocol):
    """The negotiator's view of the caller (``app.services.principal.Identity``)."""

    @property
    def user_id(self) -> str | None: ...

    @property
    def claims(self) -> Sequence[tuple[str, str]]: ...


def _case_insensitive(mapping: Mapping[str, str]) -> Mapping[str, str]:
    if isinstance(mapping, CaseInsensitiveMapping):
        return mapping
    items = getattr(mapping, "multi_items", None)  # Starlette keeps repeated keys
    return CaseInsensitiveMapping(items() if callable(items) else mapping.items())


def _is_hub_class(value: Any) -> bool:
    return (
        inspect.isclass(value) and issubclass(value, ServerlessHub) and value is not ServerlessHub
    )


def _trigger_of(value: Any) -> TriggerSpec | None:
    spec = getattr(value, "__signalr_trigger__", None) if callable(value) else None
    return spec if isinstance(spec, TriggerSpec) else None
