"""The gateway's logic: key check, body validation, and applying messages and group actions.

The router (:mod:`app.routers.gateway`) only wires HTTP to these functions.

A body is JSON (one object or an array) or, for callers such as an HTML form or
``curl -F``, a form (``application/x-www-form-urlencoded`` or ``multipart/form-data``)
carrying one item as fields; :func:`body_format` tells them apart, :func:`parse_form`
reads a form, and :func:`parse_items` validates either by the same model rules.

Batches (a JSON array) are validated whole before anything is sent: one invalid item is a
422 for the request and nothing is applied. Valid items are then applied **in order**, one
after the other (a later message may depend on an earlier group change), and every item
gets its own result. A failing item does not stop the rest; the response is 207 and the
failed items say why, so nothing is half-applied silently.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from python_multipart.multipart import parse_options_header
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser

from app.exceptions import GatewayAuthError, ServiceError, edge_status
from app.hub.outbound import OutboundService
from app.models.gateway import (
    MAX_BATCH_ITEMS,
    GatewayGroupAction,
    GatewayItemResult,
    GatewayMessage,
    GatewayResult,
)
from signalr_protocol.errors import PayloadError, SignalRError
from signalr_protocol.limits import loads_json
from signalr_protocol.names import validate_hub_name

__all__ = [
    "FORM_MULTIPART",
    "FORM_URLENCODED",
    "KEY_HEADER",
    "KEY_QUERY",
    "BodyReadTimeoutError",
    "FormFields",
    "GatewayBodyError",
    "GatewayBodyTooLargeError",
    "GatewayMediaTypeError",
    "apply_group_actions",
    "body_format",
    "body_read_timeout",
    "body_too_large",
    "check_gateway_key",
    "decode_body",
    "decode_payload",
    "looks_like_json",
    "parse_form",
    "parse_items",
    "send_messages",
]

logger = logging.getLogger("app.gateway")

KEY_HEADER = "x-functions-key"
KEY_QUERY = "code"

_M = TypeVar("_M", bound=BaseModel)


MAX_FORM_FIELDS = 100
"""Most fields (and files) one form may carry; one item has at most seven, bar ``excluded``."""

JSON_MEDIA_TYPES = frozenset({"application/json", "text/json", "text/plain"})
"""Media types read as JSON. ``text/plain`` is what ``fetch`` and ``sendBeacon`` send for a
string body; a request without ``Content-Type`` is read as JSON too."""

FORM_URLENCODED = "application/x-www-form-urlencoded"
FORM_MULTIPART = "multipart/form-data"

BodyFormat = Literal["json", "urlencoded", "multipart"]


class GatewayBodyError(SignalRError):
    """The request body cannot be read: not JSON, or a malformed form (400)."""

    status_code = 400


class GatewayBodyTooLargeError(GatewayBodyError):
    """The request body is larger than ``SIGNALR_GATEWAY_MAX_BODY_BYTES`` (413)."""

    status_code = 413


class GatewayMediaTypeError(GatewayBodyError):
    """The request's ``Content-Type`` is neither JSON nor a form (415)."""

    status_code = 415


@dataclass(frozen=True, slots=True)
class FormFields:
    """The fields of a form body, in order, names as sent; a name may repeat."""

    pairs: tuple[tuple[str, str], ...]


def check_gateway_key(configured: Sequence[str], supplied: str | None) -> None:
    """Accept the request when ``supplied`` equals one of the ``configured`` keys.

    Every configured key is compared in constant time (no early exit), so timing tells
    nothing about which key or how much of it matched.

    Raises:
        GatewayAuthError: no keys are configured, no key was sent, or it is wrong.
    """
    keys = [key for key in configured if key]
    if not keys:
        raise GatewayAuthError(
            "The gateway has no API keys configured, so it refuses every request. Set "
            "GATEWAY_API_KEYS to one or more comma-separated secret keys (for example "
            "GATEWAY_API_KEYS=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')) "
            f"and send one as the '{KEY_HEADER}' header or the '?{KEY_QUERY}=' query parameter."
        )
    if not supplied:
        raise GatewayAuthError(
            f"Missing gateway key: send it as the '{KEY_HEADER}' header or the "
            f"'?{KEY_QUERY}=' query parameter."
        )
    given = supplied.encode("utf-8")
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(given, key.encode("utf-8"))
    if not matched:
        raise GatewayAuthError("The gateway key is not valid.")


