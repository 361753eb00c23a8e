"""The gateway: other services send messages and manage groups over HTTP with a key.

``POST /api/hubs/{hub}/messages`` and ``POST /api/hubs/{hub}/groupActions`` take one
object or a JSON array (see :mod:`app.models.gateway`). The key comes from the
``x-functions-key`` header or the ``?code=`` query parameter, as for an HTTP-triggered
function, and must be one of ``GATEWAY_API_KEYS``. Logic lives in
:mod:`app.services.gateway`.
"""

from __future__ import annotations

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
        400: {"description": "The body is not JSON, or a name breaks the service's rules."},
        413: {"description": "The body is larger than SIGNALR_GATEWAY_MAX_BODY_BYTES."},
        422: {"description": "The body does not match the schema; nothing was applied."},
        502: {"description": "The SignalR Service refused a single-object request."},
        503: {"description": "The SignalR Service could not be reached (after retries)."},
    },
)


async def read_json_body(request: Request, settings: SettingsDep) -> Any:
    """The decoded JSON body, refused early when larger than the configured limit."""
    limit = settings.gateway_max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise gateway.body_too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise gateway.body_too_large(size, limit)
        chunks.append(chunk)
    return gateway.decode_body(b"".join(chunks), limit)


JsonBody = Annotated[Any, Depends(read_json_body)]


def _one_or_many(model: type[Any]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True)
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"anyOf": [schema, {"type": "array", "items": schema}]}
                }
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
async def post_messages(hub: str, body: JsonBody, signalr: SignalRDep) -> JSONResponse:
    """Send one message or an array of messages (202; 207 when some batch items failed)."""
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
async def post_group_actions(hub: str, body: JsonBody, signalr: SignalRDep) -> JSONResponse:
    """Apply one group action or an array of them (200; 207 when some batch items failed)."""
    actions, is_batch = gateway.parse_items(body, GatewayGroupAction)
    result = await gateway.apply_group_actions(signalr, hub, actions, is_batch=is_batch)
    return _answer(result, 200)
