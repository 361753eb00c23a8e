"""Liveness and readiness probes, and the Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from app.telemetry import METRICS_CONTENT_TYPE

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
    responses={
        503: {
            "description": "The SignalR Service does not answer its health check, or a "
            "keyless endpoint has no usable signing key."
        }
    },
)
async def get_readiness(request: Request) -> JSONResponse:
    """Answer 200 when the configuration is valid and the SignalR Service is healthy.

    Keyless endpoints must also hold a usable signing key (else negotiate answers 503).
    """
    problems = request.app.state.signalr.keyless_problems()
    if problems:
        return JSONResponse(
            {"status": "unavailable", "error": "; ".join(problems)}, status_code=503
        )
    healthy = await request.app.state.signalr.is_healthy()
    if healthy:
        return JSONResponse({"status": "ready"})
    return JSONResponse(
        {"status": "unavailable", "error": "The SignalR Service health check failed."},
        status_code=503,
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "The Prometheus text format."},
        404: {"description": "Metrics are turned off (SIGNALR_METRICS_ENABLED=false)."},
    },
)
async def get_metrics(request: Request) -> Response:
    """Negotiate, webhook, REST call, fire-and-forget and endpoint health metrics in the
    Prometheus text format (README, "Observability", lists them)."""
    metrics = request.app.state.telemetry.metrics
    if metrics is None:
        return JSONResponse(
            {
                "error": "Metrics are turned off; set SIGNALR_METRICS_ENABLED=true.",
                "type": "MetricsDisabled",
            },
            status_code=404,
        )
    return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE)
