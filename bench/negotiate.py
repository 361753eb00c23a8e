"""Negotiate throughput: the backend against a bare ASGI app that mints the same token.

Both run under the same uvicorn configuration, pinned to core 0; wrk, pinned to core 1,
sends POST /api/negotiate. Rounds alternate bare / backend so drift hits both; the ratio
of medians is printed (target >= 0.5).

    python bench/negotiate.py [--rounds 3] [--duration 5] [--connections 16]
    python bench/negotiate.py --telemetry <commit> [--rounds 5]

``--telemetry`` compares the backend of ``<commit>`` (before telemetry) with this tree's
with tracing off (the default), tracing on (OTLP to a local sink) and metrics off, in
alternating rounds, and prints each one's ratio to the older commit.

Needs Debian's ``wrk`` (``apt-get install wrk``) and ``taskset``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from _support import (
    TELEMETRY_VARIANTS,
    answer_lifespan,
    pinned_server,
    telemetry_variants,
    wrk,
)


def bare_app() -> Any:
    """The baseline: raw ASGI, the same token code, no framework."""
    from app.settings import Settings
    from signalr_protocol.tokens import mint_client_token

    endpoint = Settings().endpoint

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        token = mint_client_token(endpoint, "chat")
        body = json.dumps({"url": endpoint.client_url("chat"), "accessToken": token}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body})

    return app


def serve(mode: str, port: int) -> None:
    import uvicorn

    if mode == "bare":
        app = bare_app()
    else:
        from app.main import create_app

        app = create_app()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


def run_round(
    mode: str,
    args: argparse.Namespace,
    script: Path,
    env: dict[str, str] | None = None,
    root: Path | None = None,
) -> float:
    with pinned_server(__file__, mode, env=env, root=root) as port:
        url = f"http://127.0.0.1:{port}/api/negotiate"
        wrk(url, script, 4, 1)  # warm-up
        rps, out = wrk(url, script, args.connections, args.duration)
        if "Non-2xx" in out:
            raise RuntimeError(f"{mode}: errors during the run:\n{out}")
        return rps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", choices=["bare", "backend"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--telemetry", metavar="COMMIT", help="compare telemetry variants")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        sys.exit("needs wrk and taskset: apt-get install wrk util-linux")
    os.environ.pop("AzureSignalRConnectionString", None)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write('wrk.method = "POST"\n')
        script = Path(handle.name)
    if args.telemetry:
        try:
            compare_telemetry(args, script)
        finally:
            script.unlink()
        return
    results: dict[str, list[float]] = {"bare": [], "backend": []}
    try:
        for _ in range(args.rounds):
            for mode in ("bare", "backend"):
                rps = run_round(mode, args, script)
                results[mode].append(rps)
                print(f"{mode:8s} {rps:10.0f} req/s")
    finally:
        script.unlink()
    bare = statistics.median(results["bare"])
    backend = statistics.median(results["backend"])
    print(f"median bare    {bare:10.0f} req/s")
    print(f"median backend {backend:10.0f} req/s")
    print(f"ratio backend/bare = {backend / bare:.2f} (target >= 0.5)")


def compare_telemetry(args: argparse.Namespace, script: Path) -> None:
    """Rounds alternating the telemetry variants; medians and ratios to ``before``."""
    results: dict[str, list[float]] = {name: [] for name in TELEMETRY_VARIANTS}
    with telemetry_variants(args.telemetry) as variants:
        for _ in range(args.rounds):
            for name in TELEMETRY_VARIANTS:
                env, root = variants[name]
                rps = run_round("backend", args, script, env, root)
                results[name].append(rps)
                print(f"{name:10s} {rps:10.0f} req/s", flush=True)
    before = statistics.median(results["before"])
    for name in TELEMETRY_VARIANTS:
        median = statistics.median(results[name])
        print(f"median {name:10s} {median:10.0f} req/s  ratio to before {median / before:.3f}")


if __name__ == "__main__":
    main()
