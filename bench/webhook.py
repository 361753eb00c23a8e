"""Webhook benchmarks: throughput against a bare ASGI app, and invoke round-trip latency.

Part 1 — requests per second of ``POST /runtime/webhooks/signalr`` for two requests:
an ``echo`` invocation with an id (answered with a framed Completion) and the same request
with a wrong signature (answered 401). The backend (``create_app``) is compared with a bare
ASGI app that runs the same checks with the same code (``Webhook.dispatch_stream``),
both served by the same uvicorn configuration pinned to core 0, load from ``wrk`` pinned to
core 1. Rounds alternate bare / backend; medians are compared (target ratio >= 0.5; the
rejected path must not cost more than the accepted one).

Part 2 — latency of a client ``invoke("echo", i)`` through the emulator and the webhook
(WebSocket client → emulator → signed POST → hub → Completion → client), against a direct
signed HTTP POST to the same webhook; p50 and p99 over ``--invokes`` calls spread over
``--clients`` concurrent clients (default: the issue's 10,000 invokes from 100 clients), and
their ratios (via the service / direct). Clients connect and warm up before the clock
starts, so connection set-up (and the sample hub's ``newConnection`` fan-out) is not measured.
The emulator, the backend and the load generator share the machine, so absolute numbers
depend on it.

    python bench/webhook.py [--rounds 3] [--duration 5] [--connections 32] [--route]
                            [--invokes 10000] [--clients 100] [--skip-rps] [--skip-latency]

``--route`` adds a third server: the backend without :class:`UpstreamFastPath`, i.e. the
webhook served by FastAPI's router and request machinery alone.

``--telemetry <commit>`` replaces part 1's servers with the backend of ``<commit>`` (before
telemetry) and this tree's with tracing off (the default), tracing on (OTLP to a local
sink; every request sampled, then ``--sample-ratio``, default 0.01, with
``parentbased_traceidratio``) and metrics off, in alternating rounds, and prints each one's
ratio to the older one: of the median req/s, and of the server's median CPU time per
request (steadier on a shared machine).

Needs Debian's ``wrk`` (``apt-get install wrk``) and ``taskset`` for part 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _support import (
    ROOT,
    SAMPLE_RATIO,
    TELEMETRY_VARIANTS,
    answer_lifespan,
    cpu_seconds,
    free_port,
    pinned_server,
    pinned_server_process,
    requests_done,
    telemetry_variants,
    wait_ready,
    wrk,
)

from signalr_protocol.connection_string import EMULATOR_ACCESS_KEY, emulator_connection_string
from signalr_protocol.signature import compute_signature

PATH = "/runtime/webhooks/signalr"
CONNECTION_ID = "bench-connection"
BODY = json.dumps(
    {"type": 1, "invocationId": "1", "target": "echo", "arguments": ["hello"]},
    separators=(",", ":"),
)


def webhook_headers(
    connection_id: str = CONNECTION_ID, key: str = EMULATOR_ACCESS_KEY
) -> dict[str, str]:
    """The headers the service sends for an ``echo`` invocation on hub ``chat``."""
    return {
        "Content-Type": "application/json",
        "X-ASRS-Connection-Id": connection_id,
        "X-ASRS-Hub": "chat",
        "X-ASRS-Category": "messages",
        "X-ASRS-Event": "echo",
        "X-ASRS-Signature": compute_signature(connection_id, key),
    }


# ----------------------------------------------------------------------------- servers


def bare_app() -> Any:
    """The baseline: raw ASGI calling the same webhook code, no framework."""
    from app.services.registry import HubRegistry
    from app.services.webhook import Webhook
    from app.settings import Settings
    from signalr_protocol.upstream import CaseInsensitiveMapping

    settings = Settings()
    webhook = Webhook.from_settings(settings, HubRegistry.from_settings(settings))

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return

        async def chunks() -> Any:
            more = True
            while more:
                message = await receive()
                more = message.get("more_body", False)
                yield message.get("body", b"")

        headers = CaseInsensitiveMapping(
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
        )
        result = await webhook.dispatch_stream(headers, chunks(), None)
        response_headers = [(b"content-length", str(len(result.body)).encode())]
        if result.media_type:
            response_headers.append((b"content-type", result.media_type.encode()))
        await send(
            {
                "type": "http.response.start",
                "status": result.status_code,
                "headers": response_headers,
            }
        )
        await send({"type": "http.response.body", "body": result.body})

    return app


def backend_app(fast_path: bool = True) -> Any:
    """The backend as ``app.main`` builds it (with :class:`UpstreamFastPath`), or without it."""
    from app.main import create_app

    app = create_app()
    if not fast_path:
        app.webhook_fast_path = None  # FastAPI's route answers
    return app


def serve(mode: str, port: int) -> None:
    """Run one server (child process)."""
    import uvicorn

    if mode == "bare":
        app = bare_app()
    else:
        app = backend_app(fast_path=mode == "backend")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


# ----------------------------------------------------------------------------- part 1


def lua_script(directory: Path, name: str, headers: dict[str, str]) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(BODY)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path = directory / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run_round(
    mode: str,
    args: argparse.Namespace,
    scripts: dict[str, Path],
    env: dict[str, str] | None = None,
    root: Path | None = None,
) -> dict[str, float]:
    with pinned_server(__file__, mode, env=env, root=root) as port:
        url = f"http://127.0.0.1:{port}{PATH}"
        wrk(url, scripts["accepted"], 4, 1)  # warm-up
        accepted, out = wrk(url, scripts["accepted"], args.connections, args.duration)
        if "Non-2xx" in out:
            raise RuntimeError(f"{mode}: the accepted path answered errors:\n{out}")
        rejected, out = wrk(url, scripts["rejected"], args.connections, args.duration)
        match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
        total = re.search(r"(\d+) requests in", out)
        if match is None or total is None or match.group(1) != total.group(1):
            raise RuntimeError(f"{mode}: the rejected path was not all 401:\n{out}")
        return {"accepted": accepted, "rejected": rejected}


def telemetry_round(
    args: argparse.Namespace,
    scripts: dict[str, Path],
    env: dict[str, str],
    root: Path | None,
) -> dict[str, tuple[float, float]]:
    """One backend run per path: req/s, and the server's CPU microseconds per request."""
    answers: dict[str, tuple[float, float]] = {}
    with pinned_server_process(__file__, "backend", env=env, root=root) as (port, pid):
        url = f"http://127.0.0.1:{port}{PATH}"
        wrk(url, scripts["accepted"], 4, 1)  # warm-up
        for path, script in scripts.items():
            cpu = cpu_seconds(pid)
            rps, out = wrk(url, script, args.connections, args.duration)
            cpu = cpu_seconds(pid) - cpu
            done = requests_done(out)
            match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
            errors = int(match.group(1)) if match is not None else 0
            if errors != (done if path == "rejected" else 0):
                raise RuntimeError(f"the {path} path did not answer as expected:\n{out}")
            answers[path] = (rps, cpu / done * 1e6)
    return answers


