"""The gateway: other services send messages and manage groups over HTTP with a key.

``POST /api/hubs/{hub}/messages`` and ``POST /api/hubs/{hub}/groupActions`` take one
object or a JSON array (see :mod:`app.models.gateway`), or one item as the fields of a
form (``application/x-www-form-urlencoded`` or ``multipart/form-data``: an HTML form,
``curl -F``). The key comes from the
``x-functions-key`` header or the ``?code=`` query parameter, as for an HTTP-triggered
function, and must be one of ``GATEWAY_API_KEYS``. Logic lives in
:mod:`app.services.gateway`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse

from app.dependencies import SettingsDep, SignalRDep
from app.models.gateway import GatewayGroupAction, GatewayMessage, GatewayResult
from app.services import gateway

__all__ = ["router"]


async def require_gateway_key(
    settings: SettingsDep,
    header_key: Annotated[str | None, Header(alias=gateway.KEY_HEADER)] = None,
    query_key: Annotated[str | None, Query(alias=gateway.KEY_QUERY)] = None,
) -> None:
    """Refuse the request (401) unless it carries a configured gateway key."""
    gateway.check_gateway_key(settings.gateway_api_keys, header_key or query_key)


router = APIRouter(
    prefix="/api/hubs",
    tags=["gateway"],
    dependencies=[Depends(require_gateway_key)],
    responses={
        401: {"description": "No gateway key, a wrong key, or no keys configured."},
        400: {
            "description": "The body is not JSON or not a readable form, is outside the "
            "JSON limits (nesting, numbers, strings), or a name breaks the service's rules."
        },
        408: {"description": "The body did not arrive within SIGNALR_BODY_READ_TIMEOUT."},
        413: {"description": "The body is larger than SIGNALR_GATEWAY_MAX_BODY_BYTES."},
        415: {"description": "The Content-Type is neither JSON nor a form."},
        422: {"description": "The body does not match the schema; nothing was applied."},
        502: {"description": "The SignalR Service refused a single-object request."},
        503: {"description": "The SignalR Service could not be reached (after retries)."},
    },
)


async def read_body(request: Request, settings: SettingsDep) -> Any:
    """The decoded body (JSON data or form fields), refused early when too large.

    The Content-Type is checked first (415), then the raw bytes are counted against the
    limit as they arrive (413) whatever the format, within SIGNALR_BODY_READ_TIMEOUT
    (408), then decoded (400 outside the JSON limits of :mod:`signalr_protocol.limits`).
    """
    fmt = gateway.body_format(request.headers.get("content-type"))
    limit = settings.gateway_max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise gateway.body_too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(settings.body_read_timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise gateway.body_too_large(size, limit)
                chunks.append(chunk)
    except TimeoutError:
        raise gateway.body_read_timeout(settings.body_read_timeout) from None
    return await gateway.decode_payload(fmt, request.headers, b"".join(chunks), limit)


Body = Annotated[Any, Depends(read_body)]


def _form_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` as form fields: ``arguments`` is JSON text, ``excluded`` repeats."""
    properties = dict(schema.get("properties", {}))
    if "arguments" in properties:
        properties["arguments"] = {
            "type": "string",
            "description": 'The arguments as a JSON array, e.g. ["hello", 1].',
        }
    return {**schema, "properties": properties}


def _one_or_many(model: type[Any]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True)
    form = {"schema": _form_schema(schema)}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"anyOf": [schema, {"type": "array", "items": schema}]}
                },
                gateway.FORM_URLENCODED: form,
                gateway.FORM_MULTIPART: form,
            },
        }
    }


def _answer(result: GatewayResult, ok_status: int) -> JSONResponse:
    status = ok_status if result.failed == 0 else 207
    return JSONResponse(result.model_dump(mode="json", by_alias=True), status_code=status)


@router.post(
    "/{hub}/messages",
    status_code=202,
    response_model=GatewayResult,
    summary="Send messages",
    openapi_extra=_one_or_many(GatewayMessage),
    responses={207: {"model": GatewayResult, "description": "Some items of a batch failed."}},
)
async def post_messages(hub: str, body: Body, signalr: SignalRDep) -> JSONResponse:
    """Send one message, an array of messages, or one message from form fields.

    202; 207 when some batch items failed. Form fields: ``target``, ``arguments`` (a JSON
    array), ``connectionId``, ``userId``, ``groupName``, ``excluded`` (repeatable).
    """
    messages, is_batch = gateway.parse_items(body, GatewayMessage)
    result = await gateway.send_messages(signalr, hub, messages, is_batch=is_batch)
    return _answer(result, 202)


@router.post(
    "/{hub}/groupActions",
    status_code=200,
    response_model=GatewayResult,
    summary="Manage group membership",
    openapi_extra=_one_or_many(GatewayGroupAction),
    responses={207: {"model": GatewayResult, "description": "Some items of a batch failed."}},
)
async def post_group_actions(hub: str, body: Body, signalr: SignalRDep) -> JSONResponse:
    """Apply one group action, an array of them, or one from form fields.

    200; 207 when some batch items failed. Form fields: ``action``, ``groupName``,
    ``userId``, ``connectionId``.
    """
    actions, is_batch = gateway.parse_items(body, GatewayGroupAction)
    result = await gateway.apply_group_actions(signalr, hub, actions, is_batch=is_batch)
    return _answer(result, 200)