class BodyReadTimeoutError(GatewayBodyError):
    """The request body did not arrive within ``SIGNALR_BODY_READ_TIMEOUT`` seconds (408)."""

    status_code = 408


def body_read_timeout(seconds: float) -> BodyReadTimeoutError:
    """The 408 error for a body that did not arrive in ``seconds``."""
    return BodyReadTimeoutError(
        f"The request body did not arrive within {seconds:g} seconds "
        "(SIGNALR_BODY_READ_TIMEOUT): send the whole body the Content-Length announces."
    )


def body_too_large(size: int, limit: int) -> GatewayBodyTooLargeError:
    """The 413 error for a body of (at least) ``size`` bytes."""
    return GatewayBodyTooLargeError(
        f"The request body is over {limit} bytes ({size} or more); the gateway accepts at "
        f"most {limit} (SIGNALR_GATEWAY_MAX_BODY_BYTES). Split the batch."
    )


def decode_body(body: bytes, limit: int) -> Any:
    """Decode a JSON request body.

    Raises:
        GatewayBodyTooLargeError: over ``limit`` bytes.
        GatewayBodyError: empty or not JSON.
    """
    if len(body) > limit:
        raise body_too_large(len(body), limit)
    if not body.strip():
        raise GatewayBodyError("The request body is empty: send a JSON object or array.")
    try:
        return loads_json(body)
    except PayloadError as exc:
        raise GatewayBodyError(f"The request body is refused. {exc.message}") from None


def body_format(content_type: str | None) -> BodyFormat:
    """How to read a body sent with ``content_type``.

    No ``Content-Type``, ``application/json``, any ``+json`` type and ``text/plain`` are
    JSON; the two form types are forms.

    Raises:
        GatewayMediaTypeError: any other type (415), with the types that work.
    """
    if not content_type or not content_type.strip():
        return "json"
    raw, _ = parse_options_header(content_type)
    media_type = raw.decode("latin-1").strip().lower()
    if media_type in JSON_MEDIA_TYPES or media_type.endswith("+json"):
        return "json"
    if media_type == FORM_URLENCODED:
        return "urlencoded"
    if media_type == FORM_MULTIPART:
        return "multipart"
    raise GatewayMediaTypeError(
        f"Content-Type {media_type or content_type!r} is not supported. Send "
        "application/json (one object or an array of them), or a form "
        f"({FORM_URLENCODED} or {FORM_MULTIPART}) whose fields carry one item."
    )


def looks_like_json(body: bytes) -> bool:
    """Whether ``body`` starts like a JSON object or array (no form field name does).

    ``curl -d '{...}'`` without ``-H 'content-type: application/json'`` labels JSON as
    a URL-encoded form; such a body is read as the JSON it is.
    """
    return body.lstrip()[:1] in (b"{", b"[")


_NON_ASCII = re.compile(rb"[\x80-\xff]")


async def parse_form(
    fmt: Literal["urlencoded", "multipart"], headers: Mapping[str, str], body: bytes
) -> FormFields:
    """Read the fields of a form ``body`` (already size-checked) with Starlette's parsers.

    A URL-encoded form is UTF-8 text; non-ASCII bytes sent raw (``curl -d 'target=é'``)
    are read as UTF-8, as percent-encoded ones are. A file part (``curl -F
    arguments=@args.json``) counts as a field whose value is the file's UTF-8 text.

    Raises:
        GatewayBodyError: a malformed form, too many fields, or text that is not UTF-8.
    """
    if fmt == "urlencoded":
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise GatewayBodyError(f"The form body is not UTF-8 text: {exc}.") from exc
        body = _NON_ASCII.sub(lambda byte: b"%%%02X" % byte[0][0], body)

    async def once() -> AsyncGenerator[bytes, None]:
        yield body

    parser_headers = Headers(headers=dict(headers))
    try:
        if fmt == "multipart":
            form = await MultiPartParser(
                parser_headers,
                once(),
                max_files=MAX_FORM_FIELDS,
                max_fields=MAX_FORM_FIELDS,
                max_part_size=max(len(body), 1),
            ).parse()
        else:
            form = await FormParser(
                parser_headers, once(), max_fields=MAX_FORM_FIELDS, max_part_size=max(len(body), 1)
            ).parse()
    except MultiPartException as exc:
        raise GatewayBodyError(f"The form body cannot be read: {exc.message}") from exc
    try:
        pairs: list[tuple[str, str]] = []
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read()
                try:
                    value = data.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise GatewayBodyError(
                        f"The file sent as form field {name!r} is not UTF-8 text: {exc}."
                    ) from exc
            pairs.append((name, value))
    finally:
        await form.close()
    return FormFields(tuple(pairs))


