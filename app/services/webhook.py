"""The upstream webhook pipeline: one signed request from the SignalR Service in, one answer out.

:class:`Webhook` turns one upstream request (the SignalR trigger's input) into one response, so
the router stays a thin adapter: it checks the request, decodes the ``X-ASRS-*`` headers with
the core (:func:`signalr_protocol.upstream.parse_upstream_headers`), looks the handler up in
the :class:`~app.services.registry.HubRegistry`, runs it, and writes the completion.

Checks, in order, and the status each failure answers (docs/protocol.md §4.4):

====================================================  ===========================
the ``code`` key (when ``SIGNALR_UPSTREAM_CODE`` set)  401
body larger than the cap                               413
body not read within ``SIGNALR_BODY_READ_TIMEOUT``     408
media type not JSON / MessagePack                      415
empty ``X-ASRS-Hub/-Category/-Event/-Connection-Id``   400
``X-ASRS-Signature`` matches no configured key         401
Entra bearer (``SIGNALR_UPSTREAM_AUDIENCE`` set)       401 (503: keys unfetchable)
no handler for (hub, category, event)                  404
unparsable body, event ≠ body target                   400
filter or handler refused a connect                    403
everything else                                        200
====================================================  ===========================

The signature is checked *before* the handler lookup (the Functions extension looks up
first): an unsigned caller learns nothing about which hubs and targets exist, and a
rejected request costs one HMAC per key and no body parsing.

A ``messages`` request with an invocation id is answered ``200`` with a framed Completion in
the request's protocol (JSON + ``0x1E`` or VarInt-prefixed MessagePack): the handler's result,
or an error. Errors a handler raises on purpose (:class:`~app.exceptions.HubError` and
subclasses: binding, filter) and errors the caller's input caused (a 4xx
:class:`~signalr_protocol.errors.SignalRError` such as an invalid group name) carry their
message and log one line; anything else becomes ``"Method execution failed."`` and a log line
with the connection id and traceback. Arguments (or a target's text) outside the payload
limits (:mod:`signalr_protocol.limits`) reach the pipeline as the codec's
:class:`~signalr_protocol.messages.InvocationBindingFailureMessage` and get an error
completion saying which limit; a body whose envelope can't be read is a ``400``. Without an
invocation id (``send``) and for
``disconnected`` the answer is an empty ``200`` whatever happened, so failures are logged with
the connection id and counted in :attr:`Webhook.stats` instead of vanishing.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Final

import msgpack

from app.exceptions import FilterRejectedError, HubError, ServiceError
from app.hub import InvocationContext
from app.hub.binding import EventHandler
from app.telemetry import Telemetry, current_trace_id, outcome_for_status
from signalr_protocol.codec import JSON_CODEC, MSGPACK_CODEC, HubCodec
from signalr_protocol.errors import (
    HubProtocolError,
    PayloadError,
    SignalRError,
    UpstreamFormatError,
)
from signalr_protocol.limits import loads_json
from signalr_protocol.messages import (
    CompletionMessage,
    InvocationBindingFailureMessage,
    InvocationMessage,
)
from signalr_protocol.signature import verify_signature
from signalr_protocol.upstream import (
    CATEGORY_CONNECTIONS,
    CATEGORY_KEY,
    CATEGORY_MESSAGES,
    CONNECTION_ID_KEY,
    EVENT_DISCONNECTED,
    EVENT_KEY,
    HUB_KEY,
    CaseInsensitiveMapping,
    UpstreamRequest,
    parse_client_query,
    parse_upstream_headers,
)

from .registry import HubRegistry
from .upstream_auth import EntraTokenValidator, UpstreamAuthError, UpstreamKeysUnavailableError

if TYPE_CHECKING:
    from app.settings import Settings

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "GENERIC_ERROR",
    "Webhook",
    "WebhookRequest",
    "WebhookResult",
    "WebhookStats",
]

logger = logging.getLogger("app.services.webhook")

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
    """Counters of the webhook since start-up (read them; the pipeline updates them).

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
        outcome: what happened, for the metrics: one of
            :data:`app.telemetry.WEBHOOK_OUTCOMES` (a ``200`` may carry an ``error`` or
            ``rejected`` completion, or hide a fire-and-forget failure).
    """

    status_code: int
    body: bytes = b""
    media_type: str | None = None
    outcome: str = field(default="ok", compare=False)  # not part of the answer


def _text(status: int, message: str) -> WebhookResult:
    return WebhookResult(status, message.encode("utf-8"), _TEXT, outcome_for_status(status))


_OK: Final = WebhookResult(200)
_OK_AFTER_ERROR: Final = WebhookResult(200, outcome="error")
_OK_AFTER_REJECTION: Final = WebhookResult(200, outcome="rejected")


def _trace_note() -> str:
    """`` trace=<id>`` for a failure's log line when the request is traced, else empty."""
    trace_id = current_trace_id()
    return "" if trace_id is None else f" trace={trace_id}"


