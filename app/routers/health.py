"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
async def get_liveness() -> dict[str, str]:
    """Answer 200 while the process runs."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness",
    responses={503: {"description": "The SignalR Service does not answer its health check."}},
)
async def get_readiness(request: Request) -> JSONResponse:
    """Answer 200 when the configuration is valid and the SignalR Service is healthy."""
    healthy = await request.app.state.signalr.is_healthy()
    if healthy:
        return JSONResponse({"status": "ready"})
    return JSONResponse(
        {"status": "unavailable", "error": "The SignalR Service health check failed."},
        status_code=503,
    )
