"""The gateway's logic: key check, body validation, and applying messages and group actions.

The router (:mod:`app.routers.gateway`) only wires HTTP to these functions.

Batches (a JSON array) are validated whole before anything is sent: one invalid item is a
422 for the request and nothing is applied. Valid items are then applied **in order**, one
after the other (a later message may depend on an earlier group change), and every item
gets its own result. A failing item does not stop the rest; the response is 207 and the
failed items say why, so nothing is half-applied silently.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from app.exceptions import GatewayAuthError, ServiceError, edge_status
from app.models.gateway import (
    MAX_BATCH_ITEMS,
    GatewayGroupAction,
    GatewayItemResult,
    GatewayMessage,
    GatewayResult,
)
from app.services.protocols import OutboundService
from signalr_protocol.errors import SignalRError
from signalr_protocol.names import validate_hub_name

__all__ = [
    "KEY_HEADER",
    "KEY_QUERY",
    "GatewayBodyError",
    "GatewayBodyTooLargeError",
    "apply_group_actions",
    "body_too_large",
    "check_gateway_key",
    "decode_body",
    "parse_items",
    "send_messages",
]

logger = logging.getLogger("app.gateway")

KEY_HEADER = "x-functions-key"
KEY_QUERY = "code"

_M = TypeVar("_M", bound=BaseModel)


class GatewayBodyError(SignalRError):
    """The request body is not JSON (400)."""

    status_code = 400


class GatewayBodyTooLargeError(GatewayBodyError):
    """The request body is larger than ``SIGNALR_GATEWAY_MAX_BODY_BYTES`` (413)."""

    status_code = 413


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
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GatewayBodyError(f"The request body is not valid JSON: {exc}.") from exc


def parse_items(payload: Any, model: type[_M]) -> tuple[list[_M], bool]:
    """Validate one object or an array of objects against ``model``.

    Returns:
        The items, and whether the payload was an array.

    Raises:
        RequestValidationError: (422) with the location of every problem, as
            ``["body", <index>, <field>]`` for arrays.
    """
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