class Webhook:
    """The upstream webhook pipeline: checks, decoding, dispatch, completion and stats.

    Build it once at start-up (:meth:`from_settings`) and pass each upstream request to
    :meth:`dispatch_stream` (or :meth:`dispatch` when the body is already read).

    Args:
        registry: the hubs whose handlers run, and the outbound service they call.
        access_keys: the access keys of every configured endpoint; a request is accepted
            when its signature matches any of them. With no keys, only ``upstream_code``
            can authenticate requests (and without it every request gets 401).
        upstream_code: when set, requests must also carry it as the ``code`` query
            parameter or the ``x-functions-key`` header (the Functions system-key convention).
        max_body_bytes: largest accepted body; larger ones get 413.
        body_read_timeout: seconds the whole body may take to arrive; then 408.
        bearer_audience: when set (``SIGNALR_UPSTREAM_AUDIENCE``), requests must also carry
            an ``Authorization: Bearer`` Entra token for that audience, checked by
            ``entra_validator`` (set by the app's lifespan, which owns the HTTP client).
        entra_validator: the :class:`~app.services.upstream_auth.EntraTokenValidator`.
        telemetry: spans for the request and the hub method, and the metrics
            :meth:`dispatch_stream` counts; by default neither.
    """

    def __init__(
        self,
        registry: HubRegistry,
        *,
        access_keys: Sequence[str] = (),
        upstream_code: str | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        body_read_timeout: float = 30.0,
        bearer_audience: str | None = None,
        entra_validator: EntraTokenValidator | None = None,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.registry = registry
        self.telemetry = telemetry if telemetry is not None else Telemetry()
        self.access_keys: tuple[str, ...] = tuple(k.strip() for k in access_keys if k.strip())
        self.upstream_code = upstream_code or None
        self.max_body_bytes = max_body_bytes
        self.body_read_timeout = body_read_timeout
        self.bearer_audience = bearer_audience or None
        self.entra_validator = entra_validator
        self.stats = WebhookStats()
        if not self.access_keys and self.upstream_code is None and self.bearer_audience is None:
            logger.warning(
                "webhook: no access key and no upstream code configured; every upstream "
                "request will be refused with 401"
            )

    @classmethod
    def from_settings(
        cls, settings: Settings, registry: HubRegistry, *, telemetry: Telemetry | None = None
    ) -> Webhook:
        """Build the webhook of ``registry`` with the keys, code and cap of the settings."""
        return cls(
            registry,
            access_keys=settings.access_keys,
            upstream_code=settings.upstream_code,
            max_body_bytes=settings.webhook_max_body_bytes,
            body_read_timeout=settings.body_read_timeout,
            bearer_audience=settings.upstream_audience,
            telemetry=telemetry,
        )

    def _code_ok(self, request: WebhookRequest) -> bool:
        expected = self.upstream_code
        if expected is None:
            return True
        given = request.code or request.headers.get("x-functions-key") or ""
        return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))

    async def _bearer_refusal(
        self, headers: Mapping[str, str], upstream: UpstreamRequest
    ) -> WebhookResult | None:
        """Check the upstream Entra bearer; the answer to send when it fails, else None."""
        validator = self.entra_validator
        try:
            if validator is None:
                raise UpstreamKeysUnavailableError(
                    "The webhook is not ready to check upstream bearer tokens yet."
                )
            await validator.validate_header(headers.get("authorization"))
        except UpstreamAuthError as exc:
            if exc.status_code == 401:
                self.stats.unauthorized += 1
            logger.info(
                "webhook: upstream bearer of connection %s (hub=%s event=%s) refused: %s",
                upstream.connection_id,
                upstream.hub,
                upstream.event,
                exc.message,
            )
            return _text(exc.status_code, exc.message)
        return None

    async def dispatch_stream(
        self,
        headers: Mapping[str, str],
        chunks: AsyncIterable[bytes],
        code: str | None = None,
    ) -> WebhookResult:
        """Read a request body up to the cap, then :meth:`dispatch` it; never raises.

        A declared ``Content-Length`` over the cap is refused before reading, and reading
        stops as soon as the cap is passed (413 either way). The request is one span
        (the hub method's span is its child) and one count in the metrics.

        Args:
            headers: the request headers, case-insensitive.
            chunks: the body as it arrives (e.g. Starlette's ``request.stream()``).
            code: the ``code`` query parameter, if any.
        """
        telemetry = self.telemetry
        metrics = telemetry.metrics
        started = time.perf_counter()
        if telemetry.tracing:
            with telemetry.webhook(
                hub=headers.get(HUB_KEY),
                category=headers.get(CATEGORY_KEY),
                event=headers.get(EVENT_KEY),
                connection_id=headers.get(CONNECTION_ID_KEY),
                headers=headers,
            ) as span:
                result = await self._read_and_dispatch(headers, chunks, code)
                if span.is_recording():
                    span.set_attribute("http.response.status_code", result.status_code)
                    if result.outcome != "ok":
                        telemetry.failed(span, result.outcome)
        else:
            result = await self._read_and_dispatch(headers, chunks, code)
        if metrics is not None:
            metrics.webhook(
                headers.get(CATEGORY_KEY), result.outcome, time.perf_counter() - started
            )
        return result

    async def _read_and_dispatch(
        self, headers: Mapping[str, str], chunks: AsyncIterable[bytes], code: str | None
    ) -> WebhookResult:
        limit = self.max_body_bytes
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return self._too_large()
        parts: list[bytes] = []  # joined once: no quadratic copying of many small chunks
        size = 0
        try:
            async with asyncio.timeout(self.body_read_timeout):
                async for chunk in chunks:
                    parts.append(chunk)
                    size += len(chunk)
                    if size > limit:
                        return self._too_large()
        except TimeoutError:
            self.stats.requests += 1
            self.stats.bad_requests += 1
            logger.info("webhook: body not received within %gs (408)", self.body_read_timeout)
            return _text(
                408,
                f"The body did not arrive within {self.body_read_timeout:g} seconds "
                "(SIGNALR_BODY_READ_TIMEOUT).",
            )
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
        try:
            upstream = parse_upstream_headers(headers)
        except UpstreamFormatError as exc:
            stats.bad_requests += 1
            return _text(400, exc.message)
        if self.access_keys:
            if not verify_signature(upstream.signature, upstream.connection_id, self.access_keys):
                stats.unauthorized += 1
                # The service only logs our 401; say it here too (a wrong or rotated key is
                # the usual cause). Never the signature itself.
                logger.info(
                    "webhook: X-ASRS-Signature of connection %s (hub=%s event=%s) matches "
                    "none of the configured access keys",
                    upstream.connection_id,
                    upstream.hub,
                    upstream.event,
                )
                return _text(401, "X-ASRS-Signature matches none of the configured access keys.")
        elif self.upstream_code is None and self.bearer_audience is None:
            stats.unauthorized += 1
            return _text(401, "No access key is configured to verify X-ASRS-Signature.")
        if self.bearer_audience is not None:
            refusal = await self._bearer_refusal(headers, upstream)
            if refusal is not None:
                return refusal
        hub, category, event = upstream.hub, upstream.category, upstream.event
        if category not in (CATEGORY_CONNECTIONS, CATEGORY_MESSAGES):
            stats.bad_requests += 1
            return _text(400, f"Unknown X-ASRS-Category {category!r}.")
        handler = self.registry.handler(hub, category, event)
        if handler is None:
            stats.not_found += 1
            logger.info(
                "webhook: no handler for hub=%s category=%s event=%s (connection %s)",
                hub,
                category,
                event,
                upstream.connection_id,
            )
            if category == CATEGORY_MESSAGES:
                # The service relays this text to the invoking client: say what to fix.
                return _text(404, f"No handler for target {event!r} in hub {hub!r}.")
            return _text(
                404, f"No handler for hub {hub!r}, category {category!r}, event {event!r}."
            )
        if category == CATEGORY_CONNECTIONS:
            return await self._connection_event(request, upstream, handler, codec)
        return await self._message_event(request, upstream, handler, codec)

    @staticmethod
    def _context(
        request: WebhookRequest,
        upstream: UpstreamRequest,
        codec: HubCodec,
        *,
        event: str,
        arguments: tuple[Any, ...] = (),
        invocation_id: str | None = None,
        error: str | None = None,
    ) -> InvocationContext:
        return InvocationContext(
            connection_id=upstream.connection_id,
            hub=upstream.hub,
            category=upstream.category,
            event=event,
            user_id=upstream.user_id,
            claims=upstream.claims,
            headers=_visible_headers(request.headers),
            query=parse_client_query(upstream.query),
            arguments=arguments,
            invocation_id=invocation_id,
            error=error,
            protocol=codec.name,
        )

    async def _connection_event(
        self,
        request: WebhookRequest,
        upstream: UpstreamRequest,
        handler: EventHandler,
        codec: HubCodec,
    ) -> WebhookResult:
        stats = self.stats
        connection_id = upstream.connection_id
        try:
            error = _connection_error(request.body, codec)
        except (ValueError, PayloadError) as exc:
            stats.bad_requests += 1
            return _text(400, f"Bad {upstream.event} body: {exc}")
        event = upstream.event.lower()
        context = self._context(request, upstream, codec, event=event, error=error)
        disconnect = event == EVENT_DISCONNECTED
        if disconnect:
            stats.disconnected += 1
        else:
            stats.connected += 1
        telemetry = self.telemetry
        with telemetry.hub_method(
            upstream.hub, upstream.category, event, connection_id, upstream.user_id
        ) as span:
            try:
                await handler.run(context, self.registry.outbound)
            except FilterRejectedError as exc:
                stats.rejected += 1
                telemetry.failed(span, "rejected")
                logger.info(
                    "webhook: %s of connection %s rejected by a filter: %s%s",
                    event,
                    connection_id,
                    exc,
                    _trace_note(),
                    extra={"connection_id": connection_id},
                )
                if disconnect:
                    self._fire_and_forget_failed(upstream.category)
                    return _OK_AFTER_REJECTION
                return _text(403, str(exc))
            except Exception as exc:
                stats.handler_failures += 1
                telemetry.failed(span, "handler failed", exc)
                if disconnect:
                    self._fire_and_forget_failed(upstream.category)
                if isinstance(exc, HubError):
                    logger.warning(
                        "webhook: %s handler %s failed for connection %s: %s%s",
                        event,
                        handler.owner,
                        connection_id,
                        exc,
                        _trace_note(),
                        extra={"connection_id": connection_id},
                    )
                else:
                    logger.exception(
                        "webhook: %s handler %s failed for connection %s%s",
                        event,
                        handler.owner,
                        connection_id,
                        _trace_note(),
                        extra={"connection_id": connection_id},
                    )
                if disconnect:
                    return _OK_AFTER_ERROR
                return _text(403, "The connection was refused.")
        return _OK

    def _fire_and_forget_failed(self, category: str) -> None:
        """A failure no client is told about: count it (stats and metrics)."""
        self.stats.fire_and_forget_failures += 1
        metrics = self.telemetry.metrics
        if metrics is not None:
            metrics.fire_and_forget_failed(category)

    async def _message_event(
        self,
        request: WebhookRequest,
        upstream: UpstreamRequest,
        handler: EventHandler,
        codec: HubCodec,
    ) -> WebhookResult:
        stats = self.stats
        event, connection_id = upstream.event, upstream.connection_id
        try:
            message = codec.decode_payload(request.body)
        except HubProtocolError as exc:
            # The envelope can't be read: no invocation id to answer.
            stats.bad_requests += 1
            logger.info(
                "webhook: invocation %s of connection %s refused: %s",
                event,
                connection_id,
                exc.close_reason,
                extra={"connection_id": connection_id},
            )
            return _text(400, f"Bad invocation body: {exc.close_reason}")
        if isinstance(message, InvocationBindingFailureMessage):
            # Arguments (or the target's text) outside the payload limits: the codec's
            # text says which; an error completion when there is an id, as for a refusal.
            stats.bad_requests += 1
            logger.log(
                logging.INFO if message.invocation_id is not None else logging.WARNING,
                "webhook: connection %s: %s",
                connection_id,
                message.error,
                extra={"connection_id": connection_id},
            )
            return self._answer(
                codec, message.invocation_id, message.error, "error", upstream.category
            )
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
            upstream,
            codec,
            event=message.target,
            arguments=tuple(message.arguments),
            invocation_id=invocation_id,
        )
        error: str | None = None
        result: Any = None
        has_result = False
        outcome = "ok"
        telemetry = self.telemetry
        with telemetry.hub_method(
            upstream.hub, upstream.category, message.target, connection_id, upstream.user_id
        ) as span:
            try:
                if message.stream_ids:
                    raise HubError(_STREAMING_UNSUPPORTED)
                result, has_result = await handler.run(context, self.registry.outbound)
            except HubError as exc:
                if isinstance(exc, FilterRejectedError):
                    stats.rejected += 1
                    outcome = "rejected"
                else:
                    outcome = "error"
                error = str(exc)
                telemetry.failed(span, outcome)
                # Nobody but the log hears about a refused send (no invocation id): warn.
                logger.log(
                    logging.INFO if invocation_id is not None else logging.WARNING,
                    "webhook: invocation %r of connection %s refused: %s%s",
                    message.target,
                    connection_id,
                    error,
                    _trace_note(),
                    extra={"connection_id": connection_id},
                )
            except Exception as exc:
                if _caused_by_caller(exc):
                    # The caller's input broke a rule (a group name, a token limit...): say
                    # which, in one log line.
                    outcome = "error"
                    error = str(exc)
                    telemetry.failed(span, outcome)
                    logger.info(
                        "webhook: invocation %r of connection %s failed: %s%s",
                        message.target,
                        connection_id,
                        error,
                        _trace_note(),
                        extra={"connection_id": connection_id},
                    )
                    return self._answer(codec, invocation_id, error, outcome, upstream.category)
                stats.handler_failures += 1
                error = GENERIC_ERROR
                outcome = "error"
                telemetry.failed(span, "handler failed", exc)
                logger.exception(
                    "webhook: handler %s failed for connection %s (invocation %r)%s",
                    handler.owner,
                    connection_id,
                    message.target,
                    _trace_note(),
                    extra={"connection_id": connection_id},
                )
        if invocation_id is None:
            if error is None:
                return _OK
            self._fire_and_forget_failed(upstream.category)
            return _OK_AFTER_REJECTION if outcome == "rejected" else _OK_AFTER_ERROR
        return self._completion(
            codec, invocation_id, result, has_result, error, connection_id, outcome
        )

    def _answer(
        self, codec: HubCodec, invocation_id: str | None, error: str, outcome: str, category: str
    ) -> WebhookResult:
        """The answer to an invocation that failed with ``error``: an error completion."""
        if invocation_id is None:
            self._fire_and_forget_failed(category)
            return _OK_AFTER_ERROR
        self.stats.error_completions += 1
        body = codec.encode(CompletionMessage(invocation_id, error=error))
        return WebhookResult(200, body, codec.content_type, outcome)

    def _completion(
        self,
        codec: HubCodec,
        invocation_id: str,
        result: Any,
        has_result: bool,
        error: str | None,
        connection_id: str,
        outcome: str = "ok",
    ) -> WebhookResult:
        stats = self.stats
        if error is None:
            try:
                body = codec.encode(
                    CompletionMessage(invocation_id, result=result, has_result=has_result)
                )
            except HubProtocolError as exc:
                stats.handler_failures += 1
                # One line: the reason says what the value was (NaN, too deep...).
                logger.warning(
                    "webhook: the result for connection %s can't be encoded as %s: %s",
                    connection_id,
                    codec.name,
                    exc,
                    extra={"connection_id": connection_id},
                )
                error = f"The method's result cannot be sent as {codec.name}."
                outcome = "error"
            else:
                stats.completions += 1
                return WebhookResult(200, body, codec.content_type)
        stats.error_completions += 1
        body = codec.encode(CompletionMessage(invocation_id, error=error))
        return WebhookResult(200, body, codec.content_type, "error" if outcome == "ok" else outcome)


def _caused_by_caller(exc: Exception) -> bool:
    """Whether ``exc`` is a rule the caller's input broke (a 4xx SignalRError of ours).

    A :class:`~app.exceptions.ServiceError` is the service's answer, never the caller's
    fault as far as the hub method is concerned.
    """
    return (
        isinstance(exc, SignalRError)
        and not isinstance(exc, ServiceError)
        and 400 <= exc.status_code < 500
    )


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
        value = loads_json(body)  # PayloadError names the limit (nesting, numbers, text)
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
