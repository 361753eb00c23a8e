"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
async def get_liveness(request: Request) -> dict[str, object]:
    """Answer 200 while the process runs, with the webhook's counters since start-up.

    ``webhook.fire_and_forget_failures`` counts handler failures no client was told about
    (``send`` invocations, disconnects); each one was also logged with its connection id.
    """
    return {"status": "ok", "webhook": request.app.state.webhook.stats.snapshot()}


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