def compare_telemetry(args: argparse.Namespace) -> None:
    """Part 1 for the telemetry variants: alternating rounds, ratios to ``before``."""
    rates: dict[str, dict[str, list[float]]] = {
        name: {"accepted": [], "rejected": []} for name in TELEMETRY_VARIANTS
    }
    costs: dict[str, dict[str, list[float]]] = {
        name: {"accepted": [], "rejected": []} for name in TELEMETRY_VARIANTS
    }
    with (
        tempfile.TemporaryDirectory() as tmp,
        telemetry_variants(args.telemetry, args.sample_ratio) as variants,
    ):
        scripts = {
            "accepted": lua_script(Path(tmp), "accepted", webhook_headers()),
            "rejected": lua_script(Path(tmp), "rejected", webhook_headers(key="wrong-key")),
        }
        for _ in range(args.rounds):
            for name in TELEMETRY_VARIANTS:
                env, root = variants[name]
                answers = telemetry_round(args, scripts, env, root)
                for path, (rps, cpu) in answers.items():
                    rates[name][path].append(rps)
                    costs[name][path].append(cpu)
                print(
                    f"{name:10s} "
                    + "   ".join(
                        f"{path} {rps:7.0f} req/s {cpu:6.1f} us CPU"
                        for path, (rps, cpu) in answers.items()
                    ),
                    flush=True,
                )
    print(f"(sampled: parentbased_traceidratio {args.sample_ratio})")
    for path in ("accepted", "rejected"):
        before = statistics.median(rates["before"][path])
        before_cpu = statistics.median(costs["before"][path])
        off = statistics.median(rates["off"][path])
        off_cpu = statistics.median(costs["off"][path])
        for name in TELEMETRY_VARIANTS:
            median = statistics.median(rates[name][path])
            cpu = statistics.median(costs[name][path])
            print(
                f"median {path:8s} {name:10s} {median:8.0f} req/s ({median / before:.3f} of "
                f"before, {median / off:.3f} of off)  {cpu:6.1f} us CPU/request "
                f"({before_cpu / cpu:.3f} of before's throughput per CPU, {off_cpu / cpu:.3f} "
                "of off's)"
            )


