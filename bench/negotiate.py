"""Negotiate throughput: the backend against a bare ASGI app that mints the same token.

Both run under the same uvicorn configuration, pinned to core 0; wrk, pinned to core 1,
sends POST /api/negotiate. Rounds alternate bare / backend so drift hits both; the ratio
of medians is printed (target >= 0.5).

    python bench/negotiate.py [--rounds 3] [--duration 5] [--connections 16]
    python bench/negotiate.py --telemetry <commit> [--rounds 5]

``--telemetry`` compares the backend of ``<commit>`` (before telemetry) with this tree's
with tracing off (the default), tracing on (OTLP to a local sink; every request sampled,
then ``--sample-ratio``, default 0.01, with ``parentbased_traceidratio``) and metrics off,
in alternating rounds, and prints each one's ratio to the older commit: of the median
req/s, and of the server's median CPU time per request (steadier on a shared machine).

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
    SAMPLE_RATIO,
    TELEMETRY_VARIANTS,
    answer_lifespan,
    cpu_seconds,
    pinned_server,
    pinned_server_process,
    requests_done,
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
    parser.add_argument(
        "--sample-ratio", type=float, default=SAMPLE_RATIO, help="the sampled variant's ratio"
    )
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


def telemetry_round(
    args: argparse.Namespace, script: Path, env: dict[str, str], root: Path | None
) -> tuple[float, float]:
    """One backend run: req/s, and the server's CPU microseconds per request."""
    with pinned_server_process(__file__, "backend", env=env, root=root) as (port, pid):
        url = f"http://127.0.0.1:{port}/api/negotiate"
        wrk(url, script, 4, 1)  # warm-up
        cpu = cpu_seconds(pid)
        rps, out = wrk(url, script, args.connections, args.duration)
        cpu = cpu_seconds(pid) - cpu
        if "Non-2xx" in out:
            raise RuntimeError(f"errors during the run:\n{out}")
        return rps, cpu / requests_done(out) * 1e6


def compare_telemetry(args: argparse.Namespace, script: Path) -> None:
    """Rounds alternating the telemetry variants; medians and ratios to ``before``."""
    rates: dict[str, list[float]] = {name: [] for name in TELEMETRY_VARIANTS}
    costs: dict[str, list[float]] = {name: [] for name in TELEMETRY_VARIANTS}
    with telemetry_variants(args.telemetry, args.sample_ratio) as variants:
        for _ in range(args.rounds):
            for name in TELEMETRY_VARIANTS:
                env, root = variants[name]
                rps, cpu = telemetry_round(args, script, env, root)
                rates[name].append(rps)
                costs[name].append(cpu)
                print(f"{name:10s} {rps:10.0f} req/s {cpu:7.1f} us CPU/request", flush=True)
    print(f"(sampled: parentbased_traceidratio {args.sample_ratio})")
    before = statistics.median(rates["before"])
    before_cpu = statistics.median(costs["before"])
    off = statistics.median(rates["off"])
    off_cpu = statistics.median(costs["off"])
    for name in TELEMETRY_VARIANTS:
        median = statistics.median(rates[name])
        cpu = statistics.median(costs[name])
        print(
            f"median {name:10s} {median:10.0f} req/s ({median / before:.3f} of before, "
            f"{median / off:.3f} of off)  {cpu:7.1f} us CPU/request ({before_cpu / cpu:.3f} "
            f"of before's throughput per CPU, {off_cpu / cpu:.3f} of off's)"
        )


if __name__ == "__main__":
    main()