async def decode_payload(
    fmt: BodyFormat, headers: Mapping[str, str], body: bytes, limit: int
) -> Any:
    """The decoded body: JSON data, or the :class:`FormFields` of a form.

    Raises:
        GatewayBodyTooLargeError: over ``limit`` bytes.
        GatewayBodyError: empty, not JSON, or a malformed form.
    """
    if fmt == "json" or (fmt == "urlencoded" and looks_like_json(body)):
        return decode_body(body, limit)
    if len(body) > limit:
        raise body_too_large(len(body), limit)
    if not body.strip():
        raise GatewayBodyError(
            "The request body is empty: send one item as form fields (target=... for a "
            "message, action=... for a group action)."
        )
    return await parse_form(fmt, headers, body)


_FORM_JSON_FIELDS = frozenset({"arguments"})
"""Form fields whose value is JSON text (``arguments=["a", 1]``)."""
_FORM_LIST_FIELDS = frozenset({"excluded"})
"""Form fields that may repeat, one value each (or one JSON array)."""


def _form_item(form: FormFields, model: type[BaseModel]) -> dict[str, Any]:
    """The JSON-shaped object a form stands for, for ``model`` to validate.

    Raises:
        RequestValidationError: (422) a repeated field, or JSON text that is not JSON.
    """
    fields = {(field.alias or name).lower() for name, field in model.model_fields.items()}
    item: dict[str, Any] = {}
    seen: dict[str, str] = {}
    errors: list[dict[str, Any]] = []
    for name, value in form.pairs:
        key = name.lower()
        if key in _FORM_LIST_FIELDS and key in fields:
            values = item.setdefault(seen.setdefault(key, name), [])
            if value.lstrip().startswith("["):
                try:
                    values.extend(loads_json(value))
                except PayloadError as exc:
                    errors.append(_json_error(name, value, "a JSON array of connection ids", exc))
            else:
                values.append(value)
            continue
        if key in seen:
            errors.append(
                {
                    "type": "value_error",
                    "loc": ["body", name],
                    "msg": f"the field {name!r} is given twice (names are case-insensitive)",
                    "input": value,
                }
            )
            continue
        seen[key] = name
        if key in _FORM_JSON_FIELDS and key in fields:
            try:
                item[name] = loads_json(value)
            except PayloadError as exc:
                errors.append(_json_error(name, value, 'a JSON array, e.g. ["hello", 1]', exc))
            continue
        item[name] = value
    if errors:
        raise RequestValidationError(errors)
    return item


def _json_error(name: str, value: str, expected: str, exc: Exception) -> dict[str, Any]:
    return {
        "type": "json_invalid",
        "loc": ["body", name],
        "msg": f"the form field {name!r} must be {expected}: {exc}",
        "input": value,
    }