def throughput(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        sys.exit("needs wrk and taskset: apt-get install wrk util-linux")
    if args.telemetry:
        compare_telemetry(args)
        return
    modes = ("bare", "backend", "route") if args.route else ("bare", "backend")
    results: dict[str, dict[str, list[float]]] = {
        mode: {"accepted": [], "rejected": []} for mode in modes
    }
    with tempfile.TemporaryDirectory() as tmp:
        scripts = {
            "accepted": lua_script(Path(tmp), "accepted", webhook_headers()),
            "rejected": lua_script(Path(tmp), "rejected", webhook_headers(key="wrong-key")),
        }
        for _ in range(args.rounds):
            for mode in modes:
                rps = run_round(mode, args, scripts)
                for path, value in rps.items():
                    results[mode][path].append(value)
                print(
                    f"{mode:8s} accepted {rps['accepted']:9.0f} req/s   "
                    f"rejected {rps['rejected']:9.0f} req/s",
                    flush=True,
                )
    medians = {m: {p: statistics.median(v) for p, v in r.items()} for m, r in results.items()}
    print()
    print(f"{'median':8s} {'accepted':>10s} {'rejected':>10s}   (req/s)")
    for mode in modes:
        print(f"{mode:8s} {medians[mode]['accepted']:10.0f} {medians[mode]['rejected']:10.0f}")
    for mode in modes[1:]:
        for path in ("accepted", "rejected"):
            ratio = medians[mode][path] / medians["bare"][path]
            print(f"ratio {mode}/bare, {path:8s} = {ratio:.2f} (target >= 0.5)")
    backend = medians["backend"]
    print(
        f"backend rejected/accepted = {backend['rejected'] / backend['accepted']:.2f} "
        "(>= 1: a refused request costs no more than an accepted one)"
    )


# ----------------------------------------------------------------------------- part 2


def quantiles(samples: Sequence[float]) -> tuple[float, float]:
    """p50 and p99 in milliseconds (nearest rank)."""
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return pick(0.50), pick(0.99)


def percentiles(samples: Sequence[float]) -> str:
    p50, p99 = quantiles(samples)
    return f"p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   (n={len(samples)})"


async def ws_client(
    url: str, token: str, count: int, samples: list[float], start_line: asyncio.Barrier
) -> None:
    """One WebSocket client doing ``count`` sequential ``invoke("echo", i)`` calls.

    Each client connects and completes one uncounted invoke (so its ``connected`` event,
    and the sample hub's ``newConnection`` broadcast, are done), then waits at
    ``start_line`` until every client is ready: connection set-up is not measured.
    """
    import websockets

    from signalr_protocol.codec import JSON_CODEC
    from signalr_protocol.messages import CompletionMessage, InvocationMessage

    async with websockets.connect(
        url, additional_headers={"Authorization": f"Bearer {token}"}, compression=None
    ) as ws:
        await ws.send(b'{"protocol":"json","version":1}\x1e'.decode())
        reply = await ws.recv()
        text = reply if isinstance(reply, str) else reply.decode()
        if not text.startswith("{}"):
            raise RuntimeError(f"handshake failed: {text!r}")
        parser = JSON_CODEC.new_parser()
        pending = [text.encode()[3:]]

        async def invoke(i: int) -> None:
            await ws.send(
                JSON_CODEC.encode(InvocationMessage("echo", [i], invocation_id=str(i))).decode()
            )
            data = pending.pop() if pending else b""
            while True:
                for message in parser.feed(data) if data else []:
                    if isinstance(message, CompletionMessage) and message.invocation_id == str(i):
                        if message.error is not None or message.result != i:
                            raise RuntimeError(f"bad completion: {message}")
                        return
                received = await ws.recv()
                data = received.encode() if isinstance(received, str) else received

        await invoke(-1)
        await start_line.wait()
        for i in range(count):
            start = time.perf_counter()
            await invoke(i)
            samples.append(time.perf_counter() - start)


async def http_client(
    url: str, count: int, index: int, samples: list[float], start_line: asyncio.Barrier
) -> None:
    """One HTTP client doing ``count`` sequential signed POSTs to the webhook.

    Like :func:`ws_client`, one uncounted request (opening the keep-alive connection)
    comes before ``start_line``. aiohttp rather than httpx: the load generator shares the
    machine, and the lighter client keeps its own cost out of the baseline.
    """
    import aiohttp

    connection_id = f"direct-{index}"
    headers = webhook_headers(connection_id)
    async with aiohttp.ClientSession() as session:

        async def post(i: int) -> None:
            body = json.dumps(
                {"type": 1, "invocationId": str(i), "target": "echo", "arguments": [i]}
            )
            async with session.post(url, data=body, headers=headers) as response:
                content = await response.read()
            if response.status != 200 or b'"result"' not in content:
                raise RuntimeError(f"bad answer: {response.status} {content!r}")

        await post(-1)
        await start_line.wait()
        for i in range(count):
            start = time.perf_counter()
            await post(i)
            samples.append(time.perf_counter() - start)


def spread(total: int, clients: int) -> list[int]:
    base, extra = divmod(total, clients)
    return [base + (1 if i < extra else 0) for i in range(clients)]


def latency(args: argparse.Namespace) -> None:
    from signalr_protocol.connection_string import parse_connection_string
    from signalr_protocol.tokens import mint_client_token

    backend_port, emulator_port = free_port(), free_port()
    connection_string = emulator_connection_string(host="127.0.0.1", port=emulator_port)
    env = {
        **os.environ,
        "AzureSignalRConnectionString": connection_string,
        "SIGNALR_HUBS": "app.samples.chat:ChatHub",
    }
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "settings.json"
        template = {"UrlTemplate": f"http://127.0.0.1:{backend_port}{PATH}"}
        config.write_text(json.dumps({"UpstreamSettings": {"Templates": [template]}}))
        try:
            processes.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--serve", "backend", "--port", str(backend_port)],
                    cwd=ROOT,
                    env=env,
                )
            )
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "emulator",
                        "--port",
                        str(emulator_port),
                        "--config",
                        str(config),
                        "--log-level",
                        "warning",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                )
            )
            wait_ready(backend_port)
            wait_ready(emulator_port)
            endpoint = parse_connection_string(connection_string)
            token = mint_client_token(endpoint, "chat")
            ws_url = f"ws://127.0.0.1:{emulator_port}/client/?hub=chat"
            webhook = f"http://127.0.0.1:{backend_port}{PATH}"
            counts = spread(args.invokes, args.clients)

            async def run_all() -> tuple[list[float], list[float]]:
                warm: list[float] = []
                await asyncio.gather(
                    ws_client(ws_url, token, 20, warm, asyncio.Barrier(1)),
                    http_client(webhook, 20, 0, warm, asyncio.Barrier(1)),
                )
                via_service: list[float] = []
                start_line = asyncio.Barrier(len(counts))
                await asyncio.gather(
                    *(ws_client(ws_url, token, n, via_service, start_line) for n in counts)
                )
                direct: list[float] = []
                start_line = asyncio.Barrier(len(counts))
                await asyncio.gather(
                    *(http_client(webhook, n, i, direct, start_line) for i, n in enumerate(counts))
                )
                return via_service, direct

            via_service, direct = asyncio.run(run_all())
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(timeout=10)
    print(f"invoke round trip, {args.invokes} invokes from {args.clients} clients:")
    print(f"  client -> emulator -> webhook -> client   {percentiles(via_service)}")
    print(f"  direct POST to the webhook                {percentiles(direct)}")
    (via50, via99), (direct50, direct99) = quantiles(via_service), quantiles(direct)
    print(
        f"  ratio via service / direct: p50 {via50 / direct50:.1f}x   p99 {via99 / direct99:.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--serve", choices=["bare", "backend", "route"], help=argparse.SUPPRESS)
    parser.add_argument(
        "--route",
        action="store_true",
        help="also measure the backend without UpstreamFastPath (FastAPI route only)",
    )
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds (default 3)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument(
        "--invokes", type=int, default=10000, help="round-trip invokes (default 10000)"
    )
    parser.add_argument("--clients", type=int, default=100, help="round-trip clients (default 100)")
    parser.add_argument(
        "--telemetry", metavar="COMMIT", help="part 1: compare telemetry variants with COMMIT"
    )
    parser.add_argument(
        "--sample-ratio", type=float, default=SAMPLE_RATIO, help="the sampled variant's ratio"
    )
    parser.add_argument("--skip-rps", action="store_true", help="skip the throughput part")
    parser.add_argument("--skip-latency", action="store_true", help="skip the round-trip part")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    if not args.skip_rps:
        throughput(args)
    if not args.skip_latency:
        if not args.skip_rps:
            print()
        latency(args)


if __name__ == "__main__":
    main()
