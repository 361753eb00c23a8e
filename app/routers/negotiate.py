"""``/api/negotiate`` and ``/api/{hub}/negotiate``: the SignalRConnectionInfo binding.

The official clients are pointed at ``{app}/api`` (default hub) or ``{app}/api/{hub}``
and append ``/negotiate`` themselves, with POST; GET is served too, as Functions does.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

__all__ = ["ConnectionInfoPublic", "router"]

router = APIRouter(prefix="/api", tags=["negotiate"])


class ConnectionInfoPublic(BaseModel):
    """Where to connect, and the bearer token to connect with."""

    url: str = Field(examples=["http://localhost:8888/client/?hub=chat"])
    accessToken: str


_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"model": ConnectionInfoPublic, "description": "The connection info."},
    400: {"description": "Invalid hub name, user id or App Service principal."},
    404: {"description": "No hub of that name is registered."},
}


async def _negotiate(request: Request, hub: str) -> Response:
    # Serialised by hand: negotiate is the hottest route, and the model above still
    # documents it in OpenAPI without a validation pass per request.
    info = await request.app.state.negotiator.negotiate(hub, request.headers, request.query_params)
    body = json.dumps({"url": info.url, "accessToken": info.access_token})
    return Response(body, media_type="application/json")


@router.api_route(
    "/negotiate",
    methods=["POST", "GET"],
    responses=_RESPONSES,
    response_class=Response,
    summary="Negotiate a connection to the default hub",
)
async def negotiate_default_hub(request: Request) -> Response:
    """Return the service URL and an access token for the default hub."""
    return await _negotiate(request, request.app.state.settings.default_hub)


@router.api_route(
    "/{hub}/negotiate",
    methods=["POST", "GET"],
    responses=_RESPONSES,
    response_class=Response,
    summary="Negotiate a connection to a hub",
)
async def negotiate_hub(request: Request, hub: str) -> Response:
    """Return the service URL and an access token for ``hub`` (case-insensitive)."""
    return await _negotiate(request, hub)