def parse_items(payload: Any, model: type[_M]) -> tuple[list[_M], bool]:
    """Validate one object, an array of objects, or a form's fields against ``model``.

    Returns:
        The items, and whether the payload was an array.

    Raises:
        RequestValidationError: (422) with the location of every problem, as
            ``["body", <index>, <field>]`` for arrays.
    """
    if isinstance(payload, FormFields):
        payload = _form_item(payload, model)
    is_batch = isinstance(payload, list)
    raw_items = payload if is_batch else [payload]
    if is_batch and not raw_items:
        raise RequestValidationError(
            [{"type": "too_short", "loc": ["body"], "msg": "the array is empty", "input": []}]
        )
    if len(raw_items) > MAX_BATCH_ITEMS:
        raise RequestValidationError(
            [
                {
                    "type": "too_long",
                    "loc": ["body"],
                    "msg": f"at most {MAX_BATCH_ITEMS} items per request, got {len(raw_items)}",
                    "input": None,
                }
            ]
        )
    items: list[_M] = []
    errors: list[dict[str, Any]] = []
    for index, raw in enumerate(raw_items):
        prefix: list[str | int] = ["body", index] if is_batch else ["body"]
        if not isinstance(raw, dict):
            errors.append(
                {
                    "type": "model_type",
                    "loc": prefix,
                    "msg": f"expected a JSON object, got {type(raw).__name__}",
                    "input": raw,
                }
            )
            continue
        try:
            items.append(model.model_validate(raw))
        except ValidationError as exc:
            for error in exc.errors(include_url=False, include_context=False):
                errors.append({**error, "loc": [*prefix, *error["loc"]]})
    if errors:
        raise RequestValidationError(errors)
    return items, is_batch


def _failure(index: int, exc: SignalRError) -> GatewayItemResult:
    # The status the request alone would have got (app.main answers with the same);
    # for a ServiceError, the service's own status and error code are beside it.
    result = GatewayItemResult(
        index=index, status=edge_status(exc), error=exc.message, type=type(exc).__name__
    )
    if isinstance(exc, ServiceError):
        result.service_status = exc.status_code
        result.service_error_code = exc.error_code
    return result


async def _apply(
    items: Sequence[_M], is_batch: bool, ok: int, run: Callable[[_M], Awaitable[None]]
) -> GatewayResult:
    results: list[GatewayItemResult] = []
    for index, item in enumerate(items):
        try:
            await run(item)
        except SignalRError as exc:
            if not is_batch:
                raise
            logger.warning("gateway item %d failed: %s", index, exc)
            results.append(_failure(index, exc))
        else:
            results.append(GatewayItemResult(index=index, status=ok))
    failed = sum(1 for r in results if r.error is not None)
    return GatewayResult(succeeded=len(results) - failed, failed=failed, results=results)


async def send_messages(
    signalr: OutboundService, hub: str, messages: Sequence[GatewayMessage], *, is_batch: bool
) -> GatewayResult:
    """Send each message, in order, to its receivers.

    A single message's failure is raised (the app's error handler answers it); a batch
    reports failures per item.
    """
    validate_hub_name(hub)

    async def run(message: GatewayMessage) -> None:
        if message.connection_id is not None:
            await signalr.send_to_connection(
                hub, message.connection_id, message.target, message.arguments
            )
        elif message.user_id is not None:
            await signalr.send_to_user(hub, message.user_id, message.target, message.arguments)
        elif message.group_name is not None:
            await signalr.send_to_group(
                hub,
                message.group_name,
                message.target,
                message.arguments,
                excluded=message.excluded,
            )
        else:
            await signalr.send_to_all(
                hub, message.target, message.arguments, excluded=message.excluded
            )

    return await _apply(messages, is_batch, 202, run)


async def apply_group_actions(
    signalr: OutboundService, hub: str, actions: Sequence[GatewayGroupAction], *, is_batch: bool
) -> GatewayResult:
    """Apply each group action, in order (the Functions ``SignalRGroupAction`` rules)."""
    validate_hub_name(hub)

    async def run(action: GatewayGroupAction) -> None:
        if action.action == "removeAll":
            if action.connection_id is not None:
                await signalr.remove_connection_from_all_groups(hub, action.connection_id)
            elif action.user_id is not None:
                await signalr.remove_user_from_all_groups(hub, action.user_id)
            return
        group = action.group_name
        assert group is not None  # the model refuses add/remove without a group
        if action.connection_id is not None:
            if action.action == "add":
                await signalr.add_connection_to_group(hub, group, action.connection_id)
            else:
                await signalr.remove_connection_from_group(hub, group, action.connection_id)
        elif action.user_id is not None:
            if action.action == "add":
                await signalr.add_user_to_group(hub, group, action.user_id)
            else:
                await signalr.remove_user_from_group(hub, group, action.user_id)

    return await _apply(actions, is_batch, 200, run)
