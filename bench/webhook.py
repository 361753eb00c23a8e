"""Webhook benchmarks: throughput against a bare ASGI app, and invoke round-trip latency.

Part 1 — requests per second of ``POST /runtime/webhooks/signalr`` for two requests:
an ``echo`` invocation with an id (answered with a framed Completion) and the same request
with a wrong signature (answered 401). The backend (``create_app``) is compared with a bare
ASGI app that runs the same checks with the same code (``HubRegistry.dispatch_stream``),
both served by the same uvicorn configuration pinned to core 0, load from ``wrk`` pinned to
core 1. Rounds alternate bare / backend; medians are compared (target ratio >= 0.5; the
rejected path must not cost more than the accepted one).

Part 2 — latency of a client ``invoke("echo", i)`` through the emulator and the webhook
(WebSocket client → emulator → signed POST → hub → Completion → client), against a direct
signed HTTP POST to the same webhook; p50 and p99 over ``--invokes`` calls spread over
``--clients`` concurrent clients (the issue's full run: ``--invokes 10000 --clients 100``).
The emulator, the backend and the load generator share the machine, so absolute numbers
depend on it.

    python bench/webhook.py [--rounds 3] [--duration 5] [--connections 32] [--route]
                            [--invokes 2000] [--clients 20] [--skip-rps] [--skip-latency]

``--route`` adds a third server: the backend without :class:`UpstreamFastPath`, i.e. the
webhook served by FastAPI's router and request machinery alone.

Needs Debian's ``wrk`` (``apt-get install wrk``) and ``taskset`` for part 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.protocol.connection_string import (  # noqa: E402
    EMULATOR_ACCESS_KEY,
    emulator_connection_string,
)
from app.protocol.signature import compute_signature  # noqa: E402

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
    """The baseline: raw ASGI calling the same registry code, no framework."""
    from app.hub import CaseInsensitiveMapping
    from app.services.dispatcher import HubRegistry
    from app.settings import Settings

    registry = HubRegistry.from_settings(Settings())

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
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
        result = await registry.dispatch_stream(headers, chunks(), None)
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
    """The backend as ``app.main`` builds it, with the webhook's ASGI fast path."""
    from app.main import create_app
    from app.routers.upstream import UpstreamFastPath

    app = create_app()
    if not fast_path:
        app.user_middleware = [
            m for m in app.user_middleware if getattr(m, "cls", None) is not UpstreamFastPath
        ]
        return app
    if not any(getattr(m, "cls", None) is UpstreamFastPath for m in app.user_middleware):
        # app.main doesn't install it (yet): add it, as the deployment is meant to run.
        print("note: UpstreamFastPath added by the benchmark", file=sys.stderr)
        app.add_middleware(UpstreamFastPath)
    return app


def serve(mode: str, port: int) -> None:
    """Run one server (child process)."""
    import uvicorn

    if mode == "bare":
        app = bare_app()
    else:
        app = backend_app(fast_path=mode == "backend")
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_ready(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not start")


# ----------------------------------------------------------------------------- part 1


def lua_script(directory: Path, name: str, headers: dict[str, str]) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(BODY)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    path = directory / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def wrk(url: str, script: Path, connections: int, duration: int) -> tuple[float, str]:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{duration}s",
            "-s",
            str(script),
            url,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    return float(match.group(1)), out


def run_round(mode: str, args: argparse.Namespace, scripts: dict[str, Path]) -> dict[str, float]:
    port = free_port()
    server = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, __file__, "--serve", mode, "--port", str(port)],
        cwd=ROOT,
    )
    try:
        wait_ready(port)
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
    finally:
        server.terminate()
        server.wait(timeout=10)


def throughput(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        sys.exit("needs wrk and taskset: apt-get install wrk util-linux")
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


def percentiles(samples: Sequence[float]) -> str:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    return f"p50 {pick(0.50):7.2f} ms   p99 {pick(0.99):7.2f} ms   (n={len(ordered)})"


async def ws_client(url: str, token: str, count: int, samples: list[float]) -> None:
    """One WebSocket client doing ``count`` sequential ``invoke("echo", i)`` calls."""
    import websockets

    from app.protocol.codec import JSON_CODEC
    from app.protocol.messages import CompletionMessage, InvocationMessage

    async with websockets.connect(
        url, additional_headers={"Authorization": f"Bearer {token}"}, compression=None
    ) as ws:
        await ws.send(b'{"protocol":"json","version":1}\x1e'.decode())
        reply = await ws.recv()
        text = reply if isinstance(reply, str) else reply.decode()
        if not text.startswith("{}"):
            raise RuntimeError(f"handshake failed: {text!r}")
        parser = JSON_CODEC.new_parser()
        pending = text.encode()[3:]
        for i in range(count):
            start = time.perf_counter()
            await ws.send(
                JSON_CODEC.encode(InvocationMessage("echo", [i], invocation_id=str(i))).decode()
            )
            done = False
            messages = parser.feed(pending) if pending else []
            pending = b""
            while not done:
                for message in messages:
                    if isinstance(message, CompletionMessage) and message.invocation_id == str(i):
                        if message.error is not None or message.result != i:
                            raise RuntimeError(f"bad completion: {message}")
                        done = True
                if not done:
                    data = await ws.recv()
                    messages = parser.feed(data.encode() if isinstance(data, str) else data)
            samples.append(time.perf_counter() - start)


async def http_client(url: str, count: int, index: int, samples: list[float]) -> None:
    """One HTTP client doing ``count`` sequential signed POSTs to the webhook.

    aiohttp rather than httpx: the load generator shares the machine, and the lighter
    client keeps its own cost out of the baseline.
    """
    import aiohttp

    connection_id = f"direct-{index}"
    headers = webhook_headers(connection_id)
    async with aiohttp.ClientSession() as session:
        for i in range(count):
            body = json.dumps(
                {"type": 1, "invocationId": str(i), "target": "echo", "arguments": [i]}
            )
            start = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as response:
                content = await response.read()
            if response.status != 200 or b'"result"' not in content:
                raise RuntimeError(f"bad answer: {response.status} {content!r}")
            samples.append(time.perf_counter() - start)


def spread(total: int, clients: int) -> list[int]:
    base, extra = divmod(total, clients)
    return [base + (1 if i < extra else 0) for i in range(clients)]


def latency(args: argparse.Namespace) -> None:
    from app.protocol.connection_string import parse_connection_string
    from app.protocol.tokens import mint_client_token

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
                    ws_client(ws_url, token, 20, warm), http_client(webhook, 20, 0, warm)
                )
                via_service: list[float] = []
                await asyncio.gather(*(ws_client(ws_url, token, n, via_service) for n in counts))
                direct: list[float] = []
                await asyncio.gather(
                    *(http_client(webhook, n, i, direct) for i, n in enumerate(counts))
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
        "--invokes", type=int, default=2000, help="round-trip invokes (default 2000)"
    )
    parser.add_argument("--clients", type=int, default=20, help="round-trip clients (default 20)")
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
